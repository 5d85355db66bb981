package gateway

import (
	"bytes"
	"context"
	"crypto/subtle"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/a2abus/a2abus/agentbus"
	"github.com/a2abus/a2abus/agentbus/a2anats"
	"github.com/a2abus/a2abus/codec"
	"github.com/a2abus/a2abus/internal/tracing"
	"github.com/a2aproject/a2a-go/v2/a2a"
	"github.com/a2aproject/a2a-go/v2/a2acompat/a2av0"
	"github.com/a2aproject/a2a-go/v2/a2asrv"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"
)

// Prefix is the path the gateway is mounted on.
const Prefix = "/a2a/"

// MaxBodySize bounds a JSON-RPC request body: the bus's message limit.
const MaxBodySize = codec.DefaultMaxSize

// DefaultCardTTL is how long a card read from the registry is used before
// it is read again.
const DefaultCardTTL = 5 * time.Second

// Config is the gateway's configuration.
type Config struct {
	// Token, when set, is the bearer token JSON-RPC requests must carry.
	Token string
	// ClientCerts says the HTTP server verifies client certificates
	// (mutual TLS): requests with a verified one are let in.
	ClientCerts bool
	// Mode is how calls travel on the bus (see a2anats.ClientMode; the
	// zero value is agentbus.Durable, agentd's default agentbus.Auto).
	Mode agentbus.RequestMode
	// NATSServer is the host:port of the NATS server as clients know it,
	// written into the bus interface of the cards.
	NATSServer string
	// PublicURL is the URL clients reach the gateway at (scheme, host and
	// any path before Prefix), written into the cards; empty uses each
	// request's own scheme and Host, right unless a proxy rewrites them.
	PublicURL string
	// CardTTL is how long a card is cached (default DefaultCardTTL).
	CardTTL time.Duration
	// Logger logs what fails where no caller can be told (default
	// slog.Default()).
	Logger *slog.Logger
	// GRPC is the address of the gateway's gRPC listener (see GRPCServer),
	// written into the cards: a gRPC interface per agent, with the agent's
	// ID as its tenant. An unspecified host (0.0.0.0, ::) is replaced by
	// the host clients reached the card at. Empty: no gRPC interface.
	GRPC string
	// GRPCDefaultAgent is the agent of gRPC calls that name no tenant
	// (empty: such calls are refused, naming what to send).
	GRPCDefaultAgent string
	// Registerer, when set, gets the gateway's metrics:
	// a2abus_gateway_requests_total{binding,status} and
	// a2abus_gateway_request_seconds{binding}.
	Registerer prometheus.Registerer
	// TracerProvider makes the gateway's spans and those of its calls
	// over the bus (default: the bus's, agentbus.WithTracerProvider).
	TracerProvider trace.TracerProvider
}

// Gateway serves the A2A endpoints of the registered agents (see the
// package doc). It is an http.Handler for Prefix.
type Gateway struct {
	cfg    Config
	reg    *a2anats.Registry
	client *a2anats.Client
	now    func() time.Time
	m      *metrics // nil without Config.Registerer
	tracer *tracing.Tracer

	mu     sync.Mutex
	agents map[string]*agent

	closing context.Context // canceled by Close
	close   context.CancelFunc
}

// agent is what the gateway keeps of one agent.
type agent struct {
	card    *a2a.AgentCard
	fetched time.Time
	call    forward      // the agent's calls, A2A 1.0 (the gRPC binding serves it)
	v1, v0  http.Handler // JSON-RPC 1.0 and 0.3
	rest    http.Handler // HTTP+JSON 1.0
	cardH   http.Handler // the 1.0 card
	cardH03 http.Handler // the 0.3 card

	refreshing bool // a request is reading the card from the registry
}

// New returns the gateway of the agents in reg, calling them over bus.
func New(bus *agentbus.Bus, reg *a2anats.Registry, cfg Config) (*Gateway, error) {
	if cfg.CardTTL == 0 {
		cfg.CardTTL = DefaultCardTTL
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.TracerProvider == nil {
		cfg.TracerProvider = bus.TracerProvider()
	}
	client, err := a2anats.NewClient(bus, a2anats.ClientMode(cfg.Mode), a2anats.ClientTracerProvider(cfg.TracerProvider))
	if err != nil {
		return nil, err
	}
	g := &Gateway{cfg: cfg, reg: reg, client: client, now: time.Now, agents: map[string]*agent{}, tracer: tracing.New(cfg.TracerProvider)}
	g.closing, g.close = context.WithCancel(context.Background())
	if cfg.Registerer != nil {
		if g.m, err = newMetrics(cfg.Registerer); err != nil {
			return nil, err
		}
	}
	return g, nil
}

// Close ends the calls in flight: each gets an error (ErrClosed) its
// client sees, an SSE stream as its last event. Close is idempotent; the
// HTTP server's Shutdown then finds no request held up by a stream.
func (g *Gateway) Close() { g.close() }

// ServeHTTP implements http.Handler.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id, b := route(r.URL.Path)
	w, r, end := g.traceHTTP(w, r, id, b)
	defer end()
	g.m.observe(b, w, func(w http.ResponseWriter) { g.serve(w, r, id, b) })
}

// The endpoints of the gateway, as route names them (and the metrics'
// binding label).
const (
	routeJSONRPC   = "jsonrpc"
	routeJSONRPC03 = "jsonrpc_0.3"
	routeREST      = "rest"
	routeCard      = "card"
	routeCard03    = "card_0.3"
	routeList      = "list"
	routeOther     = "other"
)

// route returns the agent ID and the endpoint a request path names.
func route(path string) (id, endpoint string) {
	rest, ok := strings.CutPrefix(path, Prefix)
	if !ok {
		return "", routeOther
	}
	id, sub, _ := strings.Cut(rest, "/")
	switch {
	case id == "":
		return "", routeList
	case sub == "":
		return id, routeJSONRPC
	case sub == "v0.3":
		return id, routeJSONRPC03
	case sub == "rest" || strings.HasPrefix(sub, "rest/"):
		return id, routeREST
	case sub == strings.TrimPrefix(a2asrv.WellKnownAgentCardPath, "/"):
		return id, routeCard
	case sub == "v0.3"+a2asrv.WellKnownAgentCardPath:
		return id, routeCard03
	}
	return id, routeOther
}

func (g *Gateway) serve(w http.ResponseWriter, r *http.Request, id, endpoint string) {
	switch endpoint {
	case routeList:
		g.serveList(w, r)
	case routeJSONRPC:
		g.serveCall(w, r, id, true, func(ag *agent) http.Handler { return ag.v1 })
	case routeJSONRPC03:
		g.serveCall(w, r, id, true, func(ag *agent) http.Handler { return ag.v0 })
	case routeREST:
		g.serveCall(w, r, id, false, func(ag *agent) http.Handler { return ag.rest })
	case routeCard, routeCard03:
		ag, ok := g.lookup(w, r, id)
		if !ok {
			return
		}
		// The card at the 1.0 path depends on A2A-Version: caches keep one
		// per version.
		w.Header().Set("Vary", a2a.SvcParamVersion)
		h := ag.cardH
		if endpoint == routeCard03 || strings.HasPrefix(r.Header.Get(a2a.SvcParamVersion), "0.") {
			h = ag.cardH03
		}
		h.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), baseKey{}, g.baseURL(r))))
	default:
		writeError(w, http.StatusNotFound, a2a.ErrMethodNotFound, fmt.Sprintf("no A2A endpoint at %s: want %s<agentID> (JSON-RPC), %s<agentID>/v0.3, %s<agentID>/rest/... (HTTP+JSON) or %s<agentID>%s",
			r.URL.Path, Prefix, Prefix, Prefix, Prefix, a2asrv.WellKnownAgentCardPath))
	}
}

// jsonBody reports whether a JSON-RPC request says its body is JSON (or
// says nothing), and otherwise answers ContentTypeNotSupportedError.
func jsonBody(w http.ResponseWriter, r *http.Request) bool {
	ct := r.Header.Get("Content-Type")
	if ct == "" || r.Method != http.MethodPost {
		return true
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err == nil && (mt == "application/json" || strings.HasSuffix(mt, "+json")) {
		return true
	}
	writeError(w, http.StatusUnsupportedMediaType, a2a.ErrUnsupportedContentType, fmt.Sprintf("Content-Type %q: JSON-RPC requests are application/json", ct))
	return false
}

// baseKey is the context key of the gateway's base URL as the client
// reached it, for the card producer.
type baseKey struct{}

// baseURL is the URL clients reach the gateway at: Config.PublicURL, or
// the request's own scheme and host.
func (g *Gateway) baseURL(r *http.Request) string {
	if g.cfg.PublicURL != "" {
		return strings.TrimSuffix(g.cfg.PublicURL, "/")
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// serveList answers GET /a2a/ with the registered agent IDs.
func (g *Gateway) serveList(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		writeError(w, http.StatusMethodNotAllowed, a2a.ErrInvalidRequest, "GET "+Prefix+" lists the agents; calls go to "+Prefix+"<agentID>")
		return
	}
	ids, err := g.reg.Agents(r.Context())
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, a2a.ErrInternalError, err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"agents": append([]string{}, ids...)})
}

// serveCall checks a call at the edge (who sends it, its size, for
// JSON-RPC its Content-Type, its agent) and hands it to the SDK's handler of
// its binding.
func (g *Gateway) serveCall(w http.ResponseWriter, r *http.Request, id string, jsonrpc bool, binding func(*agent) http.Handler) {
	if err := g.authorize(r); err != nil {
		status := http.StatusUnauthorized
		if errors.Is(err, a2a.ErrUnauthorized) {
			status = http.StatusForbidden
		}
		writeError(w, status, err, err.Error())
		return
	}
	if r.Method != http.MethodPost && r.Method != http.MethodGet && r.Method != http.MethodDelete {
		writeError(w, http.StatusMethodNotAllowed, a2a.ErrInvalidRequest, "A2A calls are POSTed (GET and DELETE for some HTTP+JSON ones)")
		return
	}
	if jsonrpc && !jsonBody(w, r) {
		return
	}
	if r.ContentLength > MaxBodySize {
		writeError(w, http.StatusRequestEntityTooLarge, a2a.ErrInvalidRequest, fmt.Sprintf("request body is %d bytes, limit %d", r.ContentLength, MaxBodySize))
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxBodySize+1))
	if err != nil {
		writeError(w, http.StatusBadRequest, a2a.ErrParseError, "reading the request body: "+err.Error())
		return
	}
	if len(body) > MaxBodySize {
		writeError(w, http.StatusRequestEntityTooLarge, a2a.ErrInvalidRequest, fmt.Sprintf("request body over the limit of %d bytes", MaxBodySize))
		return
	}
	ag, ok := g.lookup(w, r, id)
	if !ok {
		return
	}
	body = pushShapes(r, body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	binding(ag).ServeHTTP(w, r)
}

// authorize lets a request in, or says why not.
func (g *Gateway) authorize(r *http.Request) error {
	return g.admit(r.Header.Get("Authorization"), r.TLS, r.RemoteAddr)
}

// admit is the gateway's door for every binding: a call with the bearer
// token, or with a verified client certificate, or (with neither
// configured) from a loopback address is let in. authz is the call's
// Authorization value, remote its peer's host:port.
func (g *Gateway) admit(authz string, cs *tls.ConnectionState, remote string) error {
	if g.cfg.Token != "" {
		got, ok := strings.CutPrefix(authz, "Bearer ")
		if ok && subtle.ConstantTimeCompare([]byte(got), []byte(g.cfg.Token)) == 1 {
			return nil
		}
		if !g.cfg.ClientCerts {
			return a2a.NewError(a2a.ErrUnauthenticated, "this gateway wants \"Authorization: Bearer <token>\"")
		}
	}
	if g.cfg.ClientCerts {
		if cs != nil && len(cs.VerifiedChains) > 0 {
			return nil
		}
		return a2a.NewError(a2a.ErrUnauthenticated, "this gateway wants a verified client certificate")
	}
	host, _, err := net.SplitHostPort(remote)
	if err == nil {
		if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
			return nil
		}
	}
	return a2a.NewError(a2a.ErrUnauthorized, "this gateway answers loopback clients only: start agentd with --http-token or --http-client-ca to let others in")
}

// lookup returns the agent id, or answers that there is none.
func (g *Gateway) lookup(w http.ResponseWriter, r *http.Request, id string) (*agent, bool) {
	ag, err := g.agentFor(r.Context(), id)
	switch {
	case err == nil:
		return ag, true
	case errors.Is(err, errNoAgent):
		writeError(w, http.StatusNotFound, a2a.ErrServerError, err.Error())
	case errors.Is(err, a2a.ErrInternalError):
		writeError(w, http.StatusInternalServerError, a2a.ErrInternalError, err.Error())
	default:
		writeError(w, http.StatusServiceUnavailable, a2a.ErrInternalError, err.Error())
	}
	return nil, false
}

// errNoAgent is agentFor's error for an agent the registry has no card of.
var errNoAgent = errors.New("no agent card is registered for it")

// agentFor returns agent id, its card read again from the registry when
// the cached one is older than the card TTL. Its errors: errNoAgent for
// an agent the registry does not know, a2a.ErrInternalError when its
// handlers cannot be built, else the registry's (a cached card is used
// while the registry cannot be read).
func (g *Gateway) agentFor(ctx context.Context, id string) (*agent, error) {
	g.mu.Lock()
	ag := g.agents[id]
	if ag != nil && (ag.refreshing || g.now().Sub(ag.fetched) < g.cfg.CardTTL) {
		// Fresh, or another request is reading the card again: this one
		// goes on with the card it has.
		g.mu.Unlock()
		return ag, nil
	}
	if ag != nil {
		ag.refreshing = true
	}
	g.mu.Unlock()
	defer func() {
		if ag != nil {
			g.mu.Lock()
			ag.refreshing = false
			g.mu.Unlock()
		}
	}()
	card, err := g.reg.Card(ctx, id)
	if errors.Is(err, a2anats.ErrUnknownAgent) {
		g.mu.Lock()
		delete(g.agents, id)
		g.mu.Unlock()
		return nil, fmt.Errorf("unknown agent %q: %w", id, errNoAgent)
	}
	if err != nil {
		if ag != nil {
			g.cfg.Logger.Warn("agent card not refreshed; using the cached one", "agent", id, "err", err)
			return ag, nil
		}
		return nil, err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if ag == nil {
		if ag, err = g.newAgent(id); err != nil {
			return nil, fmt.Errorf("%w: agent %q: %v", a2a.ErrInternalError, id, err)
		}
	}
	ag.card, ag.fetched = card, g.now()
	g.agents[id] = ag
	return ag, nil
}

// newAgent builds the handlers of one agent.
func (g *Gateway) newAgent(id string) (*agent, error) {
	t, err := g.client.Transport(id)
	if err != nil {
		return nil, err
	}
	h := forward{t: t, closing: g.closing, version: string(a2a.Version)}
	h0 := forward{t: t, closing: g.closing, version: string(a2av0.Version)}
	panics := a2asrv.WithTransportPanicHandler(func(r any) error {
		g.cfg.Logger.Error("A2A gateway handler panicked", "agent", id, "panic", r)
		return a2a.ErrInternalError
	})
	ag := &agent{call: h, v1: a2asrv.NewJSONRPCHandler(h, panics), v0: a2av0.NewJSONRPCHandler(h0, panics),
		rest: http.StripPrefix(Prefix+id+"/rest", restWithTenant(h, panics))}
	var producer a2asrv.AgentCardProducer = a2asrv.AgentCardProducerFn(func(ctx context.Context) (*a2a.AgentCard, error) {
		g.mu.Lock()
		card := ag.card
		g.mu.Unlock()
		base, _ := ctx.Value(baseKey{}).(string)
		return g.servedCard(id, card, base), nil
	})
	// Each version its own card: the 1.0 card validates against the 1.0
	// schema (which has no 0.3 fields), the 0.3 one (at <agent>/v0.3/...,
	// or asked for with "A2A-Version: 0.3") is what 0.3 clients parse.
	ag.cardH = cacheable(a2asrv.NewAgentCardHandler(producer))
	ag.cardH03 = cacheable(a2asrv.NewAgentCardHandler(a2av0.NewAgentCardProducer(producer)))
	return ag, nil
}

// restWithTenant is the SDK's HTTP+JSON binding of h, with or without a
// tenant before the method's path ("/acme/message:send", as the SDK's
// client sends a request's tenant).
func restWithTenant(h a2asrv.RequestHandler, opts ...a2asrv.TransportOption) http.Handler {
	plain := a2asrv.NewRESTHandler(h, opts...)
	tenant := a2asrv.NewTenantRESTHandler("/{*}", h, opts...)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		first, _, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
		switch first {
		case "message:send", "message:stream", "tasks", "extendedAgentCard":
			plain.ServeHTTP(w, r)
		default:
			tenant.ServeHTTP(w, r)
		}
	})
}

// servedCard is card as this gateway serves it: its interfaces point at
// the gateway first, then at the bus.
func (g *Gateway) servedCard(id string, card *a2a.AgentCard, base string) *a2a.AgentCard {
	c := *card
	url := base + Prefix + id
	c.SupportedInterfaces = []*a2a.AgentInterface{
		a2a.NewAgentInterface(url, a2a.TransportProtocolJSONRPC),
		a2a.NewAgentInterface(url+"/rest", a2a.TransportProtocolHTTPJSON),
	}
	if addr := g.grpcAddr(base); addr != "" {
		grpc := a2a.NewAgentInterface(addr, a2a.TransportProtocolGRPC)
		grpc.Tenant = id
		c.SupportedInterfaces = append(c.SupportedInterfaces, grpc)
	}
	c.SupportedInterfaces = append(c.SupportedInterfaces,
		&a2a.AgentInterface{URL: url + "/v0.3", ProtocolBinding: a2a.TransportProtocolJSONRPC, ProtocolVersion: a2av0.Version})
	bus := false
	for _, i := range card.SupportedInterfaces {
		if i != nil && i.ProtocolBinding == a2anats.ProtocolBinding {
			c.SupportedInterfaces = append(c.SupportedInterfaces, i)
			bus = true
		}
	}
	if !bus {
		c.SupportedInterfaces = append(c.SupportedInterfaces, a2anats.Interface(id, g.cfg.NATSServer))
	}
	if g.cfg.Token != "" {
		c.SecuritySchemes = a2a.NamedSecuritySchemes{"bearer": a2a.HTTPAuthSecurityScheme{Scheme: "Bearer"}}
		c.SecurityRequirements = a2a.SecurityRequirementsOptions{{"bearer": a2a.SecuritySchemeScopes{}}}
	}
	return &c
}

// writeError answers with a JSON-RPC error object for err's A2A error.
func writeError(w http.ResponseWriter, status int, err error, message string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"jsonrpc": "2.0", "id": nil,
		"error": map[string]any{"code": a2anats.ErrorCode(err), "message": message},
	})
}
