package scaler

import (
	"fmt"
	"math"
	"strings"
	"sync"
	"time"
)

// Decision is the outcome of one evaluation.
type Decision struct {
	Time time.Time
	// From is the consumer count the snapshot reported, To the count the
	// policy wants; To == From holds.
	From, To int
	// Reason says why, for people: "backlog 5400 > 1000: 3 → 6 consumers".
	Reason string
	// Trigger says why in one word from a fixed set, for machines (a
	// metric label): what fired, whether or not the count changed.
	Trigger Trigger
	// Forecast is the arrival-rate forecast at the policy's horizon (zero
	// for policies that do not predict).
	Forecast Forecast
	// Growth is the predicted load at the horizon relative to the pool's
	// capacity at the target CPU, minus one: +0.5 means 50% more load than
	// the pool is sized for.
	Growth float64
}

// Trigger names what made a Decision. The set is fixed (see Triggers), so
// it can label a metric.
type Trigger string

// The triggers of a Decision.
const (
	// TriggerNone: nothing fired; the count holds.
	TriggerNone Trigger = "none"
	// TriggerBounds: the count was outside MinConsumers..MaxConsumers.
	TriggerBounds Trigger = "bounds"
	// TriggerNoConsumers: messages wait or arrive and no consumer runs.
	TriggerNoConsumers Trigger = "no-consumers"
	// TriggerCPU: the consumers' CPU is above ScaleUpCPU.
	TriggerCPU Trigger = "cpu"
	// TriggerBacklog: more than ScaleUpBacklog messages wait (for the
	// KEDA baseline: the lag sets the count).
	TriggerBacklog Trigger = "backlog"
	// TriggerForecast: the confident forecast exceeds the pool's capacity
	// by more than ScaleUpGrowth.
	TriggerForecast Trigger = "forecast"
	// TriggerLowLoad: CPU, backlog and forecast are all low enough to
	// scale down.
	TriggerLowLoad Trigger = "low-load"
	// TriggerDrained: the backlog that consumers were added to drain is
	// gone, so they may go.
	TriggerDrained Trigger = "drained"
)

// Triggers returns every Trigger a Decision may carry.
func Triggers() []Trigger {
	return []Trigger{TriggerNone, TriggerBounds, TriggerNoConsumers, TriggerCPU, TriggerBacklog,
		TriggerForecast, TriggerLowLoad, TriggerDrained}
}

// Direction is "up", "down" or "hold": the sign of Delta in a word.
func (d Decision) Direction() string {
	switch {
	case d.To > d.From:
		return "up"
	case d.To < d.From:
		return "down"
	}
	return "hold"
}

// Delta is To - From: positive for a scale-up, negative for a scale-down.
func (d Decision) Delta() int { return d.To - d.From }

// Policy decides the consumer count from Snapshots.
//
// It scales up when any of these holds: CPU above ScaleUpCPU (at two
// evaluations in a row, or at one if messages wait or CPU is 80% or more);
// more than ScaleUpBacklog messages waiting; or a confident forecast of the
// load Horizon ahead more than ScaleUpGrowth above the pool's capacity at
// TargetCPU. The step is proportional to the gap, like the Kubernetes HPA's
// ceil(current × metric / target): straight to the count that carries the
// load expected Lead ahead at TargetCPU, plus consumers that drain the
// backlog expected by then within DrainTime.
//
// It scales down only when CPU is below ScaleDownCPU, fewer than
// ScaleDownBacklog messages wait and the forecast is more than
// ScaleDownGrowth below the capacity at TargetCPU; never within UpHold of a
// scale-up or ScaleDownCooldown of any step; and no lower than the largest
// count recommended within StabilizationWindow. Consumers added only to
// drain a backlog are released once it is drained, whatever the CPU and
// without waiting for UpHold.
//
// A Policy keeps state between calls (the forecast, the learned consumer
// capacity, the recent recommendations and steps). Its methods are safe for
// concurrent use, but Decide should see snapshots in time order.
type Policy struct {
	cfg Config

	mu       sync.Mutex
	fc       *Forecaster
	capacity float64 // learned messages per second per consumer at 100% CPU
	recs     []recommendation
	started  bool
	lastStep time.Time
	stepped  bool
	lastUp   time.Time // zero before the first scale-up
	draining bool      // the last scale-up added consumers to drain a backlog
	hot      bool      // CPU was above ScaleUpCPU at the previous evaluation

	primed      bool // lastTime and lastArrival are set
	lastTime    time.Time
	lastArrival float64
}

type recommendation struct {
	at    time.Time
	count int
}

// New returns a Policy with cfg, or an error wrapping ErrInvalidConfig.
func New(cfg Config) (*Policy, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Policy{cfg: cfg, fc: NewForecaster(cfg.Alpha, cfg.Beta), capacity: cfg.ConsumerCapacity}, nil
}

// Config returns the policy's settings.
func (p *Policy) Config() Config { return p.cfg }

// saturatedCPU is the mean CPU over an interval above which the pool is
// taken to be saturated for part of it (the arrivals exceed its capacity and
// a backlog builds): one such reading is enough to scale up, and the latest
// slope of the arrival rate sizes the step.
const saturatedCPU = 0.80

// minCPUForCapacity is the CPU below which the handled rate says too little
// about a consumer's capacity to learn it.
const minCPUForCapacity = 0.05

// Decide evaluates one snapshot and returns the wanted consumer count with
// its reason. It does not act; the caller applies To.
func (p *Policy) Decide(s Snapshot) Decision {
	p.mu.Lock()
	defer p.mu.Unlock()
	c := p.cfg
	n := s.Consumers
	d := Decision{Time: s.Time, From: n, To: n, Trigger: TriggerNone}

	p.fc.Observe(s.Time, s.ArrivalRate)
	if c.ConsumerCapacity == 0 && s.Ready > 0 && s.CPU >= minCPUForCapacity && s.HandledRate > 0 {
		obs := s.HandledRate / (float64(s.Ready) * s.CPU)
		if p.capacity == 0 {
			p.capacity = obs
		} else {
			p.capacity = 0.7*p.capacity + 0.3*obs
		}
	}
	if !p.started {
		// The count found at start counts as a recommendation, so that a
		// restarted scaler does not shrink the pool before it has seen the
		// load for a whole window.
		p.started = true
		p.recs = append(p.recs, recommendation{s.Time, n})
	}

	fcH := p.fc.Forecast(c.Horizon)
	fcL := p.fc.Forecast(c.Lead)
	confident := fcH.Confidence >= c.MinConfidence
	d.Forecast = fcH
	level := math.Max(0, fcH.Level)
	expH, expL := level, level
	if confident {
		expH, expL = fcH.Value, fcL.Value
	}
	// The load to size for: never less than what arrives now.
	load := math.Max(math.Max(s.ArrivalRate, level), expL) + c.NoiseHeadroom*fcH.Noise
	// While the pool is saturated, a step is sized for the load Lead ahead at
	// the latest slope of the arrival rate, even when the smoothed trend is
	// not confident yet: such a slope cannot start a step, but at the start
	// of a surge it is the best guess of the load to come.
	waiting := s.waiting()
	stepLoad := load
	if p.primed && s.Time.After(p.lastTime) && s.CPU >= saturatedCPU {
		slope := (s.ArrivalRate - p.lastArrival) / s.Time.Sub(p.lastTime).Seconds()
		stepLoad = math.Max(load, s.ArrivalRate+slope*c.Lead.Seconds())
	}
	p.primed, p.lastTime, p.lastArrival = true, s.Time, s.ArrivalRate
	// The backlog keeps growing until new consumers are ready, Lead from
	// now: drain what it will be then.
	backlogAhead := float64(waiting)
	if p.capacity > 0 {
		backlogAhead += math.Max(0, stepLoad-float64(s.Ready)*p.capacity) * c.Lead.Seconds()
	}
	drain := backlogAhead / c.DrainTime.Seconds()

	// need is the count to step to: the load at TargetCPU, plus what drains
	// the waiting backlog in DrainTime at full CPU (those consumers are
	// only needed until it is gone). rec leaves the drain out: it is what
	// the load alone needs, and what the stabilization window remembers.
	var need, rec, stepRec int
	if p.capacity > 0 {
		rec = ceilCount(load / (p.capacity * c.TargetCPU))
		stepRec = ceilCount(stepLoad / (p.capacity * c.TargetCPU))
		need = ceilCount(stepLoad/(p.capacity*c.TargetCPU) + drain/p.capacity)
		if n > 0 {
			d.Growth = expH/(float64(n)*p.capacity*c.TargetCPU) - 1
		}
	} else {
		// Nothing learned yet: step on CPU alone, as the HPA does.
		rec = ceilCount(float64(n) * s.CPU / c.TargetCPU)
		need, stepRec = rec, rec
		if waiting > c.ScaleUpBacklog {
			need = max(need, 2*n)
		}
		if level > 0 {
			d.Growth = expH/level - 1
		}
	}
	need, rec = c.clamp(need), c.clamp(rec)
	p.recs = append(p.recs, recommendation{s.Time, rec})
	p.pruneRecs(s.Time)

	switch {
	case n < c.MinConsumers:
		d.Trigger = TriggerBounds
		return p.step(d, c.MinConsumers, fmt.Sprintf("%d consumers < minimum %d", n, c.MinConsumers))
	case n > c.MaxConsumers:
		d.Trigger = TriggerBounds
		return p.step(d, c.MaxConsumers, fmt.Sprintf("%d consumers > maximum %d", n, c.MaxConsumers))
	case n == 0 && (waiting > 0 || s.ArrivalRate > 0):
		d.Trigger = TriggerNoConsumers
		return p.step(d, max(need, 1), fmt.Sprintf("backlog %d and arrivals %.0f/s with no consumers", waiting, s.ArrivalRate))
	}

	// CPU above the threshold counts when it was above it at the previous
	// evaluation too, when messages wait, or when the pool is saturated:
	// one reading just over the threshold with nothing waiting is as
	// likely noise as load.
	var up []string
	var upTrigger []Trigger
	hot := s.CPU > c.ScaleUpCPU
	hotOnce := hot && !p.hot && waiting < c.ScaleDownBacklog && s.CPU < saturatedCPU
	p.hot = hot
	if hot && !hotOnce {
		up = append(up, fmt.Sprintf("cpu %s > %s", pct(s.CPU), pct(c.ScaleUpCPU)))
		upTrigger = append(upTrigger, TriggerCPU)
	}
	if waiting > c.ScaleUpBacklog {
		up = append(up, fmt.Sprintf("backlog %d > %d", waiting, c.ScaleUpBacklog))
		upTrigger = append(upTrigger, TriggerBacklog)
	}
	if confident && n > 0 && d.Growth > c.ScaleUpGrowth {
		up = append(up, fmt.Sprintf("predicted %s growth %s > %s (confidence %.2f)",
			c.Horizon, signedPct(d.Growth), signedPct(c.ScaleUpGrowth), fcH.Confidence))
		upTrigger = append(upTrigger, TriggerForecast)
	}
	starting := s.Ready < n
	if len(up) > 0 {
		why := strings.Join(up, ", ")
		d.Trigger = upTrigger[0]
		to := need
		if !starting {
			to = max(to, n+1) // a trigger fired: take at least one step
		}
		to = c.clamp(to)
		switch {
		case to <= n && n == c.MaxConsumers:
			d.Reason = fmt.Sprintf("%s: hold at maximum %d consumers", why, n)
		case to <= n:
			d.Reason = fmt.Sprintf("%s: hold at %d consumers, %d still starting", why, n, n-s.Ready)
		case p.stepped && s.Time.Sub(p.lastStep) < c.ScaleUpCooldown:
			d.Reason = fmt.Sprintf("%s: hold at %d consumers, scale-up cooldown (%s left)",
				why, n, c.ScaleUpCooldown-s.Time.Sub(p.lastStep))
		default:
			// The window remembers the step's load (not its drain
			// consumers), so the step stands for a whole window.
			p.recs[len(p.recs)-1].count = max(rec, c.clamp(stepRec))
			// Consumers beyond that are there to drain the backlog; once
			// it is gone they may go without waiting for low CPU.
			p.draining = to > p.recs[len(p.recs)-1].count
			return p.step(d, to, why)
		}
		return d
	}

	cpuLow := s.CPU < c.ScaleDownCPU
	down := (cpuLow || p.draining) && waiting < c.ScaleDownBacklog &&
		(p.capacity == 0 || d.Growth < c.ScaleDownGrowth) && !starting
	if down {
		cond := fmt.Sprintf("cpu %s < %s", pct(s.CPU), pct(c.ScaleDownCPU))
		d.Trigger = TriggerLowLoad
		if !cpuLow {
			cond = "backlog drained"
			d.Trigger = TriggerDrained
		}
		why := fmt.Sprintf("%s, backlog %d < %d, predicted %s growth %s < %s",
			cond, waiting, c.ScaleDownBacklog,
			c.Horizon, signedPct(d.Growth), signedPct(c.ScaleDownGrowth))
		to := c.clamp(p.maxRec())
		switch {
		case to >= n && !cpuLow:
			p.draining = false // the load has grown into the drain consumers
			d.Reason = fmt.Sprintf("%s: hold at %d consumers, the load needs %d", why, n, to)
		case to >= n:
			d.Reason = fmt.Sprintf("%s: hold at %d consumers, stabilization window wants %d", why, n, to)
		case p.stepped && s.Time.Sub(p.lastStep) < c.ScaleDownCooldown:
			d.Reason = fmt.Sprintf("%s: hold at %d consumers, scale-down cooldown (%s left)",
				why, n, c.ScaleDownCooldown-s.Time.Sub(p.lastStep))
		case !p.lastUp.IsZero() && s.Time.Sub(p.lastUp) < c.UpHold && !p.draining:
			d.Reason = fmt.Sprintf("%s: hold at %d consumers, the last scale-up holds (%s left)",
				why, n, c.UpHold-s.Time.Sub(p.lastUp))
		default:
			p.draining = false
			return p.step(d, to, why)
		}
		return d
	}
	d.Reason = fmt.Sprintf("cpu %s, backlog %d, predicted %s growth %s: hold at %d consumers",
		pct(s.CPU), waiting, c.Horizon, signedPct(d.Growth), n)
	if hotOnce {
		d.Trigger = TriggerCPU
		d.Reason = fmt.Sprintf("cpu %s > %s once, backlog %d: hold at %d consumers until a second reading",
			pct(s.CPU), pct(c.ScaleUpCPU), waiting, n)
	}
	return d
}

// waiting is the backlog less the messages in flight, never negative.
func (s Snapshot) waiting() int64 {
	if s.InFlight <= 0 || s.InFlight > s.Backlog {
		return max(s.Backlog-max(s.InFlight, 0), 0)
	}
	return s.Backlog - s.InFlight
}

func (p *Policy) step(d Decision, to int, why string) Decision {
	d.To = to
	if to != d.From {
		p.lastStep, p.stepped = d.Time, true
	}
	if to > d.From {
		p.lastUp = d.Time
	}
	d.Reason = fmt.Sprintf("%s: %d → %d consumers", why, d.From, to)
	return d
}

func (p *Policy) pruneRecs(now time.Time) {
	i := 0
	for i < len(p.recs)-1 && now.Sub(p.recs[i].at) > p.cfg.StabilizationWindow {
		i++
	}
	p.recs = append(p.recs[:0], p.recs[i:]...)
}

func (p *Policy) maxRec() int {
	m := 0
	for _, r := range p.recs {
		m = max(m, r.count)
	}
	return m
}

func (c Config) clamp(n int) int { return min(max(n, c.MinConsumers), c.MaxConsumers) }

// ceilCount rounds a consumer count up, tolerating float error just above
// an integer.
func ceilCount(x float64) int {
	if !(x > 0) {
		return 0
	}
	if x > 1e6 {
		return 1e6
	}
	return int(math.Ceil(x - 1e-9))
}

func pct(x float64) string { return fmt.Sprintf("%.0f%%", x*100) }

func signedPct(x float64) string { return fmt.Sprintf("%+.0f%%", x*100) }
