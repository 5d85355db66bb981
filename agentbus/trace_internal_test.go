package agentbus

import (
	"context"
	"testing"

	"github.com/a2abus/a2abus/codec"
	"github.com/a2abus/a2abus/internal/tracing"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// TestTracingOffAllocatesNothing: without a tracer provider (the global
// one, unset), what tracing adds to sending and handling an envelope
// without a trace context allocates nothing and writes no header.
func TestTracingOffAllocatesNothing(t *testing.T) {
	b := &Bus{cfg: config{tracer: tracing.New(nil)}}
	env := &codec.Envelope{ID: "m", To: "agent", Headers: codec.Headers{{Key: "a2a-context-id", Value: "c"}}}
	ctx := context.Background()
	if n := testing.AllocsPerRun(1000, func() {
		endSpan(b.startSend(ctx, env, "a2a.in.pool.p0001.agent", false), nil)
		pctx, span := b.startProcess(ctx, env, "a2a.in.pool.p0001.agent", 1)
		endSpan(span, nil)
		_ = pctx
	}); n != 0 {
		t.Fatalf("%v allocations per envelope with tracing off, want 0", n)
	}
	if len(env.Headers) != 1 {
		t.Fatalf("headers %v: an untraced send wrote a trace context", env.Headers)
	}
}

// TestSampledAwayRootsTravelNot: with tracing on and nothing sampled, a
// send whose caller is in no trace writes no trace context and its
// consumer makes no span for it, while a send in the caller's unsampled
// trace carries that trace on (its decision holds downstream).
func TestSampledAwayRootsTravelNot(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.NeverSample())), sdktrace.WithSyncer(exp))
	b := &Bus{cfg: config{tracer: tracing.New(tp)}}
	const subject = "a2a.in.pool.p0001.agent"

	env := &codec.Envelope{ID: "m", To: "agent"}
	endSpan(b.startSend(context.Background(), env, subject, false), nil)
	if len(env.Headers) != 0 {
		t.Fatalf("headers %v: a sampled-away root travels", env.Headers)
	}
	ctx, span := b.startProcess(context.Background(), env, subject, 1)
	if span != nil || trace.SpanContextFromContext(ctx).IsValid() {
		t.Fatalf("process of an untraced envelope: span %v, context %v", span, trace.SpanContextFromContext(ctx))
	}

	parent := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{7}, SpanID: trace.SpanID{7}})
	env = &codec.Envelope{ID: "m2", To: "agent"}
	endSpan(b.startSend(trace.ContextWithRemoteSpanContext(context.Background(), parent), env, subject, false), nil)
	got := tracing.Parent(env.Headers)
	if got.TraceID() != parent.TraceID() || got.IsSampled() {
		t.Fatalf("send in an unsampled trace carries %v, want that trace, unsampled", got)
	}
	ctx, span = b.startProcess(context.Background(), env, subject, 1)
	endSpan(span, nil)
	if sc := trace.SpanContextFromContext(ctx); sc.TraceID() != parent.TraceID() || sc.IsSampled() {
		t.Fatalf("its handler's context %v, want the caller's unsampled trace", sc)
	}
	if n := len(exp.GetSpans()); n != 0 {
		t.Fatalf("%d spans recorded with nothing sampled", n)
	}
}
