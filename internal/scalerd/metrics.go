package scalerd

import (
	"github.com/a2abus/a2abus/scaler"
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the daemon's gauges and counters, on its own registry.
type metrics struct {
	backlog, waiting        prometheus.Gauge
	arrivals, handled       prometheus.Gauge
	cpu                     prometheus.Gauge
	consumers, ready        prometheus.Gauge
	forecast, confidence    prometheus.Gauge
	growth                  prometheus.Gauge
	desired, target, leader prometheus.Gauge
	lastSample              prometheus.Gauge
	decisions               *prometheus.CounterVec
	writes, sampleErrors    prometheus.Counter
}

// directions are the values of the decisions counter's direction label.
var directions = []string{"up", "down", "hold"}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	gauge := func(name, help string) prometheus.Gauge {
		return prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "a2abus", Subsystem: "scaler", Name: name, Help: help})
	}
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Namespace: "a2abus", Subsystem: "scaler", Name: name, Help: help})
	}
	m := &metrics{
		backlog:    gauge("backlog_messages", "Stored messages not yet acknowledged, over all consumer groups (NumPending + NumAckPending)."),
		waiting:    gauge("backlog_waiting_messages", "Stored messages not yet delivered to a consumer (NumPending): the backlog the policy's thresholds look at."),
		arrivals:   gauge("arrivals_per_second", "Messages stored in the stream per second, over the last interval."),
		handled:    gauge("handled_per_second", "Stored messages finished (acknowledged or dead-lettered) per second, over the last interval."),
		cpu:        gauge("consumer_cpu_ratio", "Mean process CPU of the ready consumers, as a fraction of what each may use."),
		consumers:  gauge("consumers", "Consumers the policy counts: live members, or the target's count while its new consumers start."),
		ready:      gauge("consumers_ready", "Live consumers that report their CPU (started and pulling)."),
		forecast:   gauge("forecast_arrivals_per_second", "Forecast arrival rate at the policy's horizon."),
		confidence: gauge("forecast_confidence", "Confidence in the forecast's trend, 0..1."),
		growth:     gauge("predicted_growth_ratio", "Load forecast at the horizon relative to the pool's capacity at the target CPU, minus one."),
		desired:    gauge("desired_consumers", "Consumer count of the latest decision."),
		target:     gauge("target_consumers", "Consumer count of the stored scale target (-1 when none is set)."),
		leader:     gauge("leader", "1 while this scalerd leads (writes the target), else 0."),
		lastSample: gauge("last_sample_timestamp_seconds", "Unix time of the latest successful sample."),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "a2abus", Subsystem: "scaler", Name: "decisions_total",
			Help: "Decisions by direction (up, down, hold) and trigger (what fired: cpu, backlog, forecast, drained, low-load, bounds, no-consumers, none).",
		}, []string{"direction", "trigger"}),
		writes:       counter("target_writes_total", "Scale targets this scalerd wrote (steps and refreshes)."),
		sampleErrors: counter("sample_errors_total", "Intervals skipped because the backlog or the consumers could not be read."),
	}
	m.target.Set(-1)
	for _, dir := range directions {
		for _, tr := range scaler.Triggers() {
			m.decisions.WithLabelValues(dir, string(tr))
		}
	}
	for _, c := range []prometheus.Collector{
		m.backlog, m.waiting, m.arrivals, m.handled, m.cpu, m.consumers, m.ready, m.forecast, m.confidence,
		m.growth, m.desired, m.target, m.leader, m.lastSample, m.decisions, m.writes, m.sampleErrors,
	} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// observe records one evaluation.
func (m *metrics) observe(s scaler.Snapshot, d scaler.Decision) {
	m.backlog.Set(float64(s.Backlog))
	m.waiting.Set(float64(max(s.Backlog-max(s.InFlight, 0), 0)))
	m.arrivals.Set(s.ArrivalRate)
	m.handled.Set(s.HandledRate)
	m.cpu.Set(s.CPU)
	m.consumers.Set(float64(s.Consumers))
	m.ready.Set(float64(s.Ready))
	m.forecast.Set(d.Forecast.Value)
	m.confidence.Set(d.Forecast.Confidence)
	m.growth.Set(d.Growth)
	m.desired.Set(float64(d.To))
	m.lastSample.Set(float64(s.Time.UnixNano()) / 1e9)
	m.decisions.WithLabelValues(d.Direction(), string(d.Trigger)).Inc()
}
