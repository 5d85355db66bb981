package tracing

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/a2abus/a2abus/codec"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// TestInjectWritesWhatThePropagatorReads: InjectSpan writes the headers
// the OpenTelemetry W3C propagators write, and Extract reads them back.
func TestInjectWritesWhatThePropagatorReads(t *testing.T) {
	ts, _ := trace.ParseTraceState("vendor=x")
	for _, flags := range []trace.TraceFlags{0, trace.FlagsSampled, trace.FlagsSampled | trace.FlagsRandom} {
		sc := trace.NewSpanContext(trace.SpanContextConfig{
			TraceID: trace.TraceID{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36},
			SpanID:  trace.SpanID{0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7}, TraceFlags: flags, TraceState: ts})
		m, _ := baggage.NewMember("user", "ada")
		bag, _ := baggage.New(m)
		ctx := baggage.ContextWithBaggage(trace.ContextWithSpanContext(context.Background(), sc), bag)

		want := propagation.MapCarrier{}
		Propagator.Inject(ctx, want)
		h := codec.Headers{{Key: HeaderTraceparent, Value: "stale"}, {Key: "other", Value: "kept"}}
		Inject(ctx, &h)
		for _, k := range []string{HeaderTraceparent, HeaderTracestate, HeaderBaggage} {
			if h.Get(k) != want[k] {
				t.Fatalf("flags %v: %s %q, want %q", flags, k, h.Get(k), want[k])
			}
		}
		if len(h) != 4 || h.Get("other") != "kept" {
			t.Fatalf("headers %v", h)
		}
		back := Extract(context.Background(), h)
		if got := trace.SpanContextFromContext(back); !got.Equal(trace.NewSpanContext(trace.SpanContextConfig{
			TraceID: sc.TraceID(), SpanID: sc.SpanID(), TraceFlags: sc.TraceFlags(), TraceState: ts, Remote: true})) {
			t.Fatalf("extracted %v, want %v", got, sc)
		}
		if baggage.FromContext(back).Member("user").Value() != "ada" {
			t.Fatalf("baggage %v", baggage.FromContext(back))
		}
	}
	// No trace context: nothing written, nothing read.
	var h codec.Headers
	Inject(context.Background(), &h)
	if h != nil || Extract(context.Background(), h) != context.Background() {
		t.Fatalf("headers %v", h)
	}
}

// FuzzExtract: whatever a received envelope's trace headers hold, Extract
// gives a context (the caller's, or one with a valid remote parent) and
// never panics.
func FuzzExtract(f *testing.F) {
	f.Add("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "vendor=x", "user=ada")
	f.Add("ff-zz", "", ";;;=")
	f.Fuzz(func(t *testing.T, tp, ts, bag string) {
		h := codec.Headers{{Key: HeaderTraceparent, Value: tp}, {Key: HeaderTracestate, Value: ts}, {Key: HeaderBaggage, Value: bag}}
		ctx := Extract(context.Background(), h)
		if sc := trace.SpanContextFromContext(ctx); sc.IsValid() && !sc.IsRemote() {
			t.Fatalf("extracted a local span context %v", sc)
		}
		_ = Parent(h)
	})
}

// TestLogHandler: a line logged with a traced context carries its trace
// and span IDs; one without a trace carries none.
func TestLogHandler(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(LogHandler(slog.NewJSONHandler(&buf, nil))).With("component", "x")
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1}, SpanID: trace.SpanID{2}})
	log.InfoContext(trace.ContextWithSpanContext(context.Background(), sc), "traced")
	log.Info("untraced")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if !strings.Contains(lines[0], `"trace_id":"`+sc.TraceID().String()+`"`) || !strings.Contains(lines[0], `"span_id":"`+sc.SpanID().String()+`"`) ||
		strings.Contains(lines[1], "trace_id") {
		t.Fatalf("log lines:\n%s", buf.String())
	}
}
