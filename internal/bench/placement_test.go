package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"strings"
	"testing"

	"github.com/a2abus/a2abus/placement"
)

// TestPlacementSmall runs the scenario at a small size and checks that every
// figure is sane. It asserts no timing beyond the lookup having one.
func TestPlacementSmall(t *testing.T) {
	res, err := Placement(context.Background(), PlacementConfig{Agents: 20_000, Lookups: 100_000})
	if err != nil {
		t.Fatal(err)
	}
	if res.Consumers != 10 || res.Groups != placement.DefaultGroups || res.Agents != 20_000 ||
		res.LoadFactor != placement.DefaultLoadFactor || res.LookupConsumers != 100 {
		t.Errorf("settings in the result: %+v", res)
	}
	if res.IdealMovedFraction != 1.0/11 {
		t.Errorf("ideal_moved_fraction = %v, want 1/11", res.IdealMovedFraction)
	}
	for name, f := range map[string]float64{
		"moved_fraction":          res.MovedFraction,
		"pcgroups_moved_fraction": res.PCGroupsMovedFraction,
	} {
		if !(f > 0 && f < 1) {
			t.Errorf("%s = %v, want in (0, 1)", name, f)
		}
	}
	// Nothing moves less than the newcomer's share, and the bounded-load
	// assignment stays close to it (fixed inputs: a regression, not a flake).
	if res.MovedFraction < res.IdealMovedFraction/2 || res.MovedOverIdeal > 2 ||
		math.Abs(res.MovedOverIdeal-res.MovedFraction/res.IdealMovedFraction) > 1e-9 {
		t.Errorf("moved %v, %v × ideal", res.MovedFraction, res.MovedOverIdeal)
	}
	for name, mm := range map[string]float64{
		"max_over_mean":          res.MaxOverMean,
		"max_over_mean_after":    res.MaxOverMeanAfter,
		"pcgroups_max_over_mean": res.PCGroupsMaxOverMean,
	} {
		if !(mm >= 1 && mm < 1.5) {
			t.Errorf("%s = %v, want in [1, 1.5)", name, mm)
		}
	}
	if !(res.LookupNs > 0) || math.IsInf(res.LookupNs, 0) {
		t.Errorf("lookup_ns = %v, want a positive number", res.LookupNs)
	}
}

// TestPlacementDefault runs the scenario of `agentd bench placement` and
// checks the figures that do not depend on the machine: they are pinned by
// the fixed agent and consumer names.
func TestPlacementDefault(t *testing.T) {
	if testing.Short() {
		t.Skip("100 000 agents and 10^6 lookups")
	}
	res, err := Placement(context.Background(), PlacementConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := WritePlacement(&buf, res, false); err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", buf.String())
	// The targets: agents per consumer within 1.10 × the mean, and
	// no more than 1.25 × the ideal share moved.
	if res.MaxOverMean > 1.10 || res.MovedOverIdeal > 1.25 {
		t.Errorf("max/mean %.3f (target 1.10), moved %.3f × ideal (target 1.25)", res.MaxOverMean, res.MovedOverIdeal)
	}
}

func TestPlacementConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     PlacementConfig
		wantErr string
	}{
		{name: "defaults", cfg: PlacementConfig{}},
		{name: "small", cfg: PlacementConfig{Agents: 1, Groups: 2, Consumers: 1, LookupConsumers: 1, Lookups: 1, LoadFactor: 1}},
		{name: "negative agents", cfg: PlacementConfig{Agents: -1}, wantErr: "agent count"},
		{name: "one group", cfg: PlacementConfig{Groups: 1}, wantErr: "group count"},
		{name: "too many groups", cfg: PlacementConfig{Groups: placement.MaxGroups + 1}, wantErr: "group count"},
		{name: "consumers as many as groups", cfg: PlacementConfig{Groups: 8, Consumers: 8}, wantErr: "consumer count"},
		{name: "negative lookups", cfg: PlacementConfig{Lookups: -5}, wantErr: "lookup count"},
		{name: "negative lookup consumers", cfg: PlacementConfig{LookupConsumers: -1}, wantErr: "lookup consumer count"},
		{name: "load factor below 1", cfg: PlacementConfig{LoadFactor: 0.5}, wantErr: "load factor"},
		{name: "load factor NaN", cfg: PlacementConfig{LoadFactor: math.NaN()}, wantErr: "load factor"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if (err == nil) != (tt.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("Validate() = %v, want an error containing %q", err, tt.wantErr)
			}
			if err == nil {
				return
			}
			if _, perr := Placement(context.Background(), tt.cfg); perr == nil || perr.Error() != err.Error() {
				t.Errorf("Placement error %v, want %v", perr, err)
			}
		})
	}
}

func TestPlacementCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Placement(ctx, PlacementConfig{Agents: 1000, Lookups: 1000}); err != context.Canceled {
		t.Fatalf("Placement with a canceled context: %v, want context.Canceled", err)
	}
}

func TestWritePlacement(t *testing.T) {
	res, err := Placement(context.Background(), PlacementConfig{Agents: 5000, Lookups: 10_000})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := WritePlacement(&buf, res, true); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(buf.String(), "\n"); n != 1 {
		t.Fatalf("JSON output has %d lines, want 1: %q", n, buf.String())
	}
	var fields map[string]any
	if err := json.Unmarshal(buf.Bytes(), &fields); err != nil {
		t.Fatal(err)
	}
	// The fields DESIGN.md promises for `agentd bench placement --json`.
	for _, k := range []string{"consumers", "lookup_ns", "max_over_mean", "moved_fraction",
		"ideal_moved_fraction", "pcgroups_moved_fraction", "pcgroups_max_over_mean"} {
		if _, ok := fields[k].(float64); !ok {
			t.Errorf("JSON field %q missing or not a number: %v", k, fields[k])
		}
	}

	buf.Reset()
	if err := WritePlacement(&buf, res, false); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"a2abus", "pcgroups", "moved/ideal", "lookup agent → group → consumer at 100 consumers"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("table does not mention %q:\n%s", want, buf.String())
		}
	}
}

// TestPCGroupsOwners checks the reading of pcgroups' filters: every
// partition has one member, and the distribution is pcgroups' contiguous
// blocks over the sorted members.
func TestPCGroupsOwners(t *testing.T) {
	owners, err := pcgroupsOwners([]string{"b", "a", "c"}, 8)
	if err != nil {
		t.Fatal(err)
	}
	// 8 partitions over 3 members: blocks of 2 (a a b b c c), the remainder
	// 6 and 7 dealt from the start (a b).
	want := []string{"a", "a", "b", "b", "c", "c", "a", "b"}
	if strings.Join(owners, ",") != strings.Join(want, ",") {
		t.Errorf("pcgroupsOwners = %v, want %v", owners, want)
	}
}
