package scalerd

import (
	"github.com/a2abus/a2abus/agentbus"
	"github.com/a2abus/a2abus/scaler"
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the daemon's gauges and counters, on its own registry. The
// per-pool series carry the label pool; a pool's series appear when it
// first reports and go when it stops reporting.
type metrics struct {
	backlog, waiting     *prometheus.GaugeVec
	arrivals, handled    *prometheus.GaugeVec
	cpu                  *prometheus.GaugeVec
	consumers, ready     *prometheus.GaugeVec
	forecast, confidence *prometheus.GaugeVec
	growth               *prometheus.GaugeVec
	desired, target      *prometheus.GaugeVec
	decisions, writes    *prometheus.CounterVec
	pools                prometheus.Gauge
	leader, lastSample   prometheus.Gauge
	sampleErrors         prometheus.Counter

	// The per-pool vectors, for dropping a pool's series.
	perPoolGauges   []*prometheus.GaugeVec
	perPoolCounters []*prometheus.CounterVec
}

// directions are the values of the decisions counter's direction label.
var directions = []string{"up", "down", "hold"}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	gauge := func(name, help string) prometheus.Gauge {
		return prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "a2abus", Subsystem: "scaler", Name: name, Help: help})
	}
	poolGauge := func(name, help string) *prometheus.GaugeVec {
		return prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "a2abus", Subsystem: "scaler", Name: name, Help: help}, []string{"pool"})
	}
	m := &metrics{
		backlog:    poolGauge("backlog_messages", "Stored messages of the pool not yet acknowledged, over its partitions (NumPending + NumAckPending)."),
		waiting:    poolGauge("backlog_waiting_messages", "Stored messages of the pool not yet delivered to a consumer (NumPending): the backlog the policy's thresholds look at."),
		arrivals:   poolGauge("arrivals_per_second", "Messages stored for the pool per second, over the last interval."),
		handled:    poolGauge("handled_per_second", "Stored messages of the pool finished (acknowledged or dead-lettered) per second, over the last interval."),
		cpu:        poolGauge("consumer_cpu_ratio", "Mean process CPU of the pool's ready consumers, as a fraction of what each may use."),
		consumers:  poolGauge("consumers", "Consumers of the pool the policy counts: live members, or the target's count while its new consumers start."),
		ready:      poolGauge("consumers_ready", "Live consumers of the pool that report their CPU (started and pulling)."),
		forecast:   poolGauge("forecast_arrivals_per_second", "Forecast arrival rate of the pool at the policy's horizon."),
		confidence: poolGauge("forecast_confidence", "Confidence in the forecast's trend, 0..1."),
		growth:     poolGauge("predicted_growth_ratio", "Load of the pool forecast at the horizon relative to its capacity at the target CPU, minus one."),
		desired:    poolGauge("desired_consumers", "Consumer count of the pool's latest decision."),
		target:     poolGauge("target_consumers", "Consumer count of the pool's stored scale target (-1 when none is set)."),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "a2abus", Subsystem: "scaler", Name: "decisions_total",
			Help: "Decisions by pool, direction (up, down, hold) and trigger (what fired: cpu, backlog, forecast, drained, low-load, bounds, no-consumers, none).",
		}, []string{"pool", "direction", "trigger"}),
		writes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "a2abus", Subsystem: "scaler", Name: "target_writes_total",
			Help: "Scale targets this scalerd wrote for the pool (steps and refreshes).",
		}, []string{"pool"}),
		pools:        gauge("pools", "Pools that reported at the latest sample: pools with partition consumers or live members."),
		leader:       gauge("leader", "1 while this scalerd leads (writes the targets), else 0."),
		lastSample:   gauge("last_sample_timestamp_seconds", "Unix time of the latest successful sample."),
		sampleErrors: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "a2abus", Subsystem: "scaler", Name: "sample_errors_total", Help: "Intervals skipped because the backlog or the consumers could not be read."}),
	}
	m.perPoolGauges = []*prometheus.GaugeVec{m.backlog, m.waiting, m.arrivals, m.handled, m.cpu, m.consumers, m.ready,
		m.forecast, m.confidence, m.growth, m.desired, m.target}
	m.perPoolCounters = []*prometheus.CounterVec{m.decisions, m.writes}
	for _, c := range []prometheus.Collector{
		m.backlog, m.waiting, m.arrivals, m.handled, m.cpu, m.consumers, m.ready, m.forecast, m.confidence,
		m.growth, m.desired, m.target, m.decisions, m.writes, m.pools, m.leader, m.lastSample, m.sampleErrors,
	} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// addPool makes the series of a pool that reported for the first time:
// every decision counter at zero, no writes, no target known yet.
func (m *metrics) addPool(pool string) {
	for _, dir := range directions {
		for _, tr := range scaler.Triggers() {
			m.decisions.WithLabelValues(pool, dir, string(tr))
		}
	}
	m.writes.WithLabelValues(pool)
	m.target.WithLabelValues(pool).Set(-1)
}

// dropPool deletes the series of a pool that stopped reporting.
func (m *metrics) dropPool(pool string) {
	l := prometheus.Labels{"pool": pool}
	for _, g := range m.perPoolGauges {
		g.DeletePartialMatch(l)
	}
	for _, c := range m.perPoolCounters {
		c.DeletePartialMatch(l)
	}
}

// observe records one pool's evaluation.
func (m *metrics) observe(pool string, s scaler.Snapshot, d scaler.Decision) {
	m.backlog.WithLabelValues(pool).Set(float64(s.Backlog))
	m.waiting.WithLabelValues(pool).Set(float64(max(s.Backlog-max(s.InFlight, 0), 0)))
	m.arrivals.WithLabelValues(pool).Set(s.ArrivalRate)
	m.handled.WithLabelValues(pool).Set(s.HandledRate)
	m.cpu.WithLabelValues(pool).Set(s.CPU)
	m.consumers.WithLabelValues(pool).Set(float64(s.Consumers))
	m.ready.WithLabelValues(pool).Set(float64(s.Ready))
	m.forecast.WithLabelValues(pool).Set(d.Forecast.Value)
	m.confidence.WithLabelValues(pool).Set(d.Forecast.Confidence)
	m.growth.WithLabelValues(pool).Set(d.Growth)
	m.desired.WithLabelValues(pool).Set(float64(d.To))
	m.decisions.WithLabelValues(pool, d.Direction(), string(d.Trigger)).Inc()
}

// setTarget records a pool's stored target.
func (m *metrics) setTarget(pool string, t agentbus.ScaleTarget, ok bool) {
	if ok {
		m.target.WithLabelValues(pool).Set(float64(t.Consumers))
	} else {
		m.target.WithLabelValues(pool).Set(-1)
	}
}
