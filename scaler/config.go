package scaler

import (
	"math"
	"time"
)

// Config holds the settings of a Policy. Start from DefaultConfig and change
// what differs; the zero Config is not valid.
type Config struct {
	// MinConsumers and MaxConsumers bound every decision. Defaults 1 and 50.
	MinConsumers, MaxConsumers int

	// ScaleUpCPU: scale up when the consumers' mean CPU is above it.
	// Default 0.70.
	ScaleUpCPU float64
	// ScaleDownCPU: scaling down needs the mean CPU below it. Default 0.50.
	// (The design said 0.30; in the simulator that left the pool up to
	// twice the size the load needed whenever CPU settled between 30% and
	// the target, at 15-25% more consumer·seconds than the baseline on
	// step and sawtooth loads. The growth guard and the stabilization
	// window keep the pool from flapping without it.)
	ScaleDownCPU float64
	// TargetCPU is the CPU a scaling step aims at: a step sizes the pool so
	// the expected load would run at this CPU. It lies between the two
	// thresholds. Default 0.60.
	TargetCPU float64

	// ScaleUpBacklog: scale up when the backlog is above it. Default 1000.
	ScaleUpBacklog int64
	// ScaleDownBacklog: scaling down needs the backlog below it. Default 100.
	ScaleDownBacklog int64

	// Horizon is how far ahead growth is predicted. Default 5 minutes.
	Horizon time.Duration
	// ScaleUpGrowth: scale up when the load predicted Horizon ahead exceeds
	// the pool's capacity at TargetCPU by more than this fraction, and the
	// prediction is confident. Default 0.50.
	ScaleUpGrowth float64
	// ScaleDownGrowth: scaling down needs the load predicted Horizon ahead
	// to be below the pool's capacity at TargetCPU by more than this
	// fraction (a negative number). Default -0.20.
	ScaleDownGrowth float64
	// MinConfidence is the confidence a forecast's trend needs to be used;
	// below it the load is expected to stay at its smoothed level. Default
	// 0.5 (the trend stands two standard errors from zero).
	MinConfidence float64
	// Alpha and Beta are the level and trend smoothing of the forecast.
	// Defaults 0.5 and 0.2.
	Alpha, Beta float64

	// NoiseHeadroom is how many standard deviations of the arrival rate's
	// noise a step adds to the expected load. Default 0: the target CPU
	// leaves enough room on the simulated loads, and the headroom costs
	// consumers on every trace.
	NoiseHeadroom float64
	// Lead is how far ahead a step sizes the pool: the time a new consumer
	// takes to start plus one evaluation interval. Default 45 s.
	Lead time.Duration
	// DrainTime is the time a step gives the pool to drain the backlog on
	// top of the arrivals, at full CPU. Default 30 s.
	DrainTime time.Duration

	// ScaleUpCooldown is the least time between a scaling step and the next
	// scale-up. Default 15 s.
	ScaleUpCooldown time.Duration
	// ScaleDownCooldown is the least time between a scaling step and the
	// next scale-down. Default 60 s.
	ScaleDownCooldown time.Duration
	// UpHold is the least time a scale-up stands before a scale-down, so
	// that the pool does not shrink right after it grew; consumers added
	// only to drain a backlog may go sooner. Default 5 minutes.
	UpHold time.Duration
	// StabilizationWindow: a scale-down goes no lower than the largest
	// count recommended within this window (as the Kubernetes HPA does), so
	// a brief lull does not undo a scale-up. Default 3 minutes (the HPA's
	// is 5; the growth guard makes a shorter window safe, and it frees the
	// consumers of a spike two minutes sooner).
	StabilizationWindow time.Duration

	// ConsumerCapacity is what one consumer handles per second at 100% CPU.
	// 0 (the default) learns it from the handled rate and the CPU.
	ConsumerCapacity float64
}

// DefaultConfig returns the default settings: those of the design (scale up
// above 70% CPU, 1000 messages of backlog or 50% predicted growth; scale down
// below 100 messages with growth below -20%), except that scaling down needs
// CPU below 50%, not 30% (see ScaleDownCPU).
func DefaultConfig() Config {
	return Config{
		MinConsumers:        1,
		MaxConsumers:        50,
		ScaleUpCPU:          0.70,
		ScaleDownCPU:        0.50,
		TargetCPU:           0.60,
		ScaleUpBacklog:      1000,
		ScaleDownBacklog:    100,
		Horizon:             5 * time.Minute,
		ScaleUpGrowth:       0.50,
		ScaleDownGrowth:     -0.20,
		MinConfidence:       0.75,
		Alpha:               0.5,
		Beta:                0.2,
		Lead:                45 * time.Second,
		DrainTime:           30 * time.Second,
		ScaleUpCooldown:     15 * time.Second,
		ScaleDownCooldown:   60 * time.Second,
		UpHold:              5 * time.Minute,
		StabilizationWindow: 3 * time.Minute,
	}
}

// Validate reports the first field out of range, by name.
func (c Config) Validate() error {
	bad := func(field string, v any, want string) error {
		return &ConfigError{Field: field, Value: v, Want: want}
	}
	frac := func(x float64) bool { return x > 0 && x <= 1 && !math.IsNaN(x) }
	switch {
	case c.MinConsumers < 0:
		return bad("MinConsumers", c.MinConsumers, "want >= 0")
	case c.MaxConsumers < 1 || c.MaxConsumers < c.MinConsumers:
		return bad("MaxConsumers", c.MaxConsumers, "want >= 1 and >= MinConsumers")
	case !frac(c.ScaleUpCPU):
		return bad("ScaleUpCPU", c.ScaleUpCPU, "want in (0, 1]")
	case !frac(c.ScaleDownCPU) || c.ScaleDownCPU >= c.ScaleUpCPU:
		return bad("ScaleDownCPU", c.ScaleDownCPU, "want in (0, ScaleUpCPU)")
	case !(c.TargetCPU > c.ScaleDownCPU && c.TargetCPU <= c.ScaleUpCPU):
		return bad("TargetCPU", c.TargetCPU, "want in (ScaleDownCPU, ScaleUpCPU]")
	case c.ScaleUpBacklog < 1:
		return bad("ScaleUpBacklog", c.ScaleUpBacklog, "want >= 1")
	case c.ScaleDownBacklog < 0 || c.ScaleDownBacklog >= c.ScaleUpBacklog:
		return bad("ScaleDownBacklog", c.ScaleDownBacklog, "want in [0, ScaleUpBacklog)")
	case c.Horizon <= 0:
		return bad("Horizon", c.Horizon, "want > 0")
	case !(c.ScaleUpGrowth > 0) || math.IsInf(c.ScaleUpGrowth, 0):
		return bad("ScaleUpGrowth", c.ScaleUpGrowth, "want > 0")
	case !(c.ScaleDownGrowth < 0 && c.ScaleDownGrowth > -1):
		return bad("ScaleDownGrowth", c.ScaleDownGrowth, "want in (-1, 0)")
	case !(c.MinConfidence >= 0 && c.MinConfidence <= 1):
		return bad("MinConfidence", c.MinConfidence, "want in [0, 1]")
	case !frac(c.Alpha):
		return bad("Alpha", c.Alpha, "want in (0, 1]")
	case !frac(c.Beta):
		return bad("Beta", c.Beta, "want in (0, 1]")
	case !(c.NoiseHeadroom >= 0) || math.IsInf(c.NoiseHeadroom, 0):
		return bad("NoiseHeadroom", c.NoiseHeadroom, "want >= 0")
	case c.Lead < 0:
		return bad("Lead", c.Lead, "want >= 0")
	case c.DrainTime <= 0:
		return bad("DrainTime", c.DrainTime, "want > 0")
	case c.ScaleUpCooldown < 0:
		return bad("ScaleUpCooldown", c.ScaleUpCooldown, "want >= 0")
	case c.ScaleDownCooldown < 0:
		return bad("ScaleDownCooldown", c.ScaleDownCooldown, "want >= 0")
	case c.UpHold < 0:
		return bad("UpHold", c.UpHold, "want >= 0")
	case c.StabilizationWindow < 0:
		return bad("StabilizationWindow", c.StabilizationWindow, "want >= 0")
	case !(c.ConsumerCapacity >= 0) || math.IsInf(c.ConsumerCapacity, 0):
		return bad("ConsumerCapacity", c.ConsumerCapacity, "want >= 0")
	}
	return nil
}
