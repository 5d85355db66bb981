package agentbus_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/a2abus/a2abus/agentbus"
	"github.com/a2abus/a2abus/codec"
	"github.com/a2abus/a2abus/embedded/embeddedtest"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// tracer is a tracer provider recording every span in memory.
func tracer(t *testing.T) (*sdktrace.TracerProvider, *tracetest.InMemoryExporter) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return tp, exp
}

// spansNamed returns the ended spans named name, failing the test when
// there are not want of them (-1: any, at least one). Spans end as their
// work does, after the answers the test waited for: it waits up to 10 s
// for them to end.
func spansNamed(t *testing.T, exp *tracetest.InMemoryExporter, name string, want int) []tracetest.SpanStub {
	t.Helper()
	var out []tracetest.SpanStub
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		out = out[:0]
		for _, s := range exp.GetSpans() {
			if s.Name == name {
				out = append(out, s)
			}
		}
		if len(out) >= max(want, 1) || time.Now().After(deadline) {
			break
		}
	}
	if (want < 0 && len(out) == 0) || (want >= 0 && len(out) != want) {
		var names []string
		for _, s := range exp.GetSpans() {
			names = append(names, s.Name)
		}
		t.Fatalf("%d spans named %q, want %d; spans: %s", len(out), name, want, strings.Join(names, ", "))
	}
	return out
}

// childOf fails the test unless span's parent is parent, in one trace.
func childOf(t *testing.T, span tracetest.SpanStub, parent trace.SpanContext) {
	t.Helper()
	if span.SpanContext.TraceID() != parent.TraceID() || span.Parent.SpanID() != parent.SpanID() {
		t.Fatalf("span %q: trace %s parent %s, want trace %s parent %s", span.Name,
			span.SpanContext.TraceID(), span.Parent.SpanID(), parent.TraceID(), parent.SpanID())
	}
}

func attr(s tracetest.SpanStub, key string) attribute.Value {
	for _, kv := range s.Attributes {
		if string(kv.Key) == key {
			return kv.Value
		}
	}
	return attribute.Value{}
}

// TestTraceRequestModes: a request in each mode is one trace from the
// caller's span through the send, the handler's process span and its
// reply, and the handler's context holds the caller's trace.
func TestTraceRequestModes(t *testing.T) {
	srv := embeddedtest.RunServer(t)
	tp, exp := tracer(t)
	server := connectBus(t, srv, agentbus.WithTracerProvider(tp))
	var mu sync.Mutex
	seen := map[string]trace.SpanContext{} // envelope ID -> the handler's span
	if err := server.Handle("echo", func(ctx context.Context, env *codec.Envelope) error {
		mu.Lock()
		seen[env.ID] = trace.SpanContextFromContext(ctx)
		mu.Unlock()
		return server.Reply(ctx, env, &codec.Envelope{Kind: "message", Message: env.Message})
	}); err != nil {
		t.Fatal(err)
	}
	pool := declarePool(t, server, agentbus.PoolConfig{Name: "traced", Partitions: 4}, "echo")
	serve(t, server, agentbus.ServePool("traced"), agentbus.ServePartitions(4))
	client := connectBus(t, srv, agentbus.WithTracerProvider(tp))
	waitDirectSubs(t, srv, pool)

	for _, mode := range []agentbus.RequestMode{agentbus.Durable, agentbus.Direct, agentbus.Auto} {
		t.Run(mode.String(), func(t *testing.T) {
			exp.Reset()
			ctx, root := tp.Tracer("test").Start(testCtx(t, 30*time.Second), "caller")
			env := textEnvelope("asker", "echo", "", "hi "+mode.String())
			reply, err := client.Request(ctx, env, mode)
			root.End()
			if err != nil {
				t.Fatal(err)
			}
			request := spansNamed(t, exp, "request echo", 1)[0]
			childOf(t, request, root.SpanContext())
			if got := attr(request, "a2abus.request.mode").AsString(); got != mode.String() {
				t.Fatalf("request mode %q", got)
			}
			process := spansNamed(t, exp, "process echo", 1)[0]
			if mode == agentbus.Durable {
				send := spansNamed(t, exp, "send echo", 1)[0]
				childOf(t, send, request.SpanContext)
				childOf(t, process, send.SpanContext)
				if attr(send, "messaging.system").AsString() != "nats" || attr(send, "messaging.message.id").AsString() != env.ID {
					t.Fatalf("send attributes %v", send.Attributes)
				}
				publish := spansNamed(t, exp, "publish echo", 1)[0]
				childOf(t, publish, send.SpanContext)
				if len(publish.Links) != 1 || publish.Links[0].SpanContext.SpanID() != send.SpanContext.SpanID() {
					t.Fatalf("publish links %v", publish.Links)
				}
				receive := spansNamed(t, exp, "receive echo", 1)[0]
				childOf(t, receive, send.SpanContext)
				if attr(receive, "a2abus.settle").AsString() != "ack" || attr(receive, "a2abus.delivery.count").AsInt64() != 1 {
					t.Fatalf("receive attributes %v", receive.Attributes)
				}
			} else {
				childOf(t, process, request.SpanContext) // a direct request carries its own context
			}
			if attr(process, "messaging.destination.partition.id").AsString() == "" || attr(process, "messaging.consumer.group.name").AsString() != "traced" {
				t.Fatalf("process attributes %v", process.Attributes)
			}
			replySpan := spansNamed(t, exp, "reply", 1)[0]
			childOf(t, replySpan, process.SpanContext)
			mu.Lock()
			handlerSpan := seen[env.ID]
			mu.Unlock()
			if handlerSpan.SpanID() != process.SpanContext.SpanID() {
				t.Fatalf("the handler's context holds span %s, want the process span %s", handlerSpan.SpanID(), process.SpanContext.SpanID())
			}
			// The reply carries the replier's context.
			if tp := reply.Headers.Get("traceparent"); !strings.Contains(tp, replySpan.SpanContext.SpanID().String()) {
				t.Fatalf("reply traceparent %q, want the reply span %s", tp, replySpan.SpanContext.SpanID())
			}
		})
	}
}

// TestTraceRedeliveryHandOverAndDeadLetter: a stored envelope whose
// member stops mid-handler is handed over and redelivered to another
// member; both handler attempts, and the retries and dead letter that
// follow, are in the sender's trace.
func TestTraceRedeliveryHandOverAndDeadLetter(t *testing.T) {
	srv := embeddedtest.RunServer(t)
	tp, exp := tracer(t)
	started := make(chan struct{}, 1)
	first := connectBus(t, srv, agentbus.WithTracerProvider(tp))
	if err := first.Handle("worker", func(ctx context.Context, env *codec.Envelope) error {
		started <- struct{}{}
		<-ctx.Done() // stopped mid-call: the batch goes to the next member
		return ctx.Err()
	}); err != nil {
		t.Fatal(err)
	}
	declarePool(t, first, agentbus.PoolConfig{Name: "handover", Partitions: 1}, "worker")
	stopFirst := serve(t, first, agentbus.ServePool("handover"), agentbus.ServePartitions(1),
		agentbus.ServeDrainTimeout(10*time.Millisecond), agentbus.ServeMemberTTL(2*time.Second))

	client := connectBus(t, srv, agentbus.WithTracerProvider(tp))
	ctx, root := tp.Tracer("test").Start(testCtx(t, time.Minute), "caller")
	if err := client.Send(ctx, textEnvelope("asker", "worker", "job-1", "work")); err != nil {
		t.Fatal(err)
	}
	root.End()
	<-started
	stopFirst()

	second := connectBus(t, srv, agentbus.WithTracerProvider(tp))
	var attempts int
	done := make(chan struct{})
	if err := second.Handle("worker", func(ctx context.Context, env *codec.Envelope) error {
		if d, _ := agentbus.DeliveryOf(ctx); d.Delivered < 2 {
			return errors.New("not a redelivery")
		}
		attempts++
		if attempts == 2 {
			close(done)
		}
		return fmt.Errorf("attempt %d failed", attempts)
	}); err != nil {
		t.Fatal(err)
	}
	serve(t, second, agentbus.ServePool("handover"), agentbus.ServePartitions(1), fastRetries, agentbus.ServeMaxAttempts(2),
		agentbus.ServeMemberTTL(2*time.Second))
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatal("the second member did not get the batch again within a minute")
	}
	waitFor(t, "the dead letter's span", func() bool {
		for _, s := range exp.GetSpans() {
			if s.Name == "dead-letter worker" {
				return true
			}
		}
		return false
	})

	send := spansNamed(t, exp, "send worker", 1)[0]
	childOf(t, send, root.SpanContext())
	process := spansNamed(t, exp, "process worker", 3)
	var redelivered int
	for _, p := range process {
		childOf(t, p, send.SpanContext)
		if attr(p, "a2abus.delivery.count").AsInt64() >= 2 {
			redelivered++
			if p.Status.Code.String() != "Error" {
				t.Fatalf("failed attempt's span status %v", p.Status)
			}
		}
	}
	if redelivered != 2 {
		t.Fatalf("%d process spans of the redelivery, want 2 (its two attempts)", redelivered)
	}
	dead := spansNamed(t, exp, "dead-letter worker", 1)[0]
	childOf(t, dead, send.SpanContext)
	// The dead letter carries the trace: its envelope keeps the sender's
	// context, its NATS headers the dead-letter span's.
	dls := deadLetters(t, client.Conn())
	if len(dls) != 1 {
		t.Fatalf("%d dead letters", len(dls))
	}
	var dlEnv codec.Envelope
	if err := client.Codec().DecodeEnvelope(dls[0].Data, &dlEnv); err != nil {
		t.Fatal(err)
	}
	if got := dlEnv.Headers.Get("traceparent"); !strings.Contains(got, send.SpanContext.SpanID().String()) {
		t.Fatalf("dead envelope's traceparent %q, want the send span %s", got, send.SpanContext.SpanID())
	}
	dlCtx := propagation.TraceContext{}.Extract(context.Background(), propagation.MapCarrier{"traceparent": strings.Join(dls[0].Header["traceparent"], "")})
	if sc := trace.SpanContextFromContext(dlCtx); sc.SpanID() != dead.SpanContext.SpanID() {
		t.Fatalf("dead letter's NATS traceparent names span %s, want the dead-letter span %s (headers %v)", sc.SpanID(), dead.SpanContext.SpanID(), dls[0].Header)
	}
}

// TestTraceOffMakesNoSpanAndPassesContextOn: a bus without a tracer
// provider makes no span and allocates nothing for tracing per envelope,
// and still carries a caller's trace context to the handler.
func TestTraceOffMakesNoSpanAndPassesContextOn(t *testing.T) {
	srv := embeddedtest.RunServer(t)
	tp, exp := tracer(t) // the caller's own; the buses use the global one, unset
	server := connectBus(t, srv)
	got := make(chan trace.SpanContext, 1)
	if err := server.Handle("quiet", func(ctx context.Context, env *codec.Envelope) error {
		got <- trace.SpanContextFromContext(ctx) // one envelope only
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	declarePool(t, server, agentbus.PoolConfig{Name: "quiet", Partitions: 1}, "quiet")
	serve(t, server, agentbus.ServePool("quiet"), agentbus.ServePartitions(1))
	client := connectBus(t, srv)
	ctx, root := tp.Tracer("test").Start(testCtx(t, 30*time.Second), "caller")
	if err := client.Send(ctx, textEnvelope("asker", "quiet", "", "psst")); err != nil {
		t.Fatal(err)
	}
	root.End()
	if sc := <-got; sc.TraceID() != root.SpanContext().TraceID() || sc.SpanID() != root.SpanContext().SpanID() || !sc.IsRemote() {
		t.Fatalf("handler's context %v, want the caller's span %v, remote", sc, root.SpanContext())
	}
	time.Sleep(100 * time.Millisecond) // a span ended late would show
	if spans := exp.GetSpans(); len(spans) != 1 {
		t.Fatalf("%d spans, want only the caller's: %v", len(spans), spans)
	}
}
