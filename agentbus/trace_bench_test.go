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

// BenchmarkStartSend is what tracing adds to each envelope sent: nothing
// without a provider; with one sampling 1%, a send span (recorded for 1%)
// and the trace context written into the envelope's headers, for a
// caller without a trace (the span is a root) and one in an unsampled
// trace.
func BenchmarkStartSend(b *testing.B) {
	sampled := func(ratio float64) trace.TracerProvider {
		return sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio))),
			sdktrace.WithSpanProcessor(sdktrace.NewSimpleSpanProcessor(tracetest.NewNoopExporter())))
	}
	unsampled := trace.ContextWithRemoteSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{1}, SpanID: trace.SpanID{1}}))
	for _, bc := range []struct {
		name string
		tp   trace.TracerProvider
		ctx  context.Context
	}{
		{"off", nil, context.Background()},
		{"1pct-root", sampled(0.01), context.Background()},
		{"1pct-unsampled-parent", sampled(0.01), unsampled},
	} {
		b.Run(bc.name, func(b *testing.B) {
			bus := &Bus{cfg: config{tracer: tracing.New(bc.tp)}}
			env := &codec.Envelope{ID: "id", To: "agent", Headers: make(codec.Headers, 0, 4)}
			b.ReportAllocs()
			for b.Loop() {
				endSpan(bus.startSend(bc.ctx, env, "a2a.in.pool.p0001.agent", false), nil)
			}
		})
	}
}
