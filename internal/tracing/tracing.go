package tracing

import (
	"context"
	"reflect"
	"sync/atomic"

	"github.com/a2abus/a2abus/codec"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/embedded"
	"go.opentelemetry.io/otel/trace/noop"
)

// Scope is the instrumentation scope of a2abus's tracers.
const Scope = "github.com/a2abus/a2abus"

// Propagator is how a trace context travels in envelope headers and in
// the gateway's HTTP requests: W3C Trace Context (traceparent,
// tracestate) and W3C Baggage (baggage), whatever global propagator the
// process has set, so that every member of the bus reads what every other
// writes.
var Propagator propagation.TextMapPropagator = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})

// The headers Propagator writes.
const (
	HeaderTraceparent = "traceparent"
	HeaderTracestate  = "tracestate"
	HeaderBaggage     = "baggage"
)

// globalDefault is the global provider before anyone sets one: it hands
// out spans that record nothing.
var globalDefault = otel.GetTracerProvider()

// Enabled reports whether tp makes spans worth making: false for the
// global default provider (before SetTracerProvider) and the no-op one.
func Enabled(tp trace.TracerProvider) bool {
	switch tp.(type) {
	case nil, noop.TracerProvider, *noop.TracerProvider:
		return false
	case globalProvider:
		return Enabled(global())
	}
	return tp != globalDefault
}

// Global is the global provider as it is at each call: its tracers are
// those of the provider otel.SetTracerProvider set last.
var Global trace.TracerProvider = globalProvider{}

type globalProvider struct{ embedded.TracerProvider }

func (globalProvider) Tracer(name string, opts ...trace.TracerOption) trace.Tracer {
	return global().Tracer(name, opts...)
}

// global is the global provider; Global itself, set as the global one,
// counts as none.
func global() trace.TracerProvider {
	tp := otel.GetTracerProvider()
	if _, ok := tp.(globalProvider); ok {
		return noop.NewTracerProvider()
	}
	return tp
}

// Tracer is the tracer of a TracerProvider, or of the global provider as
// it is at each call.
type Tracer struct {
	tp    trace.TracerProvider // Global: the global one at each call
	cache atomic.Pointer[resolved]
}

type resolved struct {
	tp     trace.TracerProvider
	tracer trace.Tracer
	on     bool
}

// New returns the Tracer of tp; nil means Global, the global provider
// looked up at each Get so that one set later is used.
func New(tp trace.TracerProvider) *Tracer {
	if tp == nil {
		tp = Global
	}
	return &Tracer{tp: tp}
}

// Provider returns the provider of t: Global, or the one New was given.
func (t *Tracer) Provider() trace.TracerProvider { return t.tp }

// Get returns the tracer and whether tracing is on (see Enabled): when it
// is off, make no span.
func (t *Tracer) Get() (trace.Tracer, bool) {
	tp := t.tp
	if _, ok := tp.(globalProvider); ok {
		tp = global()
	}
	if r := t.cache.Load(); r != nil && sameProvider(r.tp, tp) {
		return r.tracer, r.on
	}
	r := &resolved{tp: tp, tracer: tp.Tracer(Scope), on: Enabled(tp)}
	if reflect.TypeOf(tp).Comparable() {
		t.cache.Store(r)
	}
	return r.tracer, r.on
}

// sameProvider compares providers of comparable types (a cached one
// always is).
func sameProvider(cached, tp trace.TracerProvider) bool {
	if reflect.TypeOf(cached) != reflect.TypeOf(tp) {
		return false
	}
	return cached == tp
}

// Headers is a propagation carrier over an envelope's headers.
type Headers codec.Headers

var _ propagation.TextMapCarrier = (*Headers)(nil)

// Get returns the value of key, or "".
func (h *Headers) Get(key string) string { return codec.Headers(*h).Get(key) }

// Set sets key to value.
func (h *Headers) Set(key, value string) { (*codec.Headers)(h).Set(key, value) }

// Keys returns the header keys.
func (h *Headers) Keys() []string {
	keys := make([]string, len(*h))
	for i, kv := range *h {
		keys[i] = kv.Key
	}
	return keys
}

// Inject writes the trace context of ctx (its span's, and its baggage)
// into h, replacing what h carried; when ctx has none, h is left as it
// is. It allocates nothing when ctx has none.
func Inject(ctx context.Context, h *codec.Headers) {
	InjectSpan(ctx, trace.SpanContextFromContext(ctx), h)
}

// InjectSpan is Inject of sc, the span context of ctx, known to the
// caller: it writes what Propagator writes (a traceparent, the tracestate
// and baggage when there are any) with one allocation, the traceparent's.
func InjectSpan(ctx context.Context, sc trace.SpanContext, h *codec.Headers) {
	if !sc.IsValid() {
		return
	}
	out := (*h)[:0]
	for _, kv := range *h {
		if kv.Key != HeaderTraceparent && kv.Key != HeaderTracestate && kv.Key != HeaderBaggage {
			out = append(out, kv)
		}
	}
	clear((*h)[len(out):])
	*h = append(out, codec.Header{Key: HeaderTraceparent, Value: traceparent(sc)})
	if ts := sc.TraceState(); ts.Len() > 0 {
		*h = append(*h, codec.Header{Key: HeaderTracestate, Value: ts.String()})
	}
	if bag := baggage.FromContext(ctx); bag.Len() > 0 {
		*h = append(*h, codec.Header{Key: HeaderBaggage, Value: bag.String()})
	}
}

// traceparent is sc's W3C traceparent: version 00, its trace and span
// IDs and its sampled and random flags, as propagation.TraceContext
// writes it.
func traceparent(sc trace.SpanContext) string {
	const hexDigits = "0123456789abcdef"
	var b [55]byte
	b[0], b[1], b[2], b[35], b[52] = '0', '0', '-', '-', '-'
	tid, sid := sc.TraceID(), sc.SpanID()
	for i, c := range tid {
		b[3+2*i], b[4+2*i] = hexDigits[c>>4], hexDigits[c&15]
	}
	for i, c := range sid {
		b[36+2*i], b[37+2*i] = hexDigits[c>>4], hexDigits[c&15]
	}
	f := byte(sc.TraceFlags() & (trace.FlagsSampled | trace.FlagsRandom))
	b[53], b[54] = hexDigits[f>>4], hexDigits[f&15]
	return string(b[:])
}

// Extract returns ctx with the trace context h carries as its remote
// parent (and its baggage), or ctx itself when h carries none; it
// allocates nothing then.
func Extract(ctx context.Context, h codec.Headers) context.Context {
	if _, ok := h.Lookup(HeaderTraceparent); !ok {
		if _, ok := h.Lookup(HeaderBaggage); !ok {
			return ctx
		}
	}
	return extract(ctx, h)
}

// extract is Extract's work, apart so that only a call that extracts
// moves h to the heap.
func extract(ctx context.Context, h codec.Headers) context.Context {
	return Propagator.Extract(ctx, (*Headers)(&h))
}

// Parent returns the span context h carries, or an invalid one.
func Parent(h codec.Headers) trace.SpanContext {
	if _, ok := h.Lookup(HeaderTraceparent); !ok {
		return trace.SpanContext{}
	}
	return trace.SpanContextFromContext(extract(context.Background(), h))
}
