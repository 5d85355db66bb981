package gateway_test

import (
	"context"
	"crypto/tls"
	"errors"
	"iter"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/a2abus/a2abus/agentbus/a2anats/a2anatstest"
	"github.com/a2abus/a2abus/embedded/embeddedtest"
	"github.com/a2abus/a2abus/internal/demoagent"
	"github.com/a2abus/a2abus/internal/gateway"
	"github.com/a2aproject/a2a-go/v2/a2a"
	"github.com/a2aproject/a2a-go/v2/a2aclient"
	"github.com/a2aproject/a2a-go/v2/a2aclient/agentcard"
	a2agrpc "github.com/a2aproject/a2a-go/v2/a2agrpc/v1"
	a2apb "github.com/a2aproject/a2a-go/v2/a2apb/v1"
	"github.com/a2aproject/a2a-go/v2/a2asrv"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// tenantEcho answers a message with the tenant its execution sees.
type tenantEcho struct{ demoagent.Echo }

func (tenantEcho) Execute(_ context.Context, ec *a2asrv.ExecutorContext) iter.Seq2[a2a.Event, error] {
	return func(yield func(a2a.Event, error) bool) {
		yield(a2a.NewMessage(a2a.MessageRoleAgent, a2a.NewTextPart("tenant="+ec.Tenant)), nil)
	}
}

// serveGRPC serves gw's gRPC binding with creds (nil: plaintext) on ln.
func serveGRPC(t *testing.T, gw *gateway.Gateway, ln net.Listener, creds credentials.TransportCredentials) {
	t.Helper()
	s := gw.GRPCServer(creds)
	go func() { _ = s.Serve(ln) }()
	t.Cleanup(s.Stop)
}

// grpcGateway hosts the demo agents and tenantEcho ("tenant") and serves
// a gateway over HTTP and gRPC, with cfg.
func grpcGateway(t *testing.T, cfg gateway.Config) (*httptest.Server, string) {
	t.Helper()
	srv := embeddedtest.RunServer(t)
	a2anatstest.Host(t, srv, map[string]a2asrv.AgentExecutor{
		"echo": demoagent.Echo{}, "worker": demoagent.Worker{Delay: 50 * time.Millisecond}, "tenant": tenantEcho{},
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg.GRPC = ln.Addr().String()
	gw := newGateway(t, srv, cfg)
	serveGRPC(t, gw, ln, nil)
	return serveHTTP(t, gw), ln.Addr().String()
}

// grpcClient is an a2a-go client of agent that takes the gRPC interface
// of the card the gateway serves.
func grpcClient(t *testing.T, hs *httptest.Server, agent string, opts ...grpc.DialOption) *a2aclient.Client {
	t.Helper()
	ctx := testCtx(t, 30*time.Second)
	card, err := agentcard.DefaultResolver.Resolve(ctx, hs.URL+gateway.Prefix+agent)
	if err != nil {
		t.Fatalf("resolve %s's card: %v", agent, err)
	}
	opts = append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, opts...)
	c, err := a2aclient.NewFromCard(ctx, card, a2agrpc.WithGRPCTransport(opts...),
		a2aclient.WithConfig(a2aclient.Config{PreferredTransports: []a2a.TransportProtocol{a2a.TransportProtocolGRPC}}))
	if err != nil {
		t.Fatalf("client from %s's card: %v", agent, err)
	}
	t.Cleanup(func() { _ = c.Destroy() })
	return c
}

// TestGRPCBinding: the a2a-go client over the gateway's gRPC interface, as
// its card lists it, calls agents on the bus: a message, a stream, a task,
// and an A2A error with the status code and ErrorInfo the specification
// gives it.
func TestGRPCBinding(t *testing.T) {
	hs, addr := grpcGateway(t, gateway.Config{})
	ctx := testCtx(t, time.Minute)

	_, card := sdkClient(t, hs, "worker")
	var grpcIface *a2a.AgentInterface
	for _, i := range card.SupportedInterfaces {
		if i.ProtocolBinding == a2a.TransportProtocolGRPC {
			grpcIface = i
		}
	}
	if grpcIface == nil || grpcIface.URL != addr || grpcIface.Tenant != "worker" || grpcIface.ProtocolVersion != a2a.Version {
		t.Fatalf("card's gRPC interface %+v, want %s with tenant worker", grpcIface, addr)
	}

	res, err := grpcClient(t, hs, "echo").SendMessage(ctx, text("hello"))
	if msg, ok := res.(*a2a.Message); err != nil || !ok || demoagent.Text(msg) != "hello" {
		t.Fatalf("echo over gRPC: %#v, %v", res, err)
	}

	worker := grpcClient(t, hs, "worker")
	a2anatstest.WorkerJob(t, ctx, worker)
	if _, err := worker.GetTask(ctx, &a2a.GetTaskRequest{ID: "no-such-task"}); !errors.Is(err, a2a.ErrTaskNotFound) {
		t.Fatalf("GetTask of no task: %v, want TaskNotFound", err)
	}

	// The wire form of that error, as any gRPC client sees it.
	raw := rawClient(t, addr)
	_, err = raw.GetTask(ctx, &a2apb.GetTaskRequest{Tenant: "worker", Id: "no-such-task"})
	st := status.Convert(err)
	var info *errdetails.ErrorInfo
	for _, d := range st.Details() {
		info, _ = d.(*errdetails.ErrorInfo)
	}
	if st.Code() != codes.NotFound || info == nil || info.Reason != "TASK_NOT_FOUND" || info.Domain != "a2a-protocol.org" {
		t.Fatalf("GetTask of no task: %v %q, ErrorInfo %+v; want NotFound with reason TASK_NOT_FOUND", st.Code(), st.Message(), info)
	}
}

func rawClient(t *testing.T, addr string) a2apb.A2AServiceClient {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return a2apb.NewA2AServiceClient(conn)
}

// TestGRPCTenants: the tenant names the agent; what follows "<agent>/" is
// the tenant the agent sees; a call naming none goes to the default agent,
// or is refused saying what to send; an unknown agent is an invalid
// argument, not TaskNotFound.
func TestGRPCTenants(t *testing.T) {
	ctx := testCtx(t, time.Minute)
	send := func(raw a2apb.A2AServiceClient, tenant string) (string, error) {
		res, err := raw.SendMessage(ctx, &a2apb.SendMessageRequest{Tenant: tenant, Message: &a2apb.Message{
			MessageId: "m-" + tenant, Role: a2apb.Role_ROLE_USER, Parts: []*a2apb.Part{{Content: &a2apb.Part_Text{Text: "hi"}}},
		}})
		if err != nil {
			return "", err
		}
		var b strings.Builder
		for _, p := range res.GetMessage().GetParts() {
			b.WriteString(p.GetText())
		}
		return b.String(), nil
	}

	_, addr := grpcGateway(t, gateway.Config{})
	raw := rawClient(t, addr)
	for _, tc := range []struct{ tenant, want string }{
		{"tenant", "tenant="},
		{"tenant/acme", "tenant=acme"},
		{"echo", "hi"},
	} {
		if got, err := send(raw, tc.tenant); err != nil || got != tc.want {
			t.Fatalf("tenant %q: %q, %v; want %q", tc.tenant, got, err, tc.want)
		}
	}
	if _, err := send(raw, ""); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "set the request's tenant to the agent's ID") {
		t.Fatalf("no tenant, no default agent: %v, want InvalidArgument saying what to send", err)
	}
	if _, err := send(raw, "nobody"); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), `unknown agent "nobody"`) {
		t.Fatalf("unknown agent: %v, want InvalidArgument naming it", err)
	}

	_, addr = grpcGateway(t, gateway.Config{GRPCDefaultAgent: "tenant"})
	if got, err := send(rawClient(t, addr), ""); err != nil || got != "tenant=" {
		t.Fatalf("no tenant, default agent: %q, %v", got, err)
	}
}

// TestTenantThroughTheBus: a tenant a client sends reaches the agent's
// executor on every binding.
func TestTenantThroughTheBus(t *testing.T) {
	hs, _ := grpcGateway(t, gateway.Config{})
	ctx := testCtx(t, time.Minute)
	for _, tc := range []struct {
		name   string
		client *a2aclient.Client
	}{
		{"jsonrpc", sdkClientOn(t, hs, "tenant", a2a.TransportProtocolJSONRPC)},
		{"http+json", sdkClientOn(t, hs, "tenant", a2a.TransportProtocolHTTPJSON)},
	} {
		req := text("hi")
		req.Tenant = "acme"
		res, err := tc.client.SendMessage(ctx, req)
		if msg, ok := res.(*a2a.Message); err != nil || !ok || demoagent.Text(msg) != "tenant=acme" {
			t.Fatalf("%s: %#v, %v; want the agent to see tenant acme", tc.name, res, err)
		}
	}
	// gRPC: the card's tenant routes the call; the client's own tenant
	// goes after it.
	req := text("hi")
	req.Tenant = "tenant/acme"
	res, err := grpcClient(t, hs, "tenant").SendMessage(ctx, req)
	if msg, ok := res.(*a2a.Message); err != nil || !ok || demoagent.Text(msg) != "tenant=acme" {
		t.Fatalf("grpc: %#v, %v; want the agent to see tenant acme", res, err)
	}
}

// sdkClientOn is an a2a-go client of agent on one binding of its card.
func sdkClientOn(t *testing.T, hs *httptest.Server, agent string, binding a2a.TransportProtocol) *a2aclient.Client {
	t.Helper()
	ctx := testCtx(t, 30*time.Second)
	card, err := agentcard.DefaultResolver.Resolve(ctx, hs.URL+gateway.Prefix+agent)
	if err != nil {
		t.Fatal(err)
	}
	c, err := a2aclient.NewFromCard(ctx, card, a2aclient.WithConfig(a2aclient.Config{PreferredTransports: []a2a.TransportProtocol{binding}}))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestGRPCAuth: the gRPC binding has the HTTP bindings' door: a bearer
// token in the metadata, or a verified client certificate over TLS.
func TestGRPCAuth(t *testing.T) {
	ctx := testCtx(t, time.Minute)
	srv := embeddedtest.RunServer(t)
	a2anatstest.Host(t, srv, map[string]a2asrv.AgentExecutor{"echo": demoagent.Echo{}})
	msg := &a2apb.SendMessageRequest{Tenant: "echo", Message: &a2apb.Message{
		MessageId: "m1", Role: a2apb.Role_ROLE_USER, Parts: []*a2apb.Part{{Content: &a2apb.Part_Text{Text: "hi"}}},
	}}

	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	serveGRPC(t, newGateway(t, srv, gateway.Config{Token: "s3cret"}), ln, nil)
	raw := rawClient(t, ln.Addr().String())
	if _, err := raw.SendMessage(ctx, msg); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("no token: %v, want Unauthenticated", err)
	}
	bad := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer wrong")
	if _, err := raw.SendMessage(bad, msg); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("wrong token: %v, want Unauthenticated", err)
	}
	good := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer s3cret")
	if _, err := raw.SendMessage(good, msg); err != nil {
		t.Fatalf("right token: %v", err)
	}

	certs := embeddedtest.NewCerts(t)
	ln, _ = net.Listen("tcp", "127.0.0.1:0")
	serverTLS := certs.ServerTLS()
	serverTLS.ClientCAs, serverTLS.ClientAuth = certs.Pool, tls.VerifyClientCertIfGiven
	serveGRPC(t, newGateway(t, srv, gateway.Config{ClientCerts: true}), ln, credentials.NewTLS(serverTLS))
	for _, tc := range []struct {
		name  string
		certs []tls.Certificate
		want  codes.Code
	}{{"with a client certificate", []tls.Certificate{certs.Client}, codes.OK}, {"without one", nil, codes.Unauthenticated}} {
		creds := credentials.NewTLS(&tls.Config{RootCAs: certs.Pool, Certificates: tc.certs, ServerName: "localhost"})
		conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(creds))
		if err != nil {
			t.Fatal(err)
		}
		_, err = a2apb.NewA2AServiceClient(conn).SendMessage(ctx, msg)
		conn.Close()
		if status.Code(err) != tc.want {
			t.Fatalf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
}

// TestGRPCClosed: a stream open when the gateway closes ends with
// Unavailable, which tells a client to try another agentd.
func TestGRPCClosed(t *testing.T) {
	srv := embeddedtest.RunServer(t)
	// Long enough to be running at Close, short enough for the member's
	// drain at the test's end.
	a2anatstest.Host(t, srv, map[string]a2asrv.AgentExecutor{"slow": demoagent.Worker{Delay: 3 * time.Second}})
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	gw := newGateway(t, srv, gateway.Config{GRPC: ln.Addr().String()})
	serveGRPC(t, gw, ln, nil)
	ctx := testCtx(t, time.Minute)
	stream, err := rawClient(t, ln.Addr().String()).SendStreamingMessage(ctx, &a2apb.SendMessageRequest{Tenant: "slow", Message: &a2apb.Message{
		MessageId: "m1", Role: a2apb.Role_ROLE_USER, Parts: []*a2apb.Part{{Content: &a2apb.Part_Text{Text: "hi"}}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil {
		t.Fatalf("first event: %v", err)
	}
	gw.Close()
	for {
		_, err := stream.Recv()
		if err == nil {
			continue
		}
		if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "agentd is stopping") {
			t.Fatalf("stream after Close: %v, want Unavailable saying agentd is stopping", err)
		}
		return
	}
}

var _ http.Handler = (*gateway.Gateway)(nil)
