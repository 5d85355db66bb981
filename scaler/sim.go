package scaler

import (
	"math"
	"time"
)

// Decider is what the simulator drives: a Policy or the KEDA baseline.
type Decider interface {
	Decide(Snapshot) Decision
}

// Model is the simulated consumer pool. Time advances in steps of one
// second; within a step the live consumers handle up to Capacity messages
// each, oldest first, and what they cannot handle stays in the backlog.
// (Handling is fluid: a message served in a second is acknowledged in it,
// so the backlog is the messages waiting.)
type Model struct {
	// Capacity is what one consumer handles per second, at 100% CPU.
	// Default 100.
	Capacity float64
	// StartupDelay is the time from a scale-up decision until the new
	// consumers pull messages. Default 30 s. A scale-down takes effect at
	// once, removing starting consumers first.
	StartupDelay time.Duration
	// Interval is the time between decisions, for every policy. Default
	// 15 s, the HPA's sync period.
	Interval time.Duration
	// InitialConsumers is the pool at the start. 0 sizes it for the trace's
	// first minute at 60% CPU.
	InitialConsumers int
	// HandlerTime is how long a handler holds a message before it acks
	// it: a consumer serving h msgs/s has h × HandlerTime messages in
	// flight (Little's law), which JetStream counts as NumAckPending and so
	// as backlog. Default 100 ms.
	HandlerTime time.Duration
	// ReversalWindow: a scaling step in the direction opposite to the
	// previous step, less than this after it, counts in ReversalsInWindow.
	// Default 300 s (the stabilization window of both policies).
	ReversalWindow time.Duration
}

// DefaultModel returns the default pool.
func DefaultModel() Model {
	return Model{Capacity: 100, StartupDelay: 30 * time.Second, Interval: 15 * time.Second, HandlerTime: 100 * time.Millisecond, ReversalWindow: 300 * time.Second}
}

// Validate reports the first field out of range, by name.
func (m Model) Validate() error {
	bad := func(field string, v any, want string) error {
		return &ConfigError{Field: field, Value: v, Want: want}
	}
	switch {
	case !(m.Capacity > 0) || math.IsInf(m.Capacity, 0):
		return bad("Capacity", m.Capacity, "want > 0")
	case m.StartupDelay < 0 || m.StartupDelay%time.Second != 0:
		return bad("StartupDelay", m.StartupDelay, "want whole seconds >= 0")
	case m.Interval < time.Second || m.Interval%time.Second != 0:
		return bad("Interval", m.Interval, "want whole seconds >= 1s")
	case m.InitialConsumers < 0:
		return bad("InitialConsumers", m.InitialConsumers, "want >= 0")
	case m.HandlerTime < 0:
		return bad("HandlerTime", m.HandlerTime, "want >= 0")
	case m.ReversalWindow < 0:
		return bad("ReversalWindow", m.ReversalWindow, "want >= 0")
	}
	return nil
}

// Result is the outcome of one simulated run.
type Result struct {
	Trace  string `json:"trace"`
	Policy string `json:"policy"`
	// PeakBacklog is the most messages waiting for a consumer at the end
	// of a second.
	PeakBacklog float64 `json:"peak_backlog"`
	// BacklogSeconds is the integral over time of the messages waiting for
	// a consumer (message·s): the total time messages spent queued because
	// the pool was too small. Messages in flight are left out: their
	// handler time is the same under any policy, and counting it would
	// only add a common constant to both sides of a comparison.
	BacklogSeconds float64 `json:"backlog_seconds"`
	// InFlightSeconds is the integral of the messages in flight
	// (NumAckPending). The policies see BacklogSeconds + InFlightSeconds as
	// the backlog.
	InFlightSeconds float64 `json:"inflight_seconds"`
	// ConsumerSeconds is the integral of the consumers over time, starting
	// ones included: they are paid for.
	ConsumerSeconds float64 `json:"consumer_seconds"`
	// ScaleEvents counts the decisions that changed the count.
	ScaleEvents int `json:"scale_events"`
	// Reversals counts scaling steps in the direction opposite to the
	// previous step; ReversalsInWindow those within the model's
	// ReversalWindow of it.
	Reversals         int `json:"reversals"`
	ReversalsInWindow int `json:"reversals_in_window"`
	// Seconds is the trace's length, Arrived the messages it brought;
	// PeakConsumers the most consumers at once.
	Seconds       int     `json:"seconds"`
	Arrived       float64 `json:"arrived"`
	PeakConsumers int     `json:"peak_consumers"`
	// Steps are the decisions that changed the count.
	Steps []Decision `json:"-"`
}

// simEpoch is the simulated clock's start; any fixed time would do.
var simEpoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// Simulate replays tr against the pool m, letting d decide every interval.
// policy names d in the Result.
func Simulate(tr Trace, policy string, d Decider, m Model) (Result, error) {
	if err := m.Validate(); err != nil {
		return Result{}, err
	}
	res := Result{Trace: tr.Name, Policy: policy, Seconds: len(tr.Rates)}
	live := m.InitialConsumers
	if live == 0 && len(tr.Rates) > 0 {
		var sum float64
		k := min(len(tr.Rates), 60)
		for _, r := range tr.Rates[:k] {
			sum += r
		}
		live = max(1, ceilCount(sum/float64(k)/(m.Capacity*0.6)))
	}
	var starting []int // second at which each starting consumer is ready, in order
	interval := int(m.Interval / time.Second)
	startup := int(m.StartupDelay / time.Second)
	var queue, arrived, served, capSum float64
	var lastDir, lastStep int
	for t, rate := range tr.Rates {
		for len(starting) > 0 && starting[0] <= t {
			starting, live = starting[1:], live+1
		}
		queue += rate
		cap := float64(live) * m.Capacity
		h := math.Min(queue, cap)
		queue -= h
		if queue < 1e-9 {
			queue = 0
		}
		arrived += rate
		res.Arrived += rate
		served += h
		capSum += cap
		inflight := h * m.HandlerTime.Seconds()
		backlog := queue + inflight
		res.PeakBacklog = math.Max(res.PeakBacklog, queue)
		res.BacklogSeconds += queue
		res.InFlightSeconds += inflight
		res.ConsumerSeconds += float64(live + len(starting))
		res.PeakConsumers = max(res.PeakConsumers, live+len(starting))

		if (t+1)%interval != 0 {
			continue
		}
		snap := Snapshot{
			Time:        simEpoch.Add(time.Duration(t+1) * time.Second),
			Backlog:     int64(math.Round(backlog)),
			InFlight:    int64(math.Round(inflight)),
			ArrivalRate: arrived / float64(interval),
			HandledRate: served / float64(interval),
			Consumers:   live + len(starting),
			Ready:       live,
		}
		if capSum > 0 {
			snap.CPU = served / capSum
		}
		arrived, served, capSum = 0, 0, 0
		dec := d.Decide(snap)
		delta := dec.To - snap.Consumers
		if delta == 0 {
			continue
		}
		res.ScaleEvents++
		res.Steps = append(res.Steps, dec)
		dir := 1
		if delta < 0 {
			dir = -1
		}
		if lastDir != 0 && dir != lastDir {
			res.Reversals++
			if time.Duration(t+1-lastStep)*time.Second < m.ReversalWindow {
				res.ReversalsInWindow++
			}
		}
		lastDir, lastStep = dir, t+1
		for ; delta > 0; delta-- {
			starting = append(starting, t+1+startup)
		}
		for ; delta < 0 && len(starting) > 0; delta++ {
			starting = starting[:len(starting)-1]
		}
		live = max(0, live+delta)
	}
	return res, nil
}

// Compare runs the Policy with cfg and the KEDA baseline with kcfg on every
// trace, returning two results per trace: "a2abus" then "keda".
func Compare(traces []Trace, cfg Config, kcfg KEDAConfig, m Model) ([]Result, error) {
	var out []Result
	for _, tr := range traces {
		p, err := New(cfg)
		if err != nil {
			return nil, err
		}
		k, err := NewKEDA(kcfg)
		if err != nil {
			return nil, err
		}
		ours, err := Simulate(tr, "a2abus", p, m)
		if err != nil {
			return nil, err
		}
		base, err := Simulate(tr, "keda", k, m)
		if err != nil {
			return nil, err
		}
		out = append(out, ours, base)
	}
	return out, nil
}
