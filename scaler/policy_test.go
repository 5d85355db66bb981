package scaler

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

// testConfig is DefaultConfig with a known consumer capacity of 100 msgs/s,
// so that expected counts are easy to work out.
func testConfig() Config {
	c := DefaultConfig()
	c.ConsumerCapacity = 100
	return c
}

// snap is a snapshot at second sec of n ready consumers of 100 msgs/s under
// arrival msgs/s, with CPU following from the load.
func snap(sec, n int, arrival float64, backlog int64) Snapshot {
	cpu := 0.0
	if n > 0 {
		cpu = min(arrival/(100*float64(n)), 1)
	}
	return Snapshot{Time: at(sec), Backlog: backlog, ArrivalRate: arrival,
		HandledRate: cpu * 100 * float64(n), CPU: cpu, Consumers: n, Ready: n}
}

func newPolicy(t *testing.T, c Config) *Policy {
	t.Helper()
	p, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPolicyThresholds(t *testing.T) {
	tests := []struct {
		name        string
		mutate      func(*Config)
		s           Snapshot
		wantTo      int
		wantReason  string
		wantTrigger Trigger
	}{
		{name: "cpu just above 70% once waits", s: snap(15, 10, 750, 0), wantTo: 10, wantReason: "cpu 75% > 70% once, backlog 0: hold at 10 consumers until a second reading", wantTrigger: TriggerCPU},
		{name: "cpu above 70% twice steps to the load at 60%", s: snap(15, 10, 750, 0), wantTo: 13, wantReason: "cpu 75% > 70%: 10 → 13 consumers", wantTrigger: TriggerCPU},
		{name: "cpu far above 70% steps at once", s: snap(15, 10, 900, 0), wantTo: 15, wantReason: "cpu 90% > 70%: 10 → 15 consumers", wantTrigger: TriggerCPU},
		{name: "cpu above 70% with messages waiting steps to the load at 60%", s: snap(15, 10, 900, 100), wantTo: 16, wantReason: "cpu 90% > 70%: 10 → 16 consumers", wantTrigger: TriggerCPU},
		{name: "cpu at 70% holds", s: snap(15, 10, 700, 0), wantTo: 10, wantReason: "hold at 10", wantTrigger: TriggerNone},
		{name: "backlog above 1000 adds drain consumers", s: snap(15, 3, 150, 5400), wantTo: 5, wantReason: "backlog 5400 > 1000: 3 → 5 consumers", wantTrigger: TriggerBacklog},
		{name: "backlog at 1000 holds", s: snap(15, 3, 150, 1000), wantTo: 3, wantReason: "backlog 1000, ", wantTrigger: TriggerNone},
		{name: "messages in flight are not waiting", s: func() Snapshot {
			s := snap(15, 3, 150, 5400)
			s.InFlight = 5000
			return s
		}(), wantTo: 3, wantReason: "backlog 400, ", wantTrigger: TriggerNone},
		{name: "maximum caps a step", s: snap(15, 40, 4000, 0), wantTo: 50, wantReason: "40 → 50 consumers", wantTrigger: TriggerCPU},
		{name: "at maximum holds", s: snap(15, 50, 5000, 90000), wantTo: 50, wantReason: "hold at maximum 50", wantTrigger: TriggerCPU},
		{name: "below minimum", mutate: func(c *Config) { c.MinConsumers = 3 }, s: snap(15, 1, 10, 0), wantTo: 3, wantReason: "1 consumers < minimum 3: 1 → 3 consumers", wantTrigger: TriggerBounds},
		{name: "above maximum", s: snap(15, 60, 10, 0), wantTo: 50, wantReason: "60 consumers > maximum 50: 60 → 50 consumers", wantTrigger: TriggerBounds},
		{name: "starting consumers count", s: func() Snapshot {
			s := snap(15, 6, 540, 0) // 6 ready at 90%, 4 more starting
			s.Consumers = 10
			return s
		}(), wantTo: 10, wantReason: "4 still starting", wantTrigger: TriggerCPU},
		{name: "no consumers and arrivals", mutate: func(c *Config) { c.MinConsumers = 0 }, s: Snapshot{Time: at(15), ArrivalRate: 50}, wantTo: 2, wantReason: "with no consumers: 0 → 2 consumers", wantTrigger: TriggerNoConsumers},
		{name: "unknown capacity steps on cpu alone", mutate: func(c *Config) { c.ConsumerCapacity = 0 }, s: Snapshot{Time: at(15), CPU: 0.9, Consumers: 10, Ready: 10}, wantTo: 15, wantReason: "cpu 90% > 70%: 10 → 15", wantTrigger: TriggerCPU},
		{name: "unknown capacity doubles on backlog", mutate: func(c *Config) { c.ConsumerCapacity = 0 }, s: Snapshot{Time: at(15), CPU: 0.5, Backlog: 5000, Consumers: 4, Ready: 4}, wantTo: 8, wantReason: "backlog 5000 > 1000: 4 → 8", wantTrigger: TriggerBacklog},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := testConfig()
			if tt.mutate != nil {
				tt.mutate(&c)
			}
			p := newPolicy(t, c)
			if strings.Contains(tt.name, "twice") {
				prev := tt.s // a first hot reading
				prev.Time = at(0)
				p.Decide(prev)
			}
			d := p.Decide(tt.s)
			if d.To != tt.wantTo || !strings.Contains(d.Reason, tt.wantReason) {
				t.Errorf("Decide() = %d, %q; want %d, %q", d.To, d.Reason, tt.wantTo, tt.wantReason)
			}
			if d.Trigger != tt.wantTrigger || !slices.Contains(Triggers(), d.Trigger) {
				t.Errorf("Decide() trigger %q, want %q", d.Trigger, tt.wantTrigger)
			}
			if d.From != tt.s.Consumers || !d.Time.Equal(tt.s.Time) {
				t.Errorf("Decision From %d Time %v, want %d %v", d.From, d.Time, tt.s.Consumers, tt.s.Time)
			}
		})
	}
}

func TestPolicyStepIsProportional(t *testing.T) {
	// With the capacity learned from CPU and handled rate, a CPU step is
	// ceil(current × cpu / target), as the HPA's.
	tests := []struct {
		n      int
		cpu    float64
		wantTo int
	}{
		{4, 0.75, 5}, {10, 0.75, 13}, {10, 0.9, 15}, {10, 1.0, 17}, {20, 0.8, 27}, {3, 0.72, 4},
	}
	for _, tt := range tests {
		c := DefaultConfig() // capacity learned
		p := newPolicy(t, c)
		s := Snapshot{Time: at(0), CPU: tt.cpu, Consumers: tt.n, Ready: tt.n,
			HandledRate: tt.cpu * 100 * float64(tt.n), ArrivalRate: tt.cpu * 100 * float64(tt.n)}
		p.Decide(s) // the first hot reading
		s.Time = at(15)
		if d := p.Decide(s); d.To != tt.wantTo {
			t.Errorf("%d consumers at %.0f%%: To %d, want %d (%s)", tt.n, tt.cpu*100, d.To, tt.wantTo, d.Reason)
		}
	}
}

// drive feeds p a snapshot every 15 s from second from to second to, with n
// following the decisions, and returns the decisions and the final n.
func drive(p *Policy, from, to, n int, arrival func(sec int) float64, backlog func(sec int) int64) ([]Decision, int) {
	var out []Decision
	for sec := from; sec <= to; sec += 15 {
		var b int64
		if backlog != nil {
			b = backlog(sec)
		}
		d := p.Decide(snap(sec, n, arrival(sec), b))
		out = append(out, d)
		n = d.To
	}
	return out, n
}

func TestPolicyPredictionScalesUpBeforeCPU(t *testing.T) {
	p := newPolicy(t, testConfig())
	ramp := func(sec int) float64 { return 600 + 1.5*float64(sec) }
	ds, _ := drive(p, 15, 1200, 20, ramp, nil)
	for _, d := range ds {
		if d.Delta() == 0 {
			continue
		}
		if !strings.Contains(d.Reason, "predicted 5m0s growth") || strings.Contains(d.Reason, "cpu") {
			t.Fatalf("first step at %v: %q, want one on the prediction alone", d.Time.Sub(t0), d.Reason)
		}
		if d.Delta() < 0 || d.Forecast.Confidence < testConfig().MinConfidence {
			t.Fatalf("first step %+v", d)
		}
		return
	}
	t.Fatal("no step on a steady ramp")
}

func TestPolicyNoiseAloneDoesNotAct(t *testing.T) {
	// 5% noise on 15-s means is what 20% noise on each second gives.
	for seed := range uint64(6) {
		p := newPolicy(t, testConfig())
		rng := rand.New(rand.NewPCG(seed, 3))
		noisy := func(int) float64 { return 1000 * (1 + 0.05*rng.NormFloat64()) }
		ds, n := drive(p, 15, 4*3600, 17, noisy, nil) // 17 run 1000 msgs/s at 59%
		for _, d := range ds {
			if d.Delta() != 0 || strings.Contains(d.Reason, "confidence") {
				t.Fatalf("seed %d: at %v on noise: %s", seed, d.Time.Sub(t0), d.Reason)
			}
		}
		if n != 17 {
			t.Fatalf("seed %d: ended at %d consumers", seed, n)
		}
	}
}

func TestPolicyScaleDownGuards(t *testing.T) {
	tests := []struct {
		name     string
		mutate   func(*Config)
		arrival  func(sec int) float64
		backlog  func(sec int) int64
		wantDown bool
		want     string
	}{
		{name: "all agree", arrival: func(int) float64 { return 400 }, wantDown: true, want: "cpu 20% < 50%, backlog 0 < 100, predicted 5m0s growth -67% < -20%: 20 → 7 consumers"},
		{name: "cpu not low enough", mutate: func(c *Config) { c.ScaleDownCPU = 0.3 }, arrival: func(int) float64 { return 700 }, want: "cpu 35%, backlog 0"},
		{name: "backlog not low enough", arrival: func(int) float64 { return 400 }, backlog: func(int) int64 { return 150 }, want: "cpu 20%, backlog 150"},
		{name: "forecast rising", arrival: func(sec int) float64 { return 200 + 2*float64(sec) }, want: "hold at 20"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := testConfig()
			if tt.mutate != nil {
				tt.mutate(&c)
			}
			p := newPolicy(t, c)
			ds, _ := drive(p, 15, 450, 20, tt.arrival, tt.backlog)
			var down *Decision
			for i, d := range ds {
				if d.Delta() > 0 {
					t.Fatalf("scale-up at %v: %s", d.Time.Sub(t0), d.Reason)
				}
				if d.Delta() < 0 && down == nil {
					down = &ds[i]
				}
			}
			switch {
			case tt.wantDown && down == nil:
				t.Fatalf("no scale-down; last: %s", ds[len(ds)-1].Reason)
			case tt.wantDown && !strings.Contains(down.Reason, tt.want):
				t.Errorf("scale-down %q, want %q", down.Reason, tt.want)
			case !tt.wantDown && down != nil:
				t.Fatalf("scale-down at %v: %s", down.Time.Sub(t0), down.Reason)
			case !tt.wantDown && !strings.Contains(ds[len(ds)-1].Reason, tt.want):
				t.Errorf("last reason %q, want %q", ds[len(ds)-1].Reason, tt.want)
			}
		})
	}
}

func TestPolicyStabilizationWindow(t *testing.T) {
	c := testConfig()
	p := newPolicy(t, c)
	// Steady at 5 consumers (60%), then a surge, then back.
	load := func(sec int) float64 {
		if sec >= 300 && sec < 330 {
			return 1100
		}
		return 300
	}
	ds, _ := drive(p, 15, 900, 5, load, nil)
	var upAt, downAt time.Duration
	for _, d := range ds {
		switch {
		case d.Delta() > 0 && upAt == 0:
			upAt = d.Time.Sub(t0)
		case d.Delta() < 0 && downAt == 0:
			downAt = d.Time.Sub(t0)
		}
		if upAt > 0 && downAt == 0 && d.Delta() == 0 && d.Time.Sub(t0) > upAt+c.ScaleDownCooldown &&
			d.Time.Sub(t0) < upAt+c.StabilizationWindow && !strings.Contains(d.Reason, "stabilization window wants") {
			t.Errorf("at %v inside the window: %q", d.Time.Sub(t0), d.Reason)
		}
	}
	if upAt == 0 || downAt == 0 {
		t.Fatalf("up at %v, down at %v: want both", upAt, downAt)
	}
	if downAt-upAt < c.StabilizationWindow {
		t.Errorf("scale-down %v after the scale-up, inside the %v window", downAt-upAt, c.StabilizationWindow)
	}
}

func TestPolicyCooldowns(t *testing.T) {
	t.Run("up", func(t *testing.T) {
		c := testConfig()
		c.ScaleUpCooldown = time.Minute
		p := newPolicy(t, c)
		d := p.Decide(snap(15, 10, 900, 0))
		if d.To != 15 {
			t.Fatalf("first step %s", d.Reason)
		}
		d = p.Decide(snap(30, 15, 1500, 0))
		if d.To != 15 || !strings.Contains(d.Reason, "scale-up cooldown (45s left)") {
			t.Fatalf("inside the cooldown: %d %q", d.To, d.Reason)
		}
		d = p.Decide(snap(75, 15, 1500, 0))
		if d.To <= 15 {
			t.Fatalf("after the cooldown: %d %q", d.To, d.Reason)
		}
	})
	t.Run("down", func(t *testing.T) {
		c := testConfig()
		c.StabilizationWindow = 0
		c.ScaleDownCooldown = 2 * time.Minute
		p := newPolicy(t, c)
		p.Decide(snap(0, 20, 400, 0)) // the first snapshot only counts as a recommendation
		d := p.Decide(snap(15, 20, 400, 0))
		if d.To != 7 {
			t.Fatalf("first step %d %q", d.To, d.Reason)
		}
		d = p.Decide(snap(30, 7, 100, 0))
		if d.To != 7 || !strings.Contains(d.Reason, "scale-down cooldown (1m45s left)") {
			t.Fatalf("inside the cooldown: %d %q", d.To, d.Reason)
		}
		d = p.Decide(snap(135, 7, 100, 0))
		if d.To != 2 {
			t.Fatalf("after the cooldown: %d %q", d.To, d.Reason)
		}
	})
}

func TestPolicyReleasesDrainConsumers(t *testing.T) {
	c := testConfig()
	c.ScaleDownCPU = 0.3 // the drain consumers go even though CPU stays above it
	p := newPolicy(t, c)
	// 20 consumers carry 1100 msgs/s at 55%, long enough for the window to
	// forget the count the policy started at.
	drive(p, 0, 240, 20, func(int) float64 { return 1100 }, nil)
	// Then a backlog of 30 000.
	d := p.Decide(snap(255, 20, 1100, 30000))
	if d.To <= 20 || !strings.Contains(d.Reason, "backlog 30000 > 1000") {
		t.Fatalf("first step %d %q", d.To, d.Reason)
	}
	up, n := d.Time, d.To
	// Drained: the load alone needs 19 at 60%, and CPU is above 30%.
	for sec := 270; sec < 600; sec += 15 {
		d = p.Decide(snap(sec, n, 1100, 0))
		if d.Delta() != 0 {
			break
		}
	}
	if d.Delta() >= 0 || !strings.Contains(d.Reason, "backlog drained") || d.To != 19 {
		t.Fatalf("after the drain: %d → %d %q", d.From, d.To, d.Reason)
	}
	// The release does not wait for UpHold: those consumers were only
	// for the backlog.
	if d.Time.Sub(up) >= c.UpHold {
		t.Errorf("released %v after the scale-up", d.Time.Sub(up))
	}
}

func TestPolicyNoFlappingOnNoisyFlat(t *testing.T) {
	for _, spec := range []TraceSpec{
		{Shape: "noisy-flat", Seconds: 3600, Base: 1000, Noise: 0.2, Seed: 5},
		{Shape: "noisy-flat", Seconds: 3600, Base: 300, Noise: 0.4, Seed: 31},
		{Shape: "noisy-flat", Seconds: 7200, Base: 2000, Noise: 0.3, Seed: 32},
		{Shape: "noisy-flat", Seconds: 3600, Base: 60, Noise: 0.5, Seed: 33},
	} {
		tr, err := spec.Generate()
		if err != nil {
			t.Fatal(err)
		}
		res, err := Simulate(tr, "a2abus", newPolicy(t, DefaultConfig()), DefaultModel())
		if err != nil {
			t.Fatal(err)
		}
		if res.ReversalsInWindow != 0 || res.ScaleEvents > 4 {
			t.Errorf("%+v: %d scale events, %d reversals in the window", spec, res.ScaleEvents, res.ReversalsInWindow)
			for _, d := range res.Steps {
				t.Log(d.Time.Sub(simEpoch), d.Reason)
			}
		}
	}
}

func TestPolicyUpHold(t *testing.T) {
	c := testConfig()
	p := newPolicy(t, c)
	load := func(sec int) float64 {
		if sec < 60 {
			return 900 // 15 consumers' worth at 60%
		}
		return 100
	}
	ds, _ := drive(p, 15, 900, 10, load, nil)
	var up, down time.Time
	held := false
	for _, d := range ds {
		if d.Delta() > 0 && up.IsZero() {
			up = d.Time
		}
		if d.Delta() < 0 && down.IsZero() {
			down = d.Time
		}
		held = held || strings.Contains(d.Reason, "the last scale-up holds")
	}
	if !held {
		t.Error("no decision held for the last scale-up")
	}
	if up.IsZero() || down.IsZero() || down.Sub(up) < c.UpHold {
		t.Fatalf("up at %v, down at %v: want the scale-up to stand %v", up.Sub(t0), down.Sub(t0), c.UpHold)
	}
}
