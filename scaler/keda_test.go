package scaler

import (
	"strings"
	"testing"
	"time"
)

func newKEDA(t *testing.T, mutate func(*KEDAConfig)) *KEDA {
	t.Helper()
	c := DefaultKEDAConfig()
	if mutate != nil {
		mutate(&c)
	}
	k, err := NewKEDA(c)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestKEDA(t *testing.T) {
	tests := []struct {
		name       string
		mutate     func(*KEDAConfig)
		cur        int
		lag        int64
		wantTo     int
		wantReason string
	}{
		{name: "ceil of lag over threshold", cur: 5, lag: 48, wantTo: 8, wantReason: "lag 48 / threshold 6 → 8 replicas: 5 → 8"},
		{name: "inside the tolerance", cur: 10, lag: 63, wantTo: 10, wantReason: "hold at 10"},
		{name: "just outside the tolerance", cur: 10, lag: 67, wantTo: 12, wantReason: "10 → 12"},
		{name: "rate limit doubles", cur: 10, lag: 6000, wantTo: 20, wantReason: "rate-limited: 10 → 20"},
		{name: "rate limit adds four to small counts", cur: 2, lag: 6000, wantTo: 6, wantReason: "rate-limited: 2 → 6"},
		{name: "maximum", cur: 40, lag: 60000, wantTo: 50, wantReason: "→ 50 replicas: 40 → 50"},
		{name: "minimum", mutate: func(c *KEDAConfig) { c.MinReplicas = 3; c.StabilizationWindow = 0 }, cur: 3, lag: 0, wantTo: 3, wantReason: "→ 3 replicas: hold at 3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := newKEDA(t, tt.mutate)
			d := k.Decide(Snapshot{Time: at(15), Backlog: tt.lag, Consumers: tt.cur, Ready: tt.cur})
			if d.To != tt.wantTo || !strings.Contains(d.Reason, tt.wantReason) {
				t.Errorf("Decide() = %d %q, want %d %q", d.To, d.Reason, tt.wantTo, tt.wantReason)
			}
		})
	}
}

func TestKEDAStabilization(t *testing.T) {
	k := newKEDA(t, nil)
	// Up to 20 on a lag of 120, then the lag falls to 12 (2 replicas).
	d := k.Decide(Snapshot{Time: at(0), Backlog: 120, Consumers: 10})
	if d.To != 20 {
		t.Fatalf("first: %d %q", d.To, d.Reason)
	}
	for sec := 15; sec <= 300; sec += 15 {
		d = k.Decide(Snapshot{Time: at(sec), Backlog: 12, Consumers: 20})
		if d.To != 20 || !strings.Contains(d.Reason, "stabilization window") {
			t.Fatalf("at %ds: %d %q", sec, d.To, d.Reason)
		}
	}
	d = k.Decide(Snapshot{Time: at(315), Backlog: 12, Consumers: 20})
	if d.To != 2 {
		t.Fatalf("after the window: %d %q", d.To, d.Reason)
	}
	// The window holds the largest recommendation, not the last.
	k = newKEDA(t, func(c *KEDAConfig) { c.StabilizationWindow = time.Minute })
	k.Decide(Snapshot{Time: at(0), Backlog: 60, Consumers: 10})
	k.Decide(Snapshot{Time: at(15), Backlog: 48, Consumers: 10})
	k.Decide(Snapshot{Time: at(30), Backlog: 30, Consumers: 10})
	if d := k.Decide(Snapshot{Time: at(70), Backlog: 6, Consumers: 10}); d.To != 8 {
		t.Fatalf("window max: %d %q, want 8", d.To, d.Reason)
	}
}
