package a2anats

import (
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the Prometheus series of the A2A calls Servers run. One
// Metrics serves every Server of a process (ServerMetrics); its agent label
// is bounded by the agents the process hosts.
type Metrics struct {
	calls   *prometheus.CounterVec   // agent, method, code
	running *prometheus.GaugeVec     // agent
	seconds *prometheus.HistogramVec // agent, method
}

// NewMetrics registers the series on reg:
//
//	a2abus_a2a_calls_total{agent,method,code}   calls ended, code "ok" or the JSON-RPC error code
//	a2abus_a2a_calls_running{agent}             calls running now
//	a2abus_a2a_call_seconds{agent,method}       how long calls ran (a stream: until its end)
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "a2abus_a2a_calls_total", Help: "A2A calls served over the bus, by agent, method and outcome (ok or the JSON-RPC error code).",
		}, []string{"agent", "method", "code"}),
		running: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "a2abus_a2a_calls_running", Help: "A2A calls running now, by agent.",
		}, []string{"agent"}),
		seconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "a2abus_a2a_call_seconds", Help: "How long A2A calls ran, by agent and method (a stream until its end).",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 11), // 100 µs .. 105 s
		}, []string{"agent", "method"}),
	}
	if err := register(reg, "create one Metrics per registry and share it", m.calls, m.running, m.seconds); err != nil {
		return nil, err
	}
	return m, nil
}

// register registers cs on reg; an error says so, and when they were
// registered already, what to do instead (hint).
func register(reg prometheus.Registerer, hint string, cs ...prometheus.Collector) error {
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				return fmt.Errorf("a2anats: metrics already registered: %s: %w", hint, err)
			}
			return fmt.Errorf("a2anats: register metrics: %w", err)
		}
	}
	return nil
}

// ServerMetrics makes the Server count its calls in m.
func ServerMetrics(m *Metrics) ServerOption {
	return func(s *Server) error {
		s.metrics = m
		return nil
	}
}

// knownMethods bounds the method label: other names count as "unknown".
var knownMethods = map[string]bool{
	MethodSendMessage: true, MethodSendStreamingMessage: true, MethodGetTask: true, MethodListTasks: true,
	MethodCancelTask: true, MethodSubscribeToTask: true, MethodGetTaskPushConfig: true,
	MethodCreateTaskPushConfig: true, MethodListTaskPushConfigs: true, MethodDeleteTaskPushConfig: true,
	MethodGetExtendedAgentCard: true,
}

// begin counts a call to agent as running; the function it returns counts
// it as ended with the outcome code ("ok" or a JSON-RPC code).
func (m *Metrics) begin(agent, method string) func(code string) {
	if m == nil {
		return func(string) {}
	}
	if !knownMethods[method] {
		method = "unknown"
	}
	start := time.Now()
	running := m.running.WithLabelValues(agent)
	running.Inc()
	return func(code string) {
		running.Dec()
		m.calls.WithLabelValues(agent, method, code).Inc()
		m.seconds.WithLabelValues(agent, method).Observe(time.Since(start).Seconds())
	}
}
