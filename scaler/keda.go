package scaler

import (
	"fmt"
	"math"
	"sync"
	"time"
)

// KEDAConfig holds the settings of the KEDA baseline: KEDA's nats-jetstream
// scaler feeding a Kubernetes HPA with its default behaviour.
type KEDAConfig struct {
	// MinReplicas and MaxReplicas bound every decision.
	MinReplicas, MaxReplicas int
	// LagThreshold is KEDA's lagThreshold, the HPA's AverageValue target:
	// the HPA wants ceil(lag / LagThreshold) replicas, where lag is
	// NumPending + NumAckPending, as KEDA's nats-jetstream scaler reads it.
	// DefaultKEDAConfig uses 6, which aims the baseline at the same load
	// per consumer as the Policy's TargetCPU: a consumer of DefaultModel
	// (100 msgs/s, 100 ms per message) that is 60% busy holds 6 messages
	// in flight. Both policies then share a set-point, and the comparison
	// measures how they move. KEDA's documented example, 10, is the load
	// of a fully busy consumer in that model: it runs the baseline hotter,
	// with fewer consumer·seconds and more backlog.
	LagThreshold float64
	// Tolerance: no change while lag/(replicas × LagThreshold) is within
	// 1 ± Tolerance. HPA default 0.1.
	Tolerance float64
	// StabilizationWindow: a scale-down goes no lower than the largest
	// recommendation within it. HPA default 300 s.
	StabilizationWindow time.Duration
	// ScaleUpPercent and ScaleUpPods limit one scale-up (per 15 s, the
	// HPA's sync period, which the simulator's interval matches): to the
	// larger of current × (1 + percent/100) and current + pods. HPA
	// defaults 100 and 4.
	ScaleUpPercent float64
	ScaleUpPods    int
}

// DefaultKEDAConfig returns the baseline's defaults: HPA defaults, 1 to 50
// replicas, a lag threshold of 6.
func DefaultKEDAConfig() KEDAConfig {
	return KEDAConfig{
		MinReplicas:         1,
		MaxReplicas:         50,
		LagThreshold:        6,
		Tolerance:           0.1,
		StabilizationWindow: 300 * time.Second,
		ScaleUpPercent:      100,
		ScaleUpPods:         4,
	}
}

// Validate reports the first field out of range, by name.
func (c KEDAConfig) Validate() error {
	bad := func(field string, v any, want string) error {
		return &ConfigError{Field: field, Value: v, Want: want}
	}
	switch {
	case c.MinReplicas < 0:
		return bad("MinReplicas", c.MinReplicas, "want >= 0")
	case c.MaxReplicas < 1 || c.MaxReplicas < c.MinReplicas:
		return bad("MaxReplicas", c.MaxReplicas, "want >= 1 and >= MinReplicas")
	case !(c.LagThreshold > 0) || math.IsInf(c.LagThreshold, 0):
		return bad("LagThreshold", c.LagThreshold, "want > 0")
	case !(c.Tolerance >= 0 && c.Tolerance < 1):
		return bad("Tolerance", c.Tolerance, "want in [0, 1)")
	case c.StabilizationWindow < 0:
		return bad("StabilizationWindow", c.StabilizationWindow, "want >= 0")
	case !(c.ScaleUpPercent >= 0) || math.IsInf(c.ScaleUpPercent, 0):
		return bad("ScaleUpPercent", c.ScaleUpPercent, "want >= 0")
	case c.ScaleUpPods < 0:
		return bad("ScaleUpPods", c.ScaleUpPods, "want >= 0")
	}
	return nil
}

// KEDA is the baseline policy: replicas = ceil(lag / LagThreshold), with the
// HPA's tolerance, scale-up rate limit and scale-down stabilization window.
// It sees only the backlog (lag). Its methods are safe for concurrent use.
type KEDA struct {
	cfg KEDAConfig

	mu      sync.Mutex
	recs    []recommendation
	started bool
}

// NewKEDA returns the baseline with cfg, or an error wrapping
// ErrInvalidConfig.
func NewKEDA(cfg KEDAConfig) (*KEDA, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &KEDA{cfg: cfg}, nil
}

// Decide evaluates one snapshot the way the HPA does for an External metric
// with an AverageValue target.
func (k *KEDA) Decide(s Snapshot) Decision {
	k.mu.Lock()
	defer k.mu.Unlock()
	c := k.cfg
	cur := s.Consumers
	d := Decision{Time: s.Time, From: cur, To: cur}
	if !k.started {
		// As for Policy: the starting count counts as a recommendation, as
		// if the HPA had been running at it (without this the baseline
		// would drop to its minimum on its first look at an idle stream).
		k.started = true
		k.recs = append(k.recs, recommendation{s.Time, cur})
	}
	lag := float64(s.Backlog)
	desired := cur
	ratio := math.Inf(1)
	if cur > 0 {
		ratio = lag / (float64(cur) * c.LagThreshold)
	}
	if cur == 0 || math.Abs(1-ratio) > c.Tolerance {
		desired = ceilCount(lag / c.LagThreshold)
	}
	desired = min(max(desired, c.MinReplicas), c.MaxReplicas)
	k.recs = append(k.recs, recommendation{s.Time, desired})
	i := 0
	for i < len(k.recs)-1 && s.Time.Sub(k.recs[i].at) > c.StabilizationWindow {
		i++
	}
	k.recs = append(k.recs[:0], k.recs[i:]...)

	to := cur
	switch {
	case desired > cur:
		limit := max(int(math.Floor(float64(cur)*(1+c.ScaleUpPercent/100))), cur+c.ScaleUpPods)
		to = min(desired, limit, c.MaxReplicas)
	case desired < cur:
		hi := 0
		for _, r := range k.recs {
			hi = max(hi, r.count)
		}
		to = min(cur, hi)
	}
	d.To = to
	d.Trigger = TriggerBacklog // the lag sets the count, whichever way
	d.Reason = fmt.Sprintf("lag %d / threshold %g → %d replicas", s.Backlog, c.LagThreshold, desired)
	switch {
	case to > cur && to < desired:
		d.Reason += fmt.Sprintf(", rate-limited: %d → %d", cur, to)
	case to != cur:
		d.Reason += fmt.Sprintf(": %d → %d", cur, to)
	case desired < cur:
		d.Reason += fmt.Sprintf(": hold at %d, stabilization window", cur)
	default:
		d.Reason += fmt.Sprintf(": hold at %d", cur)
	}
	return d
}
