package scaler

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(*Config)
		wantErr error
		field   string
	}{
		{name: "defaults", mutate: func(*Config) {}},
		{name: "min negative", mutate: func(c *Config) { c.MinConsumers = -1 }, wantErr: ErrInvalidConfig, field: "MinConsumers"},
		{name: "zero min is fine", mutate: func(c *Config) { c.MinConsumers = 0 }},
		{name: "max below min", mutate: func(c *Config) { c.MinConsumers, c.MaxConsumers = 5, 4 }, wantErr: ErrInvalidConfig, field: "MaxConsumers"},
		{name: "scale-up cpu over 1", mutate: func(c *Config) { c.ScaleUpCPU = 1.5 }, wantErr: ErrInvalidConfig, field: "ScaleUpCPU"},
		{name: "scale-down cpu above up", mutate: func(c *Config) { c.ScaleDownCPU = 0.8 }, wantErr: ErrInvalidConfig, field: "ScaleDownCPU"},
		{name: "target outside band", mutate: func(c *Config) { c.TargetCPU = 0.2 }, wantErr: ErrInvalidConfig, field: "TargetCPU"},
		{name: "scale-up backlog zero", mutate: func(c *Config) { c.ScaleUpBacklog = 0 }, wantErr: ErrInvalidConfig, field: "ScaleUpBacklog"},
		{name: "scale-down backlog above up", mutate: func(c *Config) { c.ScaleDownBacklog = 2000 }, wantErr: ErrInvalidConfig, field: "ScaleDownBacklog"},
		{name: "horizon zero", mutate: func(c *Config) { c.Horizon = 0 }, wantErr: ErrInvalidConfig, field: "Horizon"},
		{name: "growth up negative", mutate: func(c *Config) { c.ScaleUpGrowth = -0.1 }, wantErr: ErrInvalidConfig, field: "ScaleUpGrowth"},
		{name: "growth down positive", mutate: func(c *Config) { c.ScaleDownGrowth = 0.1 }, wantErr: ErrInvalidConfig, field: "ScaleDownGrowth"},
		{name: "confidence over 1", mutate: func(c *Config) { c.MinConfidence = 2 }, wantErr: ErrInvalidConfig, field: "MinConfidence"},
		{name: "alpha zero", mutate: func(c *Config) { c.Alpha = 0 }, wantErr: ErrInvalidConfig, field: "Alpha"},
		{name: "beta over 1", mutate: func(c *Config) { c.Beta = 1.1 }, wantErr: ErrInvalidConfig, field: "Beta"},
		{name: "noise headroom negative", mutate: func(c *Config) { c.NoiseHeadroom = -1 }, wantErr: ErrInvalidConfig, field: "NoiseHeadroom"},
		{name: "lead negative", mutate: func(c *Config) { c.Lead = -time.Second }, wantErr: ErrInvalidConfig, field: "Lead"},
		{name: "drain zero", mutate: func(c *Config) { c.DrainTime = 0 }, wantErr: ErrInvalidConfig, field: "DrainTime"},
		{name: "up cooldown negative", mutate: func(c *Config) { c.ScaleUpCooldown = -1 }, wantErr: ErrInvalidConfig, field: "ScaleUpCooldown"},
		{name: "down cooldown negative", mutate: func(c *Config) { c.ScaleDownCooldown = -1 }, wantErr: ErrInvalidConfig, field: "ScaleDownCooldown"},
		{name: "window negative", mutate: func(c *Config) { c.StabilizationWindow = -1 }, wantErr: ErrInvalidConfig, field: "StabilizationWindow"},
		{name: "up hold negative", mutate: func(c *Config) { c.UpHold = -1 }, wantErr: ErrInvalidConfig, field: "UpHold"},
		{name: "capacity negative", mutate: func(c *Config) { c.ConsumerCapacity = -5 }, wantErr: ErrInvalidConfig, field: "ConsumerCapacity"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			tt.mutate(&c)
			err := c.Validate()
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Validate() = %v, want %v", err, tt.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), tt.field) {
				t.Errorf("error %q does not name %s", err, tt.field)
			}
			var ce *ConfigError
			if err != nil && (!errors.As(err, &ce) || ce.Field != tt.field) {
				t.Errorf("error %v is not a ConfigError of field %s", err, tt.field)
			}
			if _, nerr := New(c); !errors.Is(nerr, tt.wantErr) {
				t.Errorf("New() = %v, want %v", nerr, tt.wantErr)
			}
		})
	}
}

func TestKEDAConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(*KEDAConfig)
		wantErr error
		field   string
	}{
		{name: "defaults", mutate: func(*KEDAConfig) {}},
		{name: "min negative", mutate: func(c *KEDAConfig) { c.MinReplicas = -1 }, wantErr: ErrInvalidConfig, field: "MinReplicas"},
		{name: "max zero", mutate: func(c *KEDAConfig) { c.MaxReplicas = 0 }, wantErr: ErrInvalidConfig, field: "MaxReplicas"},
		{name: "threshold zero", mutate: func(c *KEDAConfig) { c.LagThreshold = 0 }, wantErr: ErrInvalidConfig, field: "LagThreshold"},
		{name: "tolerance 1", mutate: func(c *KEDAConfig) { c.Tolerance = 1 }, wantErr: ErrInvalidConfig, field: "Tolerance"},
		{name: "window negative", mutate: func(c *KEDAConfig) { c.StabilizationWindow = -1 }, wantErr: ErrInvalidConfig, field: "StabilizationWindow"},
		{name: "percent negative", mutate: func(c *KEDAConfig) { c.ScaleUpPercent = -1 }, wantErr: ErrInvalidConfig, field: "ScaleUpPercent"},
		{name: "pods negative", mutate: func(c *KEDAConfig) { c.ScaleUpPods = -1 }, wantErr: ErrInvalidConfig, field: "ScaleUpPods"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultKEDAConfig()
			tt.mutate(&c)
			err := c.Validate()
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Validate() = %v, want %v", err, tt.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), tt.field) {
				t.Errorf("error %q does not name %s", err, tt.field)
			}
		})
	}
}

func TestModelValidate(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(*Model)
		wantErr error
		field   string
	}{
		{name: "defaults", mutate: func(*Model) {}},
		{name: "capacity zero", mutate: func(m *Model) { m.Capacity = 0 }, wantErr: ErrInvalidConfig, field: "Capacity"},
		{name: "startup fractional", mutate: func(m *Model) { m.StartupDelay = 1500 * time.Millisecond }, wantErr: ErrInvalidConfig, field: "StartupDelay"},
		{name: "interval under a second", mutate: func(m *Model) { m.Interval = 0 }, wantErr: ErrInvalidConfig, field: "Interval"},
		{name: "initial negative", mutate: func(m *Model) { m.InitialConsumers = -1 }, wantErr: ErrInvalidConfig, field: "InitialConsumers"},
		{name: "handler negative", mutate: func(m *Model) { m.HandlerTime = -1 }, wantErr: ErrInvalidConfig, field: "HandlerTime"},
		{name: "reversal window negative", mutate: func(m *Model) { m.ReversalWindow = -1 }, wantErr: ErrInvalidConfig, field: "ReversalWindow"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := DefaultModel()
			tt.mutate(&m)
			err := m.Validate()
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Validate() = %v, want %v", err, tt.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), tt.field) {
				t.Errorf("error %q does not name %s", err, tt.field)
			}
		})
	}
}
