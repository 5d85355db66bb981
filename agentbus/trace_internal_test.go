package agentbus

import (
	"context"
	"testing"

	"github.com/a2abus/a2abus/codec"
	"github.com/a2abus/a2abus/internal/tracing"
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
