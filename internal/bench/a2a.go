package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/a2abus/a2abus/agentbus"
	"github.com/a2abus/a2abus/agentbus/a2anats"
	"github.com/a2abus/a2abus/internal/demoagent"
	"github.com/a2abus/a2abus/internal/gateway"
	"github.com/a2aproject/a2a-go/v2/a2a"
	"github.com/a2aproject/a2a-go/v2/a2aclient"
	"github.com/a2aproject/a2a-go/v2/a2aclient/agentcard"
	"github.com/a2aproject/a2a-go/v2/a2asrv"
	"github.com/nats-io/nats.go/jetstream"
)

// The parties of the a2a scenario: the same echo agent reached by the
// SDK's a2aclient over the bus binding (auto calls, the binding's default:
// direct when a consumer owns the agent, stored when none does; durable
// calls, always stored; direct calls), over JSON-RPC HTTP straight to the
// agent (the anchor), and over JSON-RPC HTTP through the gateway, whose
// calls travel on the bus (in agentd's default mode, auto, and in the
// durable and direct modes).
const (
	A2ANATS           = "nats"
	A2ANATSDurable    = "nats_durable"
	A2ANATSDirect     = "nats_direct"
	A2AHTTP           = "http"
	A2AGateway        = "gateway"
	A2AGatewayDurable = "gateway_durable"
	A2AGatewayDirect  = "gateway_direct"
)

// The phases of the a2a scenario.
const (
	PhaseConcurrent = "concurrent" // A2AConfig.Clients clients at once
	PhaseSequential = "sequential" // one client, one call at a time
)

// a2aParties are the parties in the order they are set up and reported.
var a2aParties = []string{A2ANATS, A2ANATSDurable, A2ANATSDirect, A2AHTTP, A2AGateway, A2AGatewayDurable, A2AGatewayDirect}

// a2aAgent is the agent ID of the benchmark's echo agent.
const a2aAgent = "bench-a2a-echo"

// A2AConfig sizes the a2a scenario.
type A2AConfig struct {
	// Requests is how many SendMessage calls each party makes with
	// Clients concurrent clients (default 8000).
	Requests int
	// Clients is how many clients call at once (default 64).
	Clients int
	// Sequential is how many SendMessage calls each party makes with one
	// client, one at a time, for the per-request overhead (default
	// Requests/4, at least 10).
	Sequential int
	// MsgSize is the bytes of text per message (default 256).
	MsgSize int
	// Parties limits the run to some of nats, nats_durable, nats_direct,
	// http, gateway, gateway_durable and gateway_direct (default all), for
	// profiling one of them.
	// A ratio is reported only when both its parties ran.
	Parties []string
}

func (c A2AConfig) withDefaults() A2AConfig {
	if c.Requests == 0 {
		c.Requests = 8000
	}
	if c.Clients == 0 {
		c.Clients = 64
	}
	if c.Sequential == 0 {
		c.Sequential = max(c.Requests/4, 10)
	}
	if c.MsgSize == 0 {
		c.MsgSize = 256
	}
	if len(c.Parties) == 0 {
		c.Parties = a2aParties
	}
	return c
}

// Validate reports the first setting out of range.
func (c A2AConfig) Validate() error {
	c = c.withDefaults()
	switch {
	case c.Clients < 1 || c.Clients > 4096:
		return fmt.Errorf("bench: %d clients: want 1..4096", c.Clients)
	case c.Requests < c.Clients:
		return fmt.Errorf("bench: %d requests for %d clients: want at least one per client", c.Requests, c.Clients)
	case c.Sequential < 10:
		return fmt.Errorf("bench: %d sequential requests: want at least 10", c.Sequential)
	case c.MsgSize < 1 || c.MsgSize > 1<<20:
		return fmt.Errorf("bench: message size %d out of range 1..1 MiB", c.MsgSize)
	}
	for _, p := range c.Parties {
		if !slices.Contains(a2aParties, p) {
			return fmt.Errorf("bench: unknown party %q (want %s)", p, strings.Join(a2aParties, ", "))
		}
	}
	return nil
}

// A2ARun is one party's figures in one phase: Clients concurrent clients,
// or one client making its calls one at a time.
type A2ARun struct {
	Party    string  `json:"party"`
	Phase    string  `json:"phase"` // PhaseConcurrent or PhaseSequential
	Clients  int     `json:"clients"`
	Requests int     `json:"requests"`
	OK       int     `json:"ok"` // calls answered with the text they sent
	Seconds  float64 `json:"seconds"`
	RPS      float64 `json:"rps"`
	P50us    float64 `json:"p50_us"`
	P99us    float64 `json:"p99_us"`
}

// A2AResult is the scenario's report. The rates and percentiles without
// "seq" are at Clients concurrent clients; "seq" ones with one client
// calling one call at a time. A party that did not run has zeros, and so
// have the ratios that need it.
type A2AResult struct {
	Requests   int `json:"requests"`
	Clients    int `json:"clients"`
	Sequential int `json:"sequential"`
	MsgSize    int `json:"msg_size"`

	NATSRPS           float64 `json:"nats_rps"`
	GatewayDurableRPS float64 `json:"gateway_durable_rps"`
	NATSDurableRPS    float64 `json:"nats_durable_rps"`
	NATSDirectRPS     float64 `json:"nats_direct_rps"`
	HTTPRPS           float64 `json:"http_rps"`
	GatewayRPS        float64 `json:"gateway_rps"`
	GatewayDirectRPS  float64 `json:"gateway_direct_rps"`

	NATSP50us           float64 `json:"nats_p50_us"`
	NATSP99us           float64 `json:"nats_p99_us"`
	GatewayDurableP50us float64 `json:"gateway_durable_p50_us"`
	GatewayDurableP99us float64 `json:"gateway_durable_p99_us"`
	NATSDurableP50us    float64 `json:"nats_durable_p50_us"`
	NATSDurableP99us    float64 `json:"nats_durable_p99_us"`
	NATSDirectP50us     float64 `json:"nats_direct_p50_us"`
	NATSDirectP99us     float64 `json:"nats_direct_p99_us"`
	HTTPP50us           float64 `json:"http_p50_us"`
	HTTPP99us           float64 `json:"http_p99_us"`
	GatewayP50us        float64 `json:"gateway_p50_us"`
	GatewayP99us        float64 `json:"gateway_p99_us"`
	GatewayDirectP50us  float64 `json:"gateway_direct_p50_us"`
	GatewayDirectP99us  float64 `json:"gateway_direct_p99_us"`

	NATSSeqP50us           float64 `json:"nats_seq_p50_us"`
	NATSSeqP99us           float64 `json:"nats_seq_p99_us"`
	GatewayDurableSeqP50us float64 `json:"gateway_durable_seq_p50_us"`
	GatewayDurableSeqP99us float64 `json:"gateway_durable_seq_p99_us"`
	NATSDurableSeqP50us    float64 `json:"nats_durable_seq_p50_us"`
	NATSDurableSeqP99us    float64 `json:"nats_durable_seq_p99_us"`
	NATSDirectSeqP50us     float64 `json:"nats_direct_seq_p50_us"`
	NATSDirectSeqP99us     float64 `json:"nats_direct_seq_p99_us"`
	HTTPSeqP50us           float64 `json:"http_seq_p50_us"`
	HTTPSeqP99us           float64 `json:"http_seq_p99_us"`
	GatewaySeqP50us        float64 `json:"gateway_seq_p50_us"`
	GatewaySeqP99us        float64 `json:"gateway_seq_p99_us"`
	GatewayDirectSeqP50us  float64 `json:"gateway_direct_seq_p50_us"`
	GatewayDirectSeqP99us  float64 `json:"gateway_direct_seq_p99_us"`

	// The targets: NATS (a2anats' default mode, auto) vs direct
	// HTTP at Clients clients, ≥ 2 × throughput and ≤ 0.75 × p50; the
	// gateway (agentd's default mode, auto) vs direct HTTP, one call at a
	// time, ≤ 2 × p50.
	NATSVsHTTPThroughput   float64 `json:"nats_vs_http_throughput"`
	NATSVsHTTPP50          float64 `json:"nats_vs_http_p50"`
	GatewayVsDirectHTTPP50 float64 `json:"gateway_vs_direct_http_p50"`
	// The same for the other modes, and at Clients clients.
	NATSDurableVsHTTPThroughput            float64 `json:"nats_durable_vs_http_throughput"`
	NATSDurableVsHTTPP50                   float64 `json:"nats_durable_vs_http_p50"`
	GatewayDurableVsDirectHTTPP50          float64 `json:"gateway_durable_vs_direct_http_p50"`
	NATSDirectVsHTTPThroughput             float64 `json:"nats_direct_vs_http_throughput"`
	NATSDirectVsHTTPP50                    float64 `json:"nats_direct_vs_http_p50"`
	GatewayVsDirectHTTPP50Concurrent       float64 `json:"gateway_vs_direct_http_p50_concurrent"`
	GatewayDirectVsDirectHTTPP50           float64 `json:"gateway_direct_vs_direct_http_p50"`
	GatewayDirectVsDirectHTTPP50Concurrent float64 `json:"gateway_direct_vs_direct_http_p50_concurrent"`

	Runs []A2ARun `json:"runs"`
}

// The targets, for the report.
const (
	targetNATSVsHTTPThroughput   = 2.0
	targetNATSVsHTTPP50          = 0.75
	targetGatewayVsDirectHTTPP50 = 2.0
)

// a2aParty is one way to reach the echo agent: a client per concurrent
// caller, the first also the sequential one.
type a2aParty struct {
	name    string
	clients []*a2aclient.Client
}

// A2A measures the SDK's a2aclient calling the demo echo agent (an a2asrv
// handler) served three ways from this process on env's server: over the
// bus binding (a2anats), durable and direct; over JSON-RPC HTTP straight to
// the agent, the anchor; and over JSON-RPC HTTP through the gateway, which
// carries each call over the bus. Each party first makes c.Requests calls
// from c.Clients concurrent clients, in rounds that rotate which party goes
// first, then c.Sequential calls one at a time, in turns of one call each,
// so that whatever else the machine does falls on all alike. Every answer
// must carry the text its call sent.
func A2A(ctx context.Context, env Env, c A2AConfig) (res A2AResult, err error) {
	if err := c.Validate(); err != nil {
		return A2AResult{}, err
	}
	c = c.withDefaults()
	// One deadline for the whole run, against a call that never ends:
	// no call then sets a timer of its own (a2anats does without one).
	ctx, cancel := context.WithTimeout(ctx, 30*time.Minute)
	defer cancel()
	res = A2AResult{Requests: c.Requests, Clients: c.Clients, Sequential: c.Sequential, MsgSize: c.MsgSize}

	var closers cleanups
	defer closers.run()
	parties, err := a2aSetUp(ctx, env, c, &closers)
	if err != nil {
		return res, err
	}
	_, bodies := payloads(ThroughputConfig{MsgSize: c.MsgSize, Destinations: 1})

	env.progress("a2a: warming up %d parties...", len(parties))
	for k, p := range parties {
		if _, _, err := a2aConcurrent(ctx, p, k, bodies, 0, max(c.Requests/10, 4*len(p.clients))); err != nil {
			return res, err
		}
	}

	// Concurrent clients: in rounds, each starting with the next party.
	rounds := min(max(c.Requests/(8*c.Clients), 1), 8)
	env.progress("a2a: %d requests per party from %d concurrent clients, %d rounds...", c.Requests, c.Clients, rounds)
	elapsed := make([]time.Duration, len(parties))
	lat := make([][]time.Duration, len(parties))
	base := c.Requests / 10 // past the warm-up's texts
	for r := range rounds {
		n := split(c.Requests, rounds, r)
		for k := range parties {
			j := (r + k) % len(parties)
			d, l, err := a2aConcurrent(ctx, parties[j], j, bodies, base, n)
			if err != nil {
				return res, err
			}
			elapsed[j] += d
			lat[j] = append(lat[j], l...)
		}
		base += n
	}
	runs := map[string]A2ARun{}
	for j, p := range parties {
		slices.Sort(lat[j])
		run := A2ARun{Party: p.name, Phase: PhaseConcurrent, Clients: len(p.clients), Requests: len(lat[j]), OK: len(lat[j]),
			Seconds: elapsed[j].Seconds(), RPS: rate(len(lat[j]), elapsed[j]), P50us: pct(lat[j], 50), P99us: pct(lat[j], 99)}
		runs[p.name] = run
		res.Runs = append(res.Runs, run)
	}

	// One client, one call at a time.
	env.progress("a2a: %d sequential requests per party, in turns...", c.Sequential)
	fs := make([]func(int) error, len(parties))
	for j, p := range parties {
		fs[j] = func(i int) error {
			_, err := a2aCall(ctx, p.clients[0], a2aText(bodies, j, base+i))
			if err != nil {
				return fmt.Errorf("bench: %s: %w", p.name, err)
			}
			return nil
		}
	}
	times, err := timeEach(c.Sequential, fs...)
	if err != nil {
		return res, err
	}
	seq := map[string]A2ARun{}
	for j, p := range parties {
		var total time.Duration
		for _, d := range times[j] {
			total += d
		}
		run := A2ARun{Party: p.name, Phase: PhaseSequential, Clients: 1, Requests: len(times[j]), OK: len(times[j]),
			Seconds: total.Seconds(), RPS: rate(len(times[j]), total), P50us: pct(times[j], 50), P99us: pct(times[j], 99)}
		seq[p.name] = run
		res.Runs = append(res.Runs, run)
	}

	res.fill(runs, seq)
	return res, nil
}

// fill sets the flat figures and the ratios from the runs.
func (res *A2AResult) fill(runs, seq map[string]A2ARun) {
	set := func(party string, rps, p50, p99, sp50, sp99 *float64) {
		r, s := runs[party], seq[party]
		*rps, *p50, *p99, *sp50, *sp99 = r.RPS, r.P50us, r.P99us, s.P50us, s.P99us
	}
	set(A2ANATS, &res.NATSRPS, &res.NATSP50us, &res.NATSP99us, &res.NATSSeqP50us, &res.NATSSeqP99us)
	set(A2AGatewayDurable, &res.GatewayDurableRPS, &res.GatewayDurableP50us, &res.GatewayDurableP99us, &res.GatewayDurableSeqP50us, &res.GatewayDurableSeqP99us)
	set(A2ANATSDurable, &res.NATSDurableRPS, &res.NATSDurableP50us, &res.NATSDurableP99us, &res.NATSDurableSeqP50us, &res.NATSDurableSeqP99us)
	set(A2ANATSDirect, &res.NATSDirectRPS, &res.NATSDirectP50us, &res.NATSDirectP99us, &res.NATSDirectSeqP50us, &res.NATSDirectSeqP99us)
	set(A2AHTTP, &res.HTTPRPS, &res.HTTPP50us, &res.HTTPP99us, &res.HTTPSeqP50us, &res.HTTPSeqP99us)
	set(A2AGateway, &res.GatewayRPS, &res.GatewayP50us, &res.GatewayP99us, &res.GatewaySeqP50us, &res.GatewaySeqP99us)
	set(A2AGatewayDirect, &res.GatewayDirectRPS, &res.GatewayDirectP50us, &res.GatewayDirectP99us, &res.GatewayDirectSeqP50us, &res.GatewayDirectSeqP99us)

	res.NATSVsHTTPThroughput = ratio(res.NATSRPS, res.HTTPRPS)
	res.NATSVsHTTPP50 = ratio(res.NATSP50us, res.HTTPP50us)
	res.NATSDurableVsHTTPThroughput = ratio(res.NATSDurableRPS, res.HTTPRPS)
	res.NATSDurableVsHTTPP50 = ratio(res.NATSDurableP50us, res.HTTPP50us)
	res.GatewayDurableVsDirectHTTPP50 = ratio(res.GatewayDurableSeqP50us, res.HTTPSeqP50us)
	res.NATSDirectVsHTTPThroughput = ratio(res.NATSDirectRPS, res.HTTPRPS)
	res.NATSDirectVsHTTPP50 = ratio(res.NATSDirectP50us, res.HTTPP50us)
	res.GatewayVsDirectHTTPP50 = ratio(res.GatewaySeqP50us, res.HTTPSeqP50us)
	res.GatewayVsDirectHTTPP50Concurrent = ratio(res.GatewayP50us, res.HTTPP50us)
	res.GatewayDirectVsDirectHTTPP50 = ratio(res.GatewayDirectSeqP50us, res.HTTPSeqP50us)
	res.GatewayDirectVsDirectHTTPP50Concurrent = ratio(res.GatewayDirectP50us, res.HTTPP50us)
}

// a2aSetUp serves the echo agent on the bus, over HTTP and through the
// gateway, and returns the parties c asks for, ready to call: each has
// answered once. The undo steps go on closers.
func a2aSetUp(ctx context.Context, env Env, c A2AConfig, closers *cleanups) ([]a2aParty, error) {
	want := func(p string) bool { return slices.Contains(c.Parties, p) }
	handler := a2asrv.NewHandler(demoagent.Echo{})

	// The agent on the bus: its own connection, as its own process would.
	agentBus, js, err := a2aBus(ctx, env, "bench-a2a-agent", closers)
	if err != nil {
		return nil, err
	}
	stream, err := js.Stream(ctx, agentbus.StreamName)
	if err != nil {
		return nil, err
	}
	if err := checkIdle(stream); err != nil {
		return nil, err
	}
	srv, err := a2anats.Handle(agentBus, a2aAgent, handler)
	if err != nil {
		return nil, err
	}
	reg, err := a2anats.NewRegistry(ctx, agentBus)
	if err != nil {
		return nil, err
	}
	if err := reg.Register(ctx, a2aAgent, demoagent.Card(a2aAgent, "benchmark echo"), ""); err != nil {
		return nil, err
	}
	*closers = append(*closers, func() { _ = reg.Remove(context.Background(), a2aAgent) })
	pool := benchPool("bench-a2a", 1)
	if _, err := agentBus.Declare(ctx, poolConfig(pool), a2aAgent); err != nil {
		return nil, err
	}
	sctx, stop := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- agentBus.Serve(sctx, serveIn(pool)...) }()
	*closers = append(*closers, func() {
		stop()
		<-served
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Close(cctx)
		deletePool(js, pool, []string{a2aAgent})
	})

	// One HTTP transport for every HTTP client, with an idle connection
	// per client and host kept: HTTP pays no connection set-up.
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        0, // no limit over hosts
		MaxIdleConnsPerHost: max(64, c.Clients),
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	*closers = append(*closers, tr.CloseIdleConnections)
	hc := &http.Client{Transport: tr}

	var parties []a2aParty
	add := func(name string, mk func() (*a2aclient.Client, error)) error {
		p := a2aParty{name: name}
		for range c.Clients {
			cl, err := mk()
			if err != nil {
				return fmt.Errorf("bench: %s client: %w", name, err)
			}
			*closers = append(*closers, func() { _ = cl.Destroy() })
			p.clients = append(p.clients, cl)
		}
		if err := a2aWaitAnswer(ctx, p); err != nil {
			return err
		}
		parties = append(parties, p)
		return nil
	}

	// a2aclient over the bus binding, from a bus of its own.
	if want(A2ANATS) || want(A2ANATSDurable) || want(A2ANATSDirect) {
		clientBus, _, err := a2aBus(ctx, env, "bench-a2a-client", closers)
		if err != nil {
			return nil, err
		}
		card, err := reg.Card(ctx, a2aAgent)
		if err != nil {
			return nil, err
		}
		for _, m := range []struct {
			party string
			mode  agentbus.RequestMode
		}{{A2ANATS, agentbus.Auto}, {A2ANATSDurable, agentbus.Durable}, {A2ANATSDirect, agentbus.Direct}} {
			if !want(m.party) {
				continue
			}
			// One binding client (one answer subscription) for all the
			// party's a2aclients, as in one process.
			opt := a2anats.WithTransport(clientBus, a2anats.ClientMode(m.mode))
			if err := add(m.party, func() (*a2aclient.Client, error) { return a2aclient.NewFromCard(ctx, card, opt) }); err != nil {
				return nil, err
			}
		}
	}

	// a2aclient over JSON-RPC HTTP straight to the agent.
	if want(A2AHTTP) {
		url, err := a2aListen(a2asrv.NewJSONRPCHandler(handler), closers)
		if err != nil {
			return nil, err
		}
		card := demoagent.Card(a2aAgent, "benchmark echo")
		card.SupportedInterfaces = []*a2a.AgentInterface{a2a.NewAgentInterface(url+"/", a2a.TransportProtocolJSONRPC)}
		if err := add(A2AHTTP, func() (*a2aclient.Client, error) {
			return a2aclient.NewFromCard(ctx, card, a2aclient.WithJSONRPCTransport(hc))
		}); err != nil {
			return nil, err
		}
	}

	// a2aclient over JSON-RPC HTTP through the gateway, from the card the
	// gateway serves; the gateway has a bus of its own, as agentd would.
	for _, g := range []struct {
		party string
		mode  agentbus.RequestMode
	}{{A2AGateway, agentbus.Auto}, {A2AGatewayDurable, agentbus.Durable}, {A2AGatewayDirect, agentbus.Direct}} {
		if !want(g.party) {
			continue
		}
		gwBus, _, err := a2aBus(ctx, env, "bench-a2a-"+g.party, closers)
		if err != nil {
			return nil, err
		}
		gwReg, err := a2anats.NewRegistry(ctx, gwBus)
		if err != nil {
			return nil, err
		}
		// The card does not change during the run: a refresh from the
		// registry every few seconds is no part of a call's overhead.
		gw, err := gateway.New(gwBus, gwReg, gateway.Config{Mode: g.mode, CardTTL: time.Hour})
		if err != nil {
			return nil, err
		}
		url, err := a2aListen(gw, closers)
		if err != nil {
			return nil, err
		}
		card, err := agentcard.NewResolver(hc).Resolve(ctx, url+gateway.Prefix+a2aAgent)
		if err != nil {
			return nil, fmt.Errorf("bench: the gateway's card of %s: %w", a2aAgent, err)
		}
		if err := add(g.party, func() (*a2aclient.Client, error) {
			return a2aclient.NewFromCard(ctx, card, a2aclient.WithJSONRPCTransport(hc))
		}); err != nil {
			return nil, err
		}
	}
	return parties, nil
}

// a2aBus connects a bus of its own to env's server, provisioning the
// streams.
func a2aBus(ctx context.Context, env Env, name string, closers *cleanups) (*agentbus.Bus, jetstream.JetStream, error) {
	nc, err := env.connect(name)
	if err != nil {
		return nil, nil, err
	}
	*closers = append(*closers, nc.Close)
	bus, err := agentbus.Connect(ctx, env.logger(), agentbus.WithConn(nc), agentbus.WithEnsureStreams(agentbus.StreamConfig{}))
	if err != nil {
		return nil, nil, err
	}
	*closers = append(*closers, func() { _ = bus.Close(context.Background()) })
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, nil, err
	}
	return bus, js, nil
}

// a2aListen serves h over HTTP on a loopback port and returns its base URL.
func a2aListen(h http.Handler, closers *cleanups) (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	hs := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = hs.Serve(ln)
	}()
	*closers = append(*closers, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if hs.Shutdown(ctx) != nil {
			_ = hs.Close()
		}
		<-done
	})
	return "http://" + ln.Addr().String(), nil
}

// a2aWaitAnswer waits until p's first client gets an answer: the agent's
// consumer has started and, for direct calls, the caller knows it.
func a2aWaitAnswer(ctx context.Context, p a2aParty) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := a2aCall(cctx, p.clients[0], "ready?")
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			return fmt.Errorf("bench: %s: the echo agent did not answer: %w", p.name, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// a2aConcurrent makes n calls from p's clients at once, call i sending
// the text of party k and number base+i, and returns the time they took
// and each call's duration.
func a2aConcurrent(ctx context.Context, p a2aParty, k int, bodies [][]byte, base, n int) (time.Duration, []time.Duration, error) {
	lat := make([]time.Duration, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make([]error, len(p.clients))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	start := time.Now()
	for g, cl := range p.clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				d, err := a2aCall(ctx, cl, a2aText(bodies, k, base+i))
				if err != nil {
					errs[g] = fmt.Errorf("bench: %s: %w", p.name, err)
					cancel()
					return
				}
				lat[i] = d
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err := errors.Join(errs...); err != nil {
		return 0, nil, err
	}
	return elapsed, lat, nil
}

// a2aText is the text of party k's call number i: its number, then
// words, msgSize bytes in all (more if the number is longer).
func a2aText(bodies [][]byte, k, i int) string {
	tag := strconv.Itoa(k) + "." + strconv.Itoa(i) + " "
	body := bodies[i%bodyCount]
	return tag + string(body[:max(len(body)-len(tag), 0)])
}

// a2aCall sends text with SendMessage and checks the answer is a message
// with the same text; it returns how long the call took.
func a2aCall(ctx context.Context, c *a2aclient.Client, text string) (time.Duration, error) {
	req := &a2a.SendMessageRequest{Message: a2a.NewMessage(a2a.MessageRoleUser, a2a.NewTextPart(text))}
	start := time.Now()
	res, err := c.SendMessage(ctx, req)
	d := time.Since(start)
	if err != nil {
		return 0, err
	}
	m, ok := res.(*a2a.Message)
	if !ok {
		return 0, fmt.Errorf("the echo agent answered with a %T, want a message", res)
	}
	if got := demoagent.Text(m); got != text {
		return 0, fmt.Errorf("the echo agent answered %.40q to %.40q", got, text)
	}
	return d, nil
}

// WriteA2A prints res as a table with the ratios beside their targets, or
// with asJSON as one JSON object on the last line.
func WriteA2A(w io.Writer, res A2AResult, asJSON bool) error {
	if asJSON {
		return json.NewEncoder(w).Encode(res)
	}
	fmt.Fprintf(w, "a2a-go client → demo echo agent, %d B text; %d requests from %d clients, %d one at a time:\n\n",
		res.MsgSize, res.Requests, res.Clients, res.Sequential)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "party\treq/s\tp50 µs\tp99 µs\tseq p50 µs\tseq p99 µs\t\n")
	seq := map[string]A2ARun{}
	for _, r := range res.Runs {
		if r.Phase == PhaseSequential {
			seq[r.Party] = r
		}
	}
	for _, r := range res.Runs {
		if r.Phase != PhaseConcurrent {
			continue
		}
		s := seq[r.Party]
		fmt.Fprintf(tw, "%s\t%.0f\t%.0f\t%.0f\t%.0f\t%.0f\t\n", r.Party, r.RPS, r.P50us, r.P99us, s.P50us, s.P99us)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	// line prints one ratio, with its target when it has one (op and
	// target), or n/a when a party it needs did not run.
	line := func(name string, v float64, op string, target float64) error {
		var err error
		switch {
		case v == 0:
			_, err = fmt.Fprintf(w, "  %-38s   n/a\n", name)
		case op == "":
			_, err = fmt.Fprintf(w, "  %-38s %5.2f\n", name, v)
		default:
			verdict := "met"
			if op == "≥" && v < target || op == "≤" && v > target {
				verdict = "MISSED"
			}
			_, err = fmt.Fprintf(w, "  %-38s %5.2f   target %s %.2f  %s\n", name, v, op, target, verdict)
		}
		return err
	}
	fmt.Fprintln(w)
	err := errors.Join(
		line("nats (auto) / http throughput", res.NATSVsHTTPThroughput, "≥", targetNATSVsHTTPThroughput),
		line("nats (auto) / http p50", res.NATSVsHTTPP50, "≤", targetNATSVsHTTPP50),
		line("nats (durable) / http throughput", res.NATSDurableVsHTTPThroughput, "", 0),
		line("nats (durable) / http p50", res.NATSDurableVsHTTPP50, "", 0),
		line("nats (direct) / http throughput", res.NATSDirectVsHTTPThroughput, "", 0),
		line("nats (direct) / http p50", res.NATSDirectVsHTTPP50, "", 0),
		line("gateway (auto) / direct http p50, 1 client", res.GatewayVsDirectHTTPP50, "≤", targetGatewayVsDirectHTTPP50),
		line("gateway durable / http p50, 1 client", res.GatewayDurableVsDirectHTTPP50, "", 0),
		line(fmt.Sprintf("gateway / direct http p50, %d clients", res.Clients), res.GatewayVsDirectHTTPP50Concurrent, "", 0),
		line("gateway direct / http p50, 1 client", res.GatewayDirectVsDirectHTTPP50, "", 0),
		line(fmt.Sprintf("gateway direct / http p50, %d clients", res.Clients), res.GatewayDirectVsDirectHTTPP50Concurrent, "", 0),
	)
	return err
}
