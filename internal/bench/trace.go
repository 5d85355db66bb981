package bench

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync/atomic"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// traceSink is an OTLP/HTTP endpoint on loopback that takes every export
// and discards it, as a collector would take it: a traced party pays for
// its spans up to the socket.
type traceSink struct {
	srv     *http.Server
	url     string
	exports atomic.Int64
	bytes   atomic.Int64
}

func startTraceSink() (*traceSink, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("bench: trace sink: %w", err)
	}
	s := &traceSink{url: "http://" + ln.Addr().String() + "/v1/traces"}
	s.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		s.exports.Add(1)
		s.bytes.Add(n)
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.WriteHeader(http.StatusOK) // an empty ExportTraceServiceResponse
	})}
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

func (s *traceSink) close() { _ = s.srv.Close() }

// tracedProvider is an SDK tracer provider that samples ratio of the
// traces it starts (parent-based, as OTEL_TRACES_SAMPLER=parentbased_traceidratio
// does) and exports them over OTLP/HTTP to sink with the SDK's batch span
// processor.
func tracedProvider(ctx context.Context, ratio float64, sink *traceSink) (*sdktrace.TracerProvider, error) {
	exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(sink.url))
	if err != nil {
		return nil, fmt.Errorf("bench: OTLP exporter: %w", err)
	}
	return sdktrace.NewTracerProvider(
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio))),
		sdktrace.WithBatcher(exp)), nil
}
