// Package tracing is what a2abus's packages share to trace with
// OpenTelemetry: the W3C propagation of a call's trace context in envelope
// headers, the tracer of a TracerProvider with a cheap answer to "is
// tracing on?", the attribute names of the spans, and a log handler that
// writes the trace and span IDs of a traced call into its log lines.
//
// The propagation is always on: a trace context that reaches a process
// goes on with its envelopes whether or not the process makes spans, and
// costs nothing when there is none. Spans are made only when the provider
// is a real one (not the global default before one is set, nor a no-op
// provider), so that a process without tracing makes no span and no
// allocation per envelope.
//
//	tr := tracing.New(nil) // the global provider
//	if t, on := tr.Get(); on {
//		ctx, span = t.Start(ctx, "send "+agent, trace.WithSpanKind(trace.SpanKindProducer))
//	}
//	tracing.Inject(ctx, &env.Headers)
//
// All functions and methods are safe for concurrent use.
package tracing
