package gateway

import (
	"context"
	"net/http"

	"github.com/a2abus/a2abus/internal/tracing"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// Tracing. The gateway continues the trace of each call it is given: the
// caller's W3C trace context (traceparent, tracestate, baggage) becomes
// the parent of the call's SERVER span, and travels on over the bus to the
// agent. Without a TracerProvider that is on, it makes no span and passes
// the caller's context on as it is.

// traceContext returns ctx with the caller's trace context that carrier
// holds: the HTTP request's headers (propagation.HeaderCarrier), or a
// gRPC call's incoming metadata (a carrier over metadata.MD).
func traceContext(ctx context.Context, carrier propagation.TextMapCarrier) context.Context {
	return tracing.Propagator.Extract(ctx, carrier)
}

// startServerSpan starts the SERVER span of a call the gateway was given,
// in the caller's trace (ctx from traceContext): nil when tracing is off.
func (g *Gateway) startServerSpan(ctx context.Context, name, agent string, attrs ...trace.SpanStartOption) (context.Context, trace.Span) {
	t, on := g.tracer.Get()
	if !on {
		return ctx, nil
	}
	ctx, span := t.Start(ctx, name, append(attrs, trace.WithSpanKind(trace.SpanKindServer))...)
	if agent != "" {
		span.SetAttributes(tracing.AgentID.String(agent))
	}
	return ctx, span
}

// traceHTTP puts the caller's trace context and the request's span into
// r's context; end ends the span with the status w was answered with.
func (g *Gateway) traceHTTP(w http.ResponseWriter, r *http.Request, agent, endpoint string) (http.ResponseWriter, *http.Request, func()) {
	ctx := traceContext(r.Context(), propagation.HeaderCarrier(r.Header))
	if _, on := g.tracer.Get(); !on {
		if ctx != r.Context() {
			r = r.WithContext(ctx) // passed on as it came
		}
		return w, r, func() {}
	}
	route := httpRoute(endpoint)
	ctx, span := g.startServerSpan(ctx, r.Method+" "+route, agent, trace.WithAttributes(
		semconv.HTTPRequestMethodKey.String(r.Method), semconv.HTTPRoute(route), semconv.URLPath(r.URL.Path)))
	r = r.WithContext(ctx)
	rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
	return rec, r, func() {
		span.SetAttributes(semconv.HTTPResponseStatusCode(rec.status))
		if rec.status >= http.StatusInternalServerError {
			span.SetStatus(codes.Error, http.StatusText(rec.status))
		}
		span.End()
	}
}

// httpRoute is the route template of an endpoint.
func httpRoute(endpoint string) string {
	switch endpoint {
	case routeJSONRPC:
		return Prefix + "{agent}"
	case routeJSONRPC03:
		return Prefix + "{agent}/v0.3"
	case routeREST:
		return Prefix + "{agent}/rest/*"
	case routeCard:
		return Prefix + "{agent}/.well-known/agent-card.json"
	case routeCard03:
		return Prefix + "{agent}/v0.3/.well-known/agent-card.json"
	case routeList:
		return Prefix
	}
	return Prefix + "*"
}

// tracedClient is hc with its requests traced (a CLIENT span each, with
// tp) and carrying their trace context, so that a sidecar agent continues
// the trace of the call.
func tracedClient(hc *http.Client, tp trace.TracerProvider) *http.Client {
	c := *hc
	base := c.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	c.Transport = otelhttp.NewTransport(base, otelhttp.WithTracerProvider(tp), otelhttp.WithPropagators(tracing.Propagator))
	return &c
}
