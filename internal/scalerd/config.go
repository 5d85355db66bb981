package scalerd

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/a2abus/a2abus/scaler"
)

// Config is the daemon's configuration. Each field is a flag and a
// SCALERD_* environment variable; a flag given wins over the environment,
// which wins over the default.
type Config struct {
	NATS      string        // NATS server URL(s), comma-separated
	Interval  time.Duration // time between two decisions
	DryRun    bool          // decide and report, never write the target
	HTTP      string        // address of /metrics, /healthz, /readyz, /scale and /scale/{pool}
	Lease     time.Duration // TTL of the leader key; the leader refreshes it every Lease/3
	ID        string        // this scalerd in the leader key and the targets it writes
	LogLevel  string        // debug, info, warn or error
	LogFormat string        // text or json
	// Policy is the scaling policy's settings; the flags set its bounds,
	// thresholds and timings.
	Policy scaler.Config
}

// DefaultConfig returns the defaults: agentd's embedded server on
// nats://127.0.0.1:4222, a decision every 15 s (the HPA's sync period), a
// 10 s leader lease, HTTP on 127.0.0.1:8081 (agentd has 8080) and
// scaler.DefaultConfig's policy.
func DefaultConfig() Config {
	return Config{
		NATS:      "nats://127.0.0.1:4222",
		Interval:  15 * time.Second,
		HTTP:      "127.0.0.1:8081",
		Lease:     10 * time.Second,
		LogLevel:  "info",
		LogFormat: "text",
		Policy:    scaler.DefaultConfig(),
	}
}

// Bounds of the daemon's timings.
const (
	minInterval = 100 * time.Millisecond
	minLease    = time.Second
)

// Validate reports the first setting out of range, naming its flag.
func (c Config) Validate() error {
	if strings.TrimSpace(c.NATS) == "" {
		return errors.New("--nats: empty URL")
	}
	if c.Interval < minInterval {
		return fmt.Errorf("--interval %v: want at least %v", c.Interval, minInterval)
	}
	if c.Lease < minLease {
		return fmt.Errorf("--lease %v: want at least %v", c.Lease, minLease)
	}
	if _, _, err := net.SplitHostPort(c.HTTP); err != nil {
		return fmt.Errorf("--http %q: want host:port: %v", c.HTTP, err)
	}
	if c.ID != "" && strings.TrimSpace(c.ID) != c.ID {
		return fmt.Errorf("--id %q: leading or trailing space", c.ID)
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("--log-level %q: want debug, info, warn or error", c.LogLevel)
	}
	switch c.LogFormat {
	case "text", "json":
	default:
		return fmt.Errorf("--log-format %q: want text or json", c.LogFormat)
	}
	if err := c.Policy.Validate(); err != nil {
		var ce *scaler.ConfigError
		if errors.As(err, &ce) {
			name := policyFlags[ce.Field]
			if name == "" {
				name = ce.Field
			}
			return fmt.Errorf("--%s %v: %s", name, ce.Value, flagNames(ce.Want))
		}
		return err
	}
	return nil
}

// policyFlags names the flag of each scaler.Config field.
var policyFlags = map[string]string{
	"MinConsumers":        "min-consumers",
	"MaxConsumers":        "max-consumers",
	"ScaleUpCPU":          "scale-up-cpu",
	"ScaleDownCPU":        "scale-down-cpu",
	"TargetCPU":           "target-cpu",
	"ScaleUpBacklog":      "scale-up-backlog",
	"ScaleDownBacklog":    "scale-down-backlog",
	"Horizon":             "horizon",
	"ScaleUpGrowth":       "scale-up-growth",
	"ScaleDownGrowth":     "scale-down-growth",
	"MinConfidence":       "min-confidence",
	"Alpha":               "alpha",
	"Beta":                "beta",
	"NoiseHeadroom":       "noise-headroom",
	"Lead":                "lead",
	"DrainTime":           "drain-time",
	"ScaleUpCooldown":     "scale-up-cooldown",
	"ScaleDownCooldown":   "scale-down-cooldown",
	"UpHold":              "up-hold",
	"StabilizationWindow": "stabilization-window",
	"ConsumerCapacity":    "consumer-capacity",
}

// flagNames rewrites the field names in a range ("want >= MinConsumers")
// as flags.
func flagNames(want string) string {
	for field, name := range policyFlags {
		if strings.Contains(want, field) {
			want = strings.ReplaceAll(want, field, "--"+name)
		}
	}
	return want
}

// flagSet binds the daemon's flags to c. Its output is discarded: errors
// are reported once, in one line, by the caller.
func flagSet(c *Config) *flag.FlagSet {
	fs := flag.NewFlagSet("scalerd", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&c.NATS, "nats", c.NATS, "NATS server `URL`s, comma-separated")
	fs.DurationVar(&c.Interval, "interval", c.Interval, "time between two decisions")
	fs.BoolVar(&c.DryRun, "dry-run", c.DryRun, "decide and report, never write the pools' consumer targets")
	fs.StringVar(&c.HTTP, "http", c.HTTP, "`address` of /metrics, /healthz, /readyz, /scale and /scale/{pool}")
	fs.DurationVar(&c.Lease, "lease", c.Lease, "TTL of the leader key: a leader that stops is replaced this long after its last refresh (every scalerd of a bus must use the same)")
	fs.StringVar(&c.ID, "id", c.ID, "`name` of this scalerd in the leader key and the targets it writes (default: host name and a unique suffix)")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "log `level`: debug, info, warn or error")
	fs.StringVar(&c.LogFormat, "log-format", c.LogFormat, "log `format`: text or json")

	p := &c.Policy
	fs.IntVar(&p.MinConsumers, "min-consumers", p.MinConsumers, "fewest consumers `n` of each pool")
	fs.IntVar(&p.MaxConsumers, "max-consumers", p.MaxConsumers, "most consumers `n` of each pool")
	fs.Float64Var(&p.ScaleUpCPU, "scale-up-cpu", p.ScaleUpCPU, "scale up when the consumers' mean CPU `fraction` is above it")
	fs.Float64Var(&p.ScaleDownCPU, "scale-down-cpu", p.ScaleDownCPU, "scaling down needs the mean CPU `fraction` below it")
	fs.Float64Var(&p.TargetCPU, "target-cpu", p.TargetCPU, "CPU `fraction` a scaling step aims at")
	fs.Int64Var(&p.ScaleUpBacklog, "scale-up-backlog", p.ScaleUpBacklog, "scale up when more stored `messages` than this wait")
	fs.Int64Var(&p.ScaleDownBacklog, "scale-down-backlog", p.ScaleDownBacklog, "scaling down needs fewer stored `messages` than this waiting")
	fs.DurationVar(&p.Horizon, "horizon", p.Horizon, "how far ahead growth is predicted")
	fs.Float64Var(&p.ScaleUpGrowth, "scale-up-growth", p.ScaleUpGrowth, "scale up when the confident forecast exceeds the pool's capacity by this `fraction`")
	fs.Float64Var(&p.ScaleDownGrowth, "scale-down-growth", p.ScaleDownGrowth, "scaling down needs the forecast below the pool's capacity by this (negative) `fraction`")
	fs.Float64Var(&p.MinConfidence, "min-confidence", p.MinConfidence, "confidence a forecast's trend needs to count (0..1)")
	fs.Float64Var(&p.Alpha, "alpha", p.Alpha, "level smoothing of the forecast (0..1]")
	fs.Float64Var(&p.Beta, "beta", p.Beta, "trend smoothing of the forecast (0..1]")
	fs.Float64Var(&p.NoiseHeadroom, "noise-headroom", p.NoiseHeadroom, "standard deviations of arrival noise a step adds")
	fs.DurationVar(&p.Lead, "lead", p.Lead, "time a new consumer takes to start plus one interval; a target's new consumers count as starting this long")
	fs.DurationVar(&p.DrainTime, "drain-time", p.DrainTime, "time a step gives the pool to drain the backlog")
	fs.DurationVar(&p.ScaleUpCooldown, "scale-up-cooldown", p.ScaleUpCooldown, "least time between a step and the next scale-up")
	fs.DurationVar(&p.ScaleDownCooldown, "scale-down-cooldown", p.ScaleDownCooldown, "least time between a step and the next scale-down")
	fs.DurationVar(&p.UpHold, "up-hold", p.UpHold, "least time a scale-up stands before a scale-down")
	fs.DurationVar(&p.StabilizationWindow, "stabilization-window", p.StabilizationWindow, "a scale-down goes no lower than the largest count recommended within this window")
	fs.Float64Var(&p.ConsumerCapacity, "consumer-capacity", p.ConsumerCapacity, "stored `messages` per second one consumer handles at full CPU (0 learns it)")
	return fs
}

// envName maps a flag name to its environment variable: dry-run is
// SCALERD_DRY_RUN.
func envName(flagName string) string {
	return "SCALERD_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// loadConfig builds the configuration from the defaults, the environment
// and the flags in args, and validates it. It returns flag.ErrHelp when the
// user asked for help.
func loadConfig(args []string, lookupEnv func(string) (string, bool)) (Config, error) {
	cfg := DefaultConfig()
	fs := flagSet(&cfg)
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	given := map[string]string{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = f.Value.String() })
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		if envErr != nil {
			return
		}
		if v, ok := lookupEnv(envName(f.Name)); ok {
			if err := fs.Set(f.Name, v); err != nil {
				envErr = fmt.Errorf("%s=%q: %v", envName(f.Name), v, err)
			}
		}
	})
	if envErr != nil {
		return cfg, envErr
	}
	for name, v := range given { // flags win over the environment
		if err := fs.Set(name, v); err != nil {
			return cfg, fmt.Errorf("--%s: %v", name, err)
		}
	}
	return cfg, cfg.Validate()
}
