package scalerd

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/a2abus/a2abus/scaler"
)

func env(kv ...string) func(string) (string, bool) {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestLoadConfig(t *testing.T) {
	cfg, err := loadConfig(nil, env())
	if err != nil {
		t.Fatal(err)
	}
	if cfg.NATS != "nats://127.0.0.1:4222" || cfg.Interval != 15*time.Second || cfg.HTTP != "127.0.0.1:8081" ||
		cfg.DryRun || cfg.Policy.MinConsumers != 1 || cfg.Policy.MaxConsumers != 50 {
		t.Errorf("defaults: %+v", cfg)
	}

	cfg, err = loadConfig([]string{"--interval", "2s", "--max-consumers", "8"},
		env("SCALERD_INTERVAL", "5s", "SCALERD_DRY_RUN", "true", "SCALERD_MIN_CONSUMERS", "2",
			"SCALERD_STABILIZATION_WINDOW", "1m"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Interval != 2*time.Second {
		t.Errorf("interval %v: the flag wins over the environment", cfg.Interval)
	}
	if !cfg.DryRun || cfg.Policy.MinConsumers != 2 || cfg.Policy.MaxConsumers != 8 || cfg.Policy.StabilizationWindow != time.Minute {
		t.Errorf("environment and flags: %+v", cfg)
	}
}

// TestLoadConfigErrors: every bad setting is one line naming its flag (or
// variable).
func TestLoadConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  []string
		want string
	}{
		{name: "unknown flag", args: []string{"--nope"}, want: "-nope"},
		{name: "bad duration", args: []string{"--interval", "soon"}, want: "-interval"},
		{name: "interval too short", args: []string{"--interval", "1ms"}, want: "--interval 1ms"},
		{name: "lease too short", args: []string{"--lease", "10ms"}, want: "--lease 10ms"},
		{name: "bad http", args: []string{"--http", "nope"}, want: "--http"},
		{name: "empty nats", args: []string{"--nats", " "}, want: "--nats"},
		{name: "log level", args: []string{"--log-level", "loud"}, want: "--log-level"},
		{name: "max below min", args: []string{"--min-consumers", "5", "--max-consumers", "3"}, want: "--max-consumers 3: want >= 1 and >= --min-consumers"},
		{name: "cpu band", args: []string{"--scale-down-cpu", "0.9"}, want: "--scale-down-cpu 0.9"},
		{name: "backlog", args: []string{"--scale-up-backlog", "0"}, want: "--scale-up-backlog 0"},
		{name: "bad env", env: []string{"SCALERD_MAX_CONSUMERS", "many"}, want: "SCALERD_MAX_CONSUMERS"},
		{name: "env out of range", env: []string{"SCALERD_DRAIN_TIME", "0s"}, want: "--drain-time 0s"},
		{name: "argument", args: []string{"--dry-run", "extra"}, want: `unexpected argument "extra"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := loadConfig(tt.args, env(tt.env...))
			if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "\n") {
				t.Errorf("loadConfig(%v) = %v, want one line with %q", tt.args, err, tt.want)
			}
			if len(tt.env) > 0 {
				return // Main reads no environment in these tests
			}
			code, _, stderr := run(t, tt.args...)
			if code != exitUsage || strings.Count(stderr, "\n") != 1 {
				t.Errorf("Main(%v): exit %d, stderr %q; want exit 2 and one line", tt.args, code, stderr)
			}
		})
	}
}

// TestPolicyFlagsCoverTheConfig: every field of scaler.Config has a flag.
func TestPolicyFlagsCoverTheConfig(t *testing.T) {
	cfg := DefaultConfig()
	fs := flagSet(&cfg)
	typ := reflect.TypeFor[scaler.Config]()
	for i := range typ.NumField() {
		field := typ.Field(i).Name
		if name, ok := policyFlags[field]; !ok || fs.Lookup(name) == nil {
			t.Errorf("field %s: no flag", field)
		}
	}
}
