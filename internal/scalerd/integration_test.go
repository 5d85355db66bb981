package scalerd

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/a2abus/a2abus/agentbus"
	"github.com/a2abus/a2abus/codec"
	"github.com/a2abus/a2abus/embedded/embeddedtest"
	"github.com/a2abus/a2abus/internal/agentd"
)

// timeline records what the leading scalerd saw and decided, evaluation by
// evaluation.
type timeline struct {
	mu    sync.Mutex
	start time.Time
	evals []evalRecord
}

type evalRecord struct {
	since time.Duration // wall time since the burst started, for the log only
	st    PoolStatus
}

// add records the statuses of the agentds' pool.
func (tl *timeline) add(st PoolStatus) {
	if st.Pool != agentdPool {
		return
	}
	tl.mu.Lock()
	defer tl.mu.Unlock()
	since := time.Duration(0)
	if !tl.start.IsZero() {
		since = time.Since(tl.start)
	}
	tl.evals = append(tl.evals, evalRecord{since, st})
}

func (tl *timeline) snapshot() []evalRecord {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	return append([]evalRecord(nil), tl.evals...)
}

func (tl *timeline) markStart() int {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	tl.start = time.Now()
	return len(tl.evals)
}

// agentdPool is the pool of agentd's hosted agents (its --pool default).
const agentdPool = "agentd"

// TestBurstScalesUpAndDown is the scaler's end-to-end test: real agentd
// daemons hosting the demo agents are the consumers, two scalerds watch
// the bus. A burst of 50 000 messages makes the leading scalerd raise the
// desired count within two intervals of seeing the backlog, the agentds
// start the consumers, the backlog drains, and the count comes back down
// once the stabilization window has passed; stopping the leading scalerd
// hands over to the standby, which then writes the target.
//
// The burst goes to the demo agents echo and worker (the only agents an
// agentd --demo hosts, in pool agentd), with no conversation and no
// sender, so it fills two of the pool's partitions: the consumers beyond
// two have nothing to pull and the drain does not speed up. The test
// checks the control loop, not the speed-up, which the simulator
// measures. Batches of ten make the backlog 5 000 stored messages, far
// more than the one a partition's consumer holds in flight, so most of it
// waits.
func TestBurstScalesUpAndDown(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end: 50 000 messages through agentd daemons")
	}
	srv := embeddedtest.RunServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	// Two agentd hosts with the demo agents, one consumer each until a
	// target is set.
	for i := range 2 {
		cfg := agentd.DefaultConfig()
		cfg.NATS = srv.ClientURL()
		cfg.HTTP = "127.0.0.1:0"
		cfg.GRPC = "off"
		cfg.Demo = true
		cfg.DemoDelay = 0 // worker replies at once, like echo: the drain takes seconds
		cfg.Consumers = 1
		cfg.LogLevel = "warn"
		if err := cfg.Validate(); err != nil {
			t.Fatal(err)
		}
		d := agentd.NewDaemon(cfg, embeddedtest.Logger(t).With("agentd", i))
		if err := d.Start(ctx); err != nil {
			t.Fatalf("agentd %d: %v", i, err)
		}
		t.Cleanup(func() {
			sctx, scancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer scancel()
			if err := d.Shutdown(sctx); err != nil {
				t.Errorf("agentd %d shutdown: %v", i, err)
			}
		})
	}
	sender := newBus(t, srv, agentbus.WithBatch(10, 1<<20))

	const (
		interval = 300 * time.Millisecond
		upAt     = 500 // waiting stored messages that trigger a scale-up
		window   = 4 * time.Second
	)
	scalerCfg := func(id string) Config {
		cfg := testDaemonConfig(srv, id)
		cfg.Interval = interval
		cfg.Lease = 2 * time.Second
		p := &cfg.Policy
		p.MinConsumers, p.MaxConsumers = 1, 6
		p.ScaleUpBacklog, p.ScaleDownBacklog = upAt, 50
		// The consumers' CPU is this test process's, shared by the NATS
		// server, two agentds, two scalerds and the sender under the race
		// detector: it says nothing about one consumer's load. High CPU
		// thresholds leave the decisions to the backlog and the arrival
		// rate, and a given capacity (stored messages, batches of ten, per
		// second per consumer) sizes the steps.
		p.ScaleUpCPU, p.TargetCPU, p.ScaleDownCPU = 0.99, 0.98, 0.97
		p.ConsumerCapacity = 100
		p.Horizon = 30 * time.Second
		p.Lead = 4 * time.Second // member heartbeats are 2.5 s apart: a new consumer reports its CPU within 5 s
		p.DrainTime = 5 * time.Second
		p.ScaleUpCooldown, p.ScaleDownCooldown = time.Second, time.Second
		p.UpHold = 3 * time.Second
		p.StabilizationWindow = window
		return cfg
	}
	var tlA, tlB timeline
	newScalerd := func(id string, tl *timeline) *Daemon {
		d, err := NewDaemon(scalerCfg(id), embeddedtest.Logger(t).With("scalerd", id))
		if err != nil {
			t.Fatal(err)
		}
		d.onStatus = tl.add
		if err := d.Start(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = d.Shutdown(context.Background()) })
		return d
	}
	a := newScalerd("scalerd-a", &tlA)
	waitFor(t, 30*time.Second, "scalerd-a leads", a.Leader)
	b := newScalerd("scalerd-b", &tlB)

	target := func() (agentbus.ScaleTarget, bool) {
		tgt, ok, err := sender.ScaleTarget(ctx, agentdPool)
		if err != nil {
			t.Fatal(err)
		}
		return tgt, ok
	}
	dump := func() {
		evals := tlA.snapshot()
		for _, e := range evals[max(len(evals)-15, 0):] {
			t.Logf("scalerd-a: %v %+v", e.since, e.st)
		}
	}
	defer func() {
		if t.Failed() {
			dump()
		}
	}()
	// Idle, the pool settles at the minimum: one consumer, ready.
	waitFor(t, 60*time.Second, "the idle pool settles at one ready consumer", func() bool {
		st, ok := a.PoolStatus(agentdPool)
		tgt, has := target()
		return ok && has && tgt.Consumers == 1 && st.Live == 1 && st.Ready == 1 && st.Backlog == 0
	})
	if b.Leader() {
		t.Fatal("both scalerds lead")
	}
	// ... and its last step is past the scale-up cooldown (on the scaler's
	// clock), so that the burst's first decision may step.
	waitFor(t, 30*time.Second, "the last step is past the scale-up cooldown", func() bool {
		st, _ := a.PoolStatus(agentdPool)
		tgt, _ := target()
		return st.At.Sub(tgt.At) > scalerCfg("").Policy.ScaleUpCooldown
	})

	// The burst.
	first := tlA.markStart()
	tlB.markStart()
	burstStart := time.Now()
	sent := make(chan error, 1)
	go func() {
		var last *agentbus.Ticket
		for i := range 50_000 {
			to := "worker"
			if i%2 == 1 {
				to = "echo"
			}
			tk, err := sender.SendAsync(ctx, &codec.Envelope{Kind: "message", To: to, Message: &codec.Message{
				MessageID: fmt.Sprintf("burst-%d", i), Role: codec.RoleUser, Parts: []codec.Part{codec.TextPart("job")},
			}})
			if err != nil {
				sent <- err
				return
			}
			last = tk
		}
		if err := sender.Flush(ctx); err != nil {
			sent <- err
			return
		}
		sent <- last.Wait(ctx)
	}()

	// Up: the first evaluation that sees the backlog over the threshold,
	// or the next one, steps up.
	waitFor(t, 60*time.Second, "scalerd-a sees the backlog", func() bool {
		for _, e := range tlA.snapshot()[first:] {
			if e.st.Waiting > upAt {
				return true
			}
		}
		return false
	})
	waitFor(t, 30*time.Second, "the target rises", func() bool {
		tgt, _ := target()
		return tgt.Consumers > 1
	})
	evals := tlA.snapshot()[first:]
	seen, rose := -1, -1
	for i, e := range evals {
		if seen < 0 && e.st.Waiting > upAt {
			seen = i
		}
		if rose < 0 && e.st.Leader && e.st.DesiredConsumers > e.st.Consumers {
			rose = i
		}
	}
	if rose < 0 || seen < 0 || rose > seen+1 {
		for _, e := range evals {
			t.Logf("%v %+v", e.since, e.st)
		}
		t.Fatalf("backlog seen at evaluation %d, first scale-up at %d: want it within two intervals", seen, rose)
	}
	riseAt := evals[rose].since
	t.Logf("burst: backlog over %d seen %v after the burst began (evaluation %d: %s), target raised at evaluation %d (%v): %s",
		upAt, evals[seen].since.Round(time.Millisecond), seen, evals[seen].st.Reason, rose, riseAt.Round(time.Millisecond), evals[rose].st.Reason)

	// The consumers follow, the backlog drains, and the count comes back
	// down to the minimum.
	if err := <-sent; err != nil {
		t.Fatalf("burst: %v", err)
	}
	sentIn := time.Since(burstStart)
	peakLive := 0
	waitFor(t, 90*time.Second, "the backlog drains", func() bool {
		st, _ := a.PoolStatus(agentdPool)
		peakLive = max(peakLive, st.Live)
		return st.Backlog == 0 && st.HandledRate == 0
	})
	drainedIn := time.Since(burstStart)
	waitFor(t, 60*time.Second, "the target comes back down to one consumer", func() bool {
		st, _ := a.PoolStatus(agentdPool)
		peakLive = max(peakLive, st.Live)
		tgt, _ := target()
		return tgt.Consumers == 1
	})
	downIn := time.Since(burstStart)
	waitFor(t, 30*time.Second, "the consumers follow the target down", func() bool {
		st, _ := a.PoolStatus(agentdPool)
		return st.Live == 1
	})

	evals = tlA.snapshot()[first:]
	peak, lastUp, down := 0, -1, -1
	for i, e := range evals {
		peak = max(peak, e.st.DesiredConsumers)
		if e.st.DesiredConsumers > e.st.Consumers {
			lastUp = i
		}
		if down < 0 && lastUp >= 0 && i > lastUp && e.st.DesiredConsumers == 1 && e.st.Consumers > 1 {
			down = i
		}
	}
	for _, e := range evals {
		if e.st.DesiredConsumers != e.st.Consumers {
			t.Logf("step at %v: %s (backlog %d, waiting %d, live %d)", e.since.Round(time.Millisecond), e.st.Reason, e.st.Backlog, e.st.Waiting, e.st.Live)
		}
	}
	if peakLive < 3 {
		t.Errorf("at most %d live consumers during the burst: the agentds did not follow the target (peak %d)", peakLive, peak)
	}
	if down < 0 {
		for _, e := range evals {
			t.Logf("%v %+v", e.since, e.st)
		}
		t.Fatal("no scale-down to one consumer after the last scale-up")
	}
	// On the scaler's own clock (the snapshots' times), the step down to the
	// minimum comes a whole stabilization window after the last step up.
	if gap := evals[down].st.At.Sub(evals[lastUp].st.At); gap < window {
		t.Errorf("scaled down %v after the last scale-up, inside the %v stabilization window: %s", gap, window, evals[down].st.Reason)
	}
	t.Logf("burst: sent in %v, peak desired %d, peak live %d, drained %v after the burst began, last up at %v, back to 1 at %v (target seen at %v): %s",
		sentIn.Round(time.Millisecond), peak, peakLive, drainedIn.Round(time.Millisecond), evals[lastUp].since.Round(time.Millisecond),
		evals[down].since.Round(time.Millisecond), downIn.Round(time.Millisecond), evals[down].st.Reason)

	// Hand-over: the leader stops; the standby leads at once and, once the
	// unchanged target is due a refresh, writes it.
	if err := a.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	waitFor(t, 10*time.Second, "scalerd-b takes over", b.Leader)
	tookOver := time.Since(stopped)
	waitFor(t, 30*time.Second, "scalerd-b writes the target", func() bool {
		tgt, _ := target()
		return tgt.By == "scalerd-b" && tgt.Consumers == 1
	})
	t.Logf("hand-over: scalerd-b led %v after scalerd-a stopped and refreshed the target %v after", tookOver.Round(time.Millisecond), time.Since(stopped).Round(time.Millisecond))
}
