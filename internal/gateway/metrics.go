package gateway

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/status"
)

// metrics are the gateway's series: requests by binding and HTTP status,
// and how long they took. Agent IDs are left out: they come from clients.
type metrics struct {
	requests *prometheus.CounterVec   // binding, status
	seconds  *prometheus.HistogramVec // binding
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "a2abus_gateway_requests_total",
			Help: "A2A gateway requests, by binding (jsonrpc, jsonrpc_0.3, rest, grpc, card, list, other) and HTTP status (for grpc, the status code's name); JSON-RPC errors answer 200 and are counted in a2abus_a2a_calls_total where the agent runs.",
		}, []string{"binding", "status"}),
		seconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "a2abus_gateway_request_seconds", Help: "How long A2A gateway requests took, by binding (a stream: until its end).",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 11),
		}, []string{"binding"}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.seconds} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				return nil, fmt.Errorf("gateway: metrics already registered (one gateway per registry): %w", err)
			}
			return nil, fmt.Errorf("gateway: register metrics: %w", err)
		}
	}
	return m, nil
}

// observe counts a request of binding once it is answered.
func (m *metrics) observe(binding string, w http.ResponseWriter, serve func(http.ResponseWriter)) {
	if m == nil {
		serve(w)
		return
	}
	start := time.Now()
	rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
	serve(rec)
	m.requests.WithLabelValues(binding, strconv.Itoa(rec.status)).Inc()
	m.seconds.WithLabelValues(binding).Observe(time.Since(start).Seconds())
}

// observeGRPC counts a gRPC call (binding grpc, status its code's name)
// once it has ended.
func (m *metrics) observeGRPC(start time.Time, err error) {
	if m == nil {
		return
	}
	m.requests.WithLabelValues("grpc", status.Code(err).String()).Inc()
	m.seconds.WithLabelValues("grpc").Observe(time.Since(start).Seconds())
}

// statusRecorder remembers the status a handler wrote; it flushes, for SSE.
type statusRecorder struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (r *statusRecorder) WriteHeader(code int) {
	if !r.wrote {
		r.status, r.wrote = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	r.wrote = true
	return r.ResponseWriter.Write(b)
}

// Flush implements http.Flusher, which the SDK's SSE writer needs.
func (r *statusRecorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
