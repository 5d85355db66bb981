package gateway_test

import (
	"context"
	"fmt"
	"iter"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/a2abus/a2abus/agentbus"
	"github.com/a2abus/a2abus/agentbus/a2anats"
	"github.com/a2abus/a2abus/agentbus/a2anats/a2anatstest"
	"github.com/a2abus/a2abus/embedded"
	"github.com/a2abus/a2abus/embedded/embeddedtest"
	"github.com/a2abus/a2abus/internal/demoagent"
	"github.com/a2abus/a2abus/internal/gateway"
	"github.com/a2aproject/a2a-go/v2/a2a"
	"github.com/a2aproject/a2a-go/v2/a2aclient"
	"github.com/a2aproject/a2a-go/v2/a2aclient/agentcard"
	a2apb "github.com/a2aproject/a2a-go/v2/a2apb/v1"
	"github.com/a2aproject/a2a-go/v2/a2asrv"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/metadata"
)

// tracedSetup hosts echo and worker (a streaming task) on a bus traced
// with agentTP and serves them through a gateway traced with gatewayTP
// (nil: the buses and the gateway use the global provider, unset: no
// tracing), calling in mode.
func tracedSetup(t *testing.T, srv *embedded.Server, agentTP, gatewayTP trace.TracerProvider, mode agentbus.RequestMode) *httptest.Server {
	t.Helper()
	return serveHTTP(t, tracedGateway(t, srv, agentTP, gatewayTP, mode))
}

// tracedGateway is tracedSetup's gateway, not yet served.
func tracedGateway(t *testing.T, srv *embedded.Server, agentTP, gatewayTP trace.TracerProvider, mode agentbus.RequestMode) *gateway.Gateway {
	t.Helper()
	ctx := testCtx(t, 30*time.Second)
	var busOpts []agentbus.Option
	if agentTP != nil {
		busOpts = append(busOpts, agentbus.WithTracerProvider(agentTP))
	}
	bus := a2anatstest.ConnectBus(t, srv, busOpts...)
	reg, err := a2anats.NewRegistry(ctx, bus)
	if err != nil {
		t.Fatal(err)
	}
	var servers []*a2anats.Server
	for id, exec := range map[string]a2asrv.AgentExecutor{"echo": demoagent.Echo{}, "worker": demoagent.Worker{Delay: 20 * time.Millisecond}} {
		tasks, err := a2anats.NewTaskStore(ctx, bus, id, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		s, err := a2anats.Handle(bus, id, a2asrv.NewHandler(exec, a2asrv.WithTaskStore(tasks)), a2anats.ServerLogger(embeddedtest.Logger(t)))
		if err != nil {
			t.Fatal(err)
		}
		servers = append(servers, s)
		if err := reg.Register(ctx, id, a2anatstest.Card(id), ""); err != nil {
			t.Fatal(err)
		}
	}
	a2anatstest.Serve(t, bus, a2anatstest.PoolName("traced", mode.String()), servers...)

	var gwOpts []agentbus.Option
	if gatewayTP != nil {
		gwOpts = append(gwOpts, agentbus.WithTracerProvider(gatewayTP))
	}
	gwBus := a2anatstest.ConnectBus(t, srv, gwOpts...)
	gwReg, err := a2anats.NewRegistry(ctx, gwBus)
	if err != nil {
		t.Fatal(err)
	}
	gw, err := gateway.New(gwBus, gwReg, gateway.Config{Mode: mode, Logger: embeddedtest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(gw.Close)
	return gw
}

// tracedClient is an a2a-go client of agent whose HTTP calls are traced
// with tp and carry their trace context, as an instrumented A2A client's.
func tracedSDKClient(t *testing.T, hs *httptest.Server, agent string, tp trace.TracerProvider) *a2aclient.Client {
	t.Helper()
	ctx := testCtx(t, 30*time.Second)
	hc := &http.Client{Transport: otelhttp.NewTransport(http.DefaultTransport, otelhttp.WithTracerProvider(tp),
		otelhttp.WithPropagators(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})))}
	card, err := agentcard.NewResolver(hc).Resolve(ctx, hs.URL+gateway.Prefix+agent)
	if err != nil {
		t.Fatal(err)
	}
	c, err := a2aclient.NewFromCard(ctx, card, a2aclient.WithJSONRPCTransport(hc))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// spanTree indexes ended spans for checks of their parents.
type spanTree struct {
	t     *testing.T
	spans []tracetest.SpanStub
}

func (s spanTree) one(name string, kind trace.SpanKind) tracetest.SpanStub {
	s.t.Helper()
	var found []tracetest.SpanStub
	for _, sp := range s.spans {
		if sp.Name == name && sp.SpanKind == kind {
			found = append(found, sp)
		}
	}
	if len(found) != 1 {
		s.t.Fatalf("%d spans %q (%v), want 1; spans: %s", len(found), name, kind, s.names())
	}
	return found[0]
}

func (s spanTree) names() string {
	var n []string
	for _, sp := range s.spans {
		n = append(n, sp.Name+"("+sp.SpanKind.String()+")")
	}
	return strings.Join(n, ", ")
}

func (s spanTree) parent(child, parent tracetest.SpanStub) {
	s.t.Helper()
	if child.SpanContext.TraceID() != parent.SpanContext.TraceID() || child.Parent.SpanID() != parent.SpanContext.SpanID() {
		s.t.Fatalf("span %q is not a child of %q in its trace; spans: %s", child.Name, parent.Name, s.names())
	}
}

// waitSpans waits until exp holds a span named name of kind, up to 10 s
// (the agent's spans end after the answer the client got).
func waitSpans(t *testing.T, exp *tracetest.InMemoryExporter, name string, n int) spanTree {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		c := 0
		for _, s := range exp.GetSpans() {
			if s.Name == name {
				c++
			}
		}
		if c >= n {
			break
		}
	}
	return spanTree{t, exp.GetSpans()}
}

// TestTraceFromSDKClientToExecutor: one SendMessage from the a2a-go client
// through the gateway to an agent on the bus and back is one trace, in
// each mode: client → HTTP → gateway → A2A client over the bus → send →
// process → A2A server → reply; a streaming call's answers are in it too.
func TestTraceFromSDKClientToExecutor(t *testing.T) {
	for _, mode := range []agentbus.RequestMode{agentbus.Durable, agentbus.Direct, agentbus.Auto} {
		t.Run(mode.String(), func(t *testing.T) {
			srv := embeddedtest.RunServer(t) // a server per mode: its agents' pool
			exp := tracetest.NewInMemoryExporter()
			tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
			hs := tracedSetup(t, srv, tp, tp, mode)
			ctx := testCtx(t, 30*time.Second)

			echo := tracedSDKClient(t, hs, "echo", tp)
			exp.Reset()
			cctx, root := tp.Tracer("test").Start(ctx, "user request")
			if _, err := echo.SendMessage(cctx, text("hello")); err != nil {
				t.Fatal(err)
			}
			root.End()
			tree := waitSpans(t, exp, "reply", 1)
			for _, s := range tree.spans {
				if s.SpanContext.TraceID() != root.SpanContext().TraceID() {
					t.Fatalf("span %q in trace %s, want all in %s; spans: %s", s.Name, s.SpanContext.TraceID(), root.SpanContext().TraceID(), tree.names())
				}
			}
			httpClient := tree.one("HTTP POST", trace.SpanKindClient)
			tree.parent(httpClient, tracetest.SpanStubFromReadOnlySpan(root.(sdktrace.ReadOnlySpan)))
			gw := tree.one("POST /a2a/{agent}", trace.SpanKindServer)
			tree.parent(gw, httpClient)
			call := tree.one("SendMessage", trace.SpanKindClient)
			tree.parent(call, gw)
			send := tree.one("send echo", trace.SpanKindProducer)
			tree.parent(send, call)
			process := tree.one("process echo", trace.SpanKindConsumer)
			tree.parent(process, send)
			server := tree.one("SendMessage", trace.SpanKindServer)
			tree.parent(server, process)
			reply := tree.one("reply", trace.SpanKindProducer)
			tree.parent(reply, server)
			if attr(server, "gen_ai.agent.id") != "echo" || attr(call, "a2a.method.name") != "SendMessage" || attr(call, "a2a.message.id") == "" {
				t.Fatalf("A2A attributes: client %v, server %v", call.Attributes, server.Attributes)
			}
			if d := attr(send, "a2abus.direct"); (mode == agentbus.Durable) != (d == "false") {
				t.Fatalf("mode %s: send span a2abus.direct=%s", mode, d)
			}

			// A streaming call: every answer is sent in the trace, and the
			// client's span has an event per answer.
			// A stored call's batch is acknowledged, and its receive span
			// ended, after the answer: let it end before the next call.
			if mode == agentbus.Durable {
				waitSpans(t, exp, "receive echo", 1).one("receive echo", trace.SpanKindClient)
			}
			worker := tracedSDKClient(t, hs, "worker", tp)
			exp.Reset()
			cctx, root = tp.Tracer("test").Start(ctx, "user stream")
			events := 0
			for _, err := range worker.SendStreamingMessage(cctx, text("job")) {
				if err != nil {
					t.Fatal(err)
				}
				events++
			}
			root.End()
			tree = waitSpans(t, exp, "reply", events+1)
			stream := tree.one("SendStreamingMessage", trace.SpanKindClient)
			server = tree.one("SendStreamingMessage", trace.SpanKindServer)
			replies := 0
			for _, s := range tree.spans {
				if s.SpanContext.TraceID() != root.SpanContext().TraceID() {
					t.Fatalf("span %q outside the stream's trace; spans: %s", s.Name, tree.names())
				}
				if s.Name == "reply" {
					tree.parent(s, server)
					replies++
				}
			}
			if replies != events+1 || len(stream.Events) != events+1 {
				t.Fatalf("%d events: %d reply spans, %d answer events on the client span, want %d each", events, replies, len(stream.Events), events+1)
			}
			if attr(stream, "a2a.task.state") != string(a2a.TaskStateCompleted) || attr(stream, "a2a.task.id") == "" {
				t.Fatalf("stream span attributes %v", stream.Attributes)
			}
		})
	}
}

// TestTraceOverGRPC: a gRPC call whose metadata carry the caller's trace
// context continues that trace through the gateway's gRPC binding and the
// bus to the agent.
func TestTraceOverGRPC(t *testing.T) {
	srv := embeddedtest.RunServer(t)
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	gw := tracedGateway(t, srv, tp, tp, agentbus.Auto)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serveGRPC(t, gw, ln, nil)
	raw := rawClient(t, ln.Addr().String())

	ctx, root := tp.Tracer("test").Start(testCtx(t, 30*time.Second), "user request")
	md := metadata.MD{}
	propagation.TraceContext{}.Inject(ctx, metadataCarrier(md))
	if _, err := raw.SendMessage(metadata.NewOutgoingContext(ctx, md), &a2apb.SendMessageRequest{Tenant: "echo", Message: &a2apb.Message{
		MessageId: "m1", Role: a2apb.Role_ROLE_USER, Parts: []*a2apb.Part{{Content: &a2apb.Part_Text{Text: "hi"}}},
	}}); err != nil {
		t.Fatal(err)
	}
	root.End()
	tree := waitSpans(t, exp, "reply", 1)
	server := tree.one("lf.a2a.v1.A2AService/SendMessage", trace.SpanKindServer)
	tree.parent(server, tracetest.SpanStubFromReadOnlySpan(root.(sdktrace.ReadOnlySpan)))
	call := tree.one("SendMessage", trace.SpanKindClient)
	tree.parent(call, server)
	tree.parent(tree.one("process echo", trace.SpanKindConsumer), tree.one("send echo", trace.SpanKindProducer))
	if attr(server, "rpc.response.status_code") != "OK" {
		t.Fatalf("gRPC span attributes %v", server.Attributes)
	}
}

// metadataCarrier injects a trace context into gRPC metadata.
type metadataCarrier metadata.MD

func (c metadataCarrier) Get(key string) string { return strings.Join(metadata.MD(c).Get(key), ",") }
func (c metadataCarrier) Set(key, value string) { metadata.MD(c).Set(key, value) }
func (c metadataCarrier) Keys() []string {
	var keys []string
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}

// TestTraceOffPassesContextOn: with tracing off in the gateway and on the
// bus, they make no span, and the caller's trace still reaches the
// agent's executor.
func TestTraceOffPassesContextOn(t *testing.T) {
	srv := embeddedtest.RunServer(t)
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp)) // the client's only
	seen := make(chan trace.SpanContext, 1)
	bus := a2anatstest.ConnectBus(t, srv)
	reg, err := a2anats.NewRegistry(testCtx(t, 30*time.Second), bus)
	if err != nil {
		t.Fatal(err)
	}
	s, err := a2anats.Handle(bus, "spy", a2asrv.NewHandler(spy{seen}))
	if err != nil {
		t.Fatal(err)
	}
	if err := reg.Register(testCtx(t, 30*time.Second), "spy", a2anatstest.Card("spy"), ""); err != nil {
		t.Fatal(err)
	}
	a2anatstest.Serve(t, bus, a2anatstest.PoolName("spy"), s)
	hs := startGateway(t, srv, gateway.Config{Mode: agentbus.Auto})
	c := tracedSDKClient(t, hs, "spy", tp)
	ctx, root := tp.Tracer("test").Start(testCtx(t, 30*time.Second), "user request")
	if _, err := c.SendMessage(ctx, text("hello")); err != nil {
		t.Fatal(err)
	}
	root.End()
	sc := <-seen
	if sc.TraceID() != root.SpanContext().TraceID() {
		t.Fatalf("the executor's context is in trace %s, want the caller's %s", sc.TraceID(), root.SpanContext().TraceID())
	}
	time.Sleep(100 * time.Millisecond) // a span ended late would show
	for _, sp := range exp.GetSpans() {
		if sp.Name != "user request" && sp.Name != "HTTP POST" && sp.Name != "HTTP GET" {
			t.Fatalf("span %q made with tracing off", sp.Name)
		}
	}
}

// spy answers with a message and reports the trace its context is in.
type spy struct{ seen chan trace.SpanContext }

func (s spy) Execute(ctx context.Context, ec *a2asrv.ExecutorContext) iter.Seq2[a2a.Event, error] {
	return func(yield func(a2a.Event, error) bool) {
		select {
		case s.seen <- trace.SpanContextFromContext(ctx):
		default:
		}
		yield(a2a.NewMessage(a2a.MessageRoleAgent, a2a.NewTextPart("ok")), nil)
	}
}

func (spy) Cancel(context.Context, *a2asrv.ExecutorContext) iter.Seq2[a2a.Event, error] {
	return func(func(a2a.Event, error) bool) {}
}

func attr(s tracetest.SpanStub, key string) string {
	for _, kv := range s.Attributes {
		if string(kv.Key) == key {
			return kv.Value.String()
		}
	}
	return ""
}

// plod works on a task until its context ends, when block is set, and
// otherwise completes it at once.
type plod struct {
	started chan<- struct{}
	block   bool
}

func (p plod) Execute(ctx context.Context, ec *a2asrv.ExecutorContext) iter.Seq2[a2a.Event, error] {
	return func(yield func(a2a.Event, error) bool) {
		if ec.StoredTask == nil && !yield(a2a.NewSubmittedTask(ec, ec.Message), nil) {
			return
		}
		if !yield(a2a.NewStatusUpdateEvent(ec, a2a.TaskStateWorking, nil), nil) {
			return
		}
		p.started <- struct{}{}
		if p.block {
			<-ctx.Done()
			yield(nil, ctx.Err())
			return
		}
		yield(a2a.NewStatusUpdateEvent(ec, a2a.TaskStateCompleted, nil), nil)
	}
}

func (plod) Cancel(context.Context, *a2asrv.ExecutorContext) iter.Seq2[a2a.Event, error] {
	return func(func(a2a.Event, error) bool) {}
}

// TestTraceAcrossHandOver: a stored SendMessage through the gateway whose
// member stops mid-call goes back to the stream, and the pool's next
// member runs it again in the task the first run made: both runs and the
// answer are in the caller's one trace.
func TestTraceAcrossHandOver(t *testing.T) {
	srv := embeddedtest.RunServer(t)
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	ctx := testCtx(t, time.Minute)
	const pool = "handover"
	started := make(chan struct{}, 2)
	host := func(block bool) (stop func()) {
		bus := a2anatstest.ConnectBus(t, srv, agentbus.WithTracerProvider(tp))
		tasks, err := a2anats.NewTaskStore(ctx, bus, "plod", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		s, err := a2anats.Handle(bus, "plod", a2asrv.NewHandler(plod{started, block}, a2asrv.WithTaskStore(tasks)))
		if err != nil {
			t.Fatal(err)
		}
		sctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			done <- bus.Serve(sctx, agentbus.ServePool(pool), agentbus.ServePartitions(1),
				agentbus.ServeMemberTTL(time.Second), agentbus.ServeDrainTimeout(10*time.Millisecond))
		}()
		return func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Serve: %v", err)
			}
			_ = s.Close(ctx)
		}
	}
	gwBus := a2anatstest.ConnectBus(t, srv, agentbus.WithTracerProvider(tp))
	if _, err := gwBus.Declare(ctx, agentbus.PoolConfig{Name: pool, Partitions: 1}, "plod"); err != nil {
		t.Fatal(err)
	}
	reg, err := a2anats.NewRegistry(ctx, gwBus)
	if err != nil {
		t.Fatal(err)
	}
	if err := reg.Register(ctx, "plod", a2anatstest.Card("plod"), ""); err != nil {
		t.Fatal(err)
	}
	gw, err := gateway.New(gwBus, reg, gateway.Config{Mode: agentbus.Durable, Logger: embeddedtest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(gw.Close)
	c := tracedSDKClient(t, serveHTTP(t, gw), "plod", tp)

	stopFirst := host(true)
	exp.Reset()
	cctx, root := tp.Tracer("test").Start(ctx, "user request")
	answer := make(chan error, 1)
	go func() {
		res, err := c.SendMessage(cctx, text("job"))
		if task, ok := res.(*a2a.Task); err == nil && (!ok || task.Status.State != a2a.TaskStateCompleted) {
			err = fmt.Errorf("answer %#v, want the task completed", res)
		}
		answer <- err
	}()
	<-started
	stopFirst()
	defer host(false)()
	if err := <-answer; err != nil {
		t.Fatal(err)
	}
	root.End()

	tree := waitSpans(t, exp, "process plod", 2)
	for _, s := range tree.spans {
		if s.SpanContext.TraceID() != root.SpanContext().TraceID() {
			t.Fatalf("span %q outside the caller's trace; spans: %s", s.Name, tree.names())
		}
	}
	send := tree.one("send plod", trace.SpanKindProducer)
	var deliveries []string
	for _, s := range tree.spans {
		if s.Name == "process plod" {
			tree.parent(s, send)
			deliveries = append(deliveries, attr(s, "a2abus.delivery.count"))
		}
	}
	if len(deliveries) != 2 || deliveries[0] == deliveries[1] {
		t.Fatalf("process spans of deliveries %v, want the first delivery and its redelivery", deliveries)
	}
	var runs int
	for _, s := range tree.spans {
		if s.Name == "SendMessage" && s.SpanKind == trace.SpanKindServer {
			runs++
		}
	}
	if runs != 2 {
		t.Fatalf("%d SERVER SendMessage spans, want one per run; spans: %s", runs, tree.names())
	}
}
