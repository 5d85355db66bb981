package scalerd

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/a2abus/a2abus/agentbus"
	"github.com/a2abus/a2abus/codec"
	"github.com/a2abus/a2abus/embedded"
	"github.com/a2abus/a2abus/embedded/embeddedtest"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestPoolsScaleApart runs one scalerd over four pools: "busy" with 3000
// stored messages waiting and "quiet" with 200, both with partition
// consumers and no members; "served" with one live member and nothing
// waiting; and "unseen", declared, with 50 messages waiting, but no
// consumers and no members. Each pool that reported is decided from its
// own backlog and members: busy steps to the count that drains its
// backlog, quiet to the minimum, served holds at its one member. unseen
// is left alone (no target, no status, no metrics) until a member of it
// starts; "idle", with partition consumers but no members and nothing
// waiting (its hosts still starting), reports but gets no target; a pool
// whose consumers are gone is forgotten.
func TestPoolsScaleApart(t *testing.T) {
	srv := embeddedtest.RunServer(t)
	bus := newBus(t, srv, agentbus.WithBatch(1, 1<<20))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	for _, p := range []struct {
		pool, agent string
		n           int
	}{{"busy", "busy-agent", 3000}, {"quiet", "quiet-agent", 200}, {"unseen", "unseen-agent", 50}} {
		if _, err := bus.Declare(ctx, agentbus.PoolConfig{Name: p.pool, Partitions: 4}, p.agent); err != nil {
			t.Fatal(err)
		}
		send(t, bus, p.agent, p.n)
	}
	// The consumers appear after the messages: their backlog is waiting,
	// with no arrival rate to size for.
	reportPool(t, bus, "busy", "busy-agent", 4)
	reportPool(t, bus, "quiet", "quiet-agent", 4)
	reportPool(t, bus, "idle", "idle-agent", 4)
	stopServed := serveMember(t, srv, "served", "served-agent")
	defer stopServed()

	cfg := testDaemonConfig(srv, "scalerd-pools")
	p := &cfg.Policy
	p.MinConsumers, p.MaxConsumers = 1, 10
	// A given capacity (100 stored messages per second per consumer) and
	// a drain time of 5 s size busy's step: 3000 waiting / 5 s / 100 = 6.
	p.ConsumerCapacity, p.DrainTime = 100, 5*time.Second
	p.ScaleUpCooldown = 0
	// The target's consumers count as starting for the whole test: no
	// member ever joins busy or quiet.
	p.Lead = time.Minute
	d := startDaemon(t, cfg)

	target := func(pool string) (int, bool) {
		t.Helper()
		tgt, ok, err := bus.ScaleTarget(ctx, pool)
		if err != nil {
			t.Fatal(err)
		}
		return tgt.Consumers, ok
	}
	waitFor(t, 30*time.Second, "busy's target 6, quiet's 1, served's member seen", func() bool {
		b, _ := target("busy")
		q, _ := target("quiet")
		st, ok := d.PoolStatus("served")
		return b == 6 && q == 1 && ok && st.Live == 1
	})
	for range 5 { // several more evaluations: nothing moves, unseen stays alone
		time.Sleep(cfg.Interval)
	}
	if n, ok := target("busy"); n != 6 || !ok {
		t.Errorf("busy's target %d %v, want 6", n, ok)
	}
	if n, ok := target("quiet"); n != 1 || !ok {
		t.Errorf("quiet's target %d %v, want 1", n, ok)
	}
	if n, ok := target("served"); ok {
		t.Errorf("served holds at its one member, yet its target was set to %d", n)
	}
	if n, ok := target("unseen"); ok {
		t.Errorf("unseen has not reported, yet its target was set to %d", n)
	}
	if n, ok := target("idle"); ok {
		t.Errorf("idle has no members and nothing waiting, yet its target was set to %d", n)
	}
	if idle, ok := d.PoolStatus("idle"); !ok || !strings.Contains(idle.Reason, "no member has reported") {
		t.Errorf("idle's status %+v, want it reported without a decision", idle)
	}
	busy, _ := d.PoolStatus("busy")
	quiet, _ := d.PoolStatus("quiet")
	served, _ := d.PoolStatus("served")
	if busy.Backlog != 3000 || busy.Waiting != 3000 || busy.Live != 0 || busy.DesiredConsumers != 6 || busy.Consumers != 6 {
		t.Errorf("busy %+v", busy)
	}
	if quiet.Backlog != 200 || quiet.Live != 0 || quiet.DesiredConsumers != 1 {
		t.Errorf("quiet %+v", quiet)
	}
	if served.Backlog != 0 || served.Live != 1 || served.DesiredConsumers != 1 || served.Target != nil {
		t.Errorf("served %+v", served)
	}
	st, _ := d.Status()
	if _, ok := st.Pools["unseen"]; ok || len(st.Pools) != 4 {
		t.Errorf("pools %v, want busy, quiet, idle and served only", st.Pools)
	}
	if code, _ := get(t, d, "/scale/unseen"); code != 404 {
		t.Errorf("/scale/unseen %d, want 404", code)
	}
	_, body := get(t, d, "/metrics")
	for _, want := range []string{`a2abus_scaler_target_consumers{pool="busy"} 6`, `a2abus_scaler_target_consumers{pool="quiet"} 1`,
		`a2abus_scaler_target_consumers{pool="served"} -1`, `a2abus_scaler_backlog_waiting_messages{pool="busy"} 3000`,
		`a2abus_scaler_desired_consumers{pool="busy"} 6`, "a2abus_scaler_pools 4"} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics has no %s", want)
		}
	}
	if strings.Contains(body, `pool="unseen"`) {
		t.Error("/metrics has series of the unseen pool")
	}
	if n := testutil.ToFloat64(d.m.writes.WithLabelValues("busy")); n < 2 {
		t.Errorf("%v writes for busy, want at least 2 (1, then 6)", n)
	}

	// A member of unseen starts: it reports, and is decided for.
	stopUnseen := serveMember(t, srv, "unseen", "unseen-agent")
	defer stopUnseen()
	waitFor(t, 30*time.Second, "unseen reports", func() bool {
		st, ok := d.PoolStatus("unseen")
		return ok && st.Live == 1
	})

	// quiet's consumers are deleted (and it has no members): it is
	// forgotten, its series with it.
	js, _ := jetstream.New(bus.Conn())
	for _, name := range []string{"quiet_p0000", "quiet_p0001", "quiet_p0002", "quiet_p0003"} {
		if err := js.DeleteConsumer(ctx, agentbus.StreamName, name); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 30*time.Second, "quiet is forgotten", func() bool {
		_, ok := d.PoolStatus("quiet")
		return !ok
	})
	if _, body := get(t, d, "/metrics"); strings.Contains(body, `pool="quiet"`) {
		t.Error("/metrics keeps series of the forgotten pool")
	}
}

// serveMember runs a member of pool on its own bus, whose one agent's
// handler does nothing; stop stops it.
func serveMember(t *testing.T, srv *embedded.Server, pool, agent string) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	bus, err := agentbus.Connect(ctx, agentbus.WithURL(srv.ClientURL()), agentbus.WithLogger(embeddedtest.Logger(t)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bus.Close(context.Background()) })
	if err := bus.Handle(agent, func(context.Context, *codec.Envelope) error { return nil }); err != nil {
		t.Fatal(err)
	}
	sctx, stopServe := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- bus.Serve(sctx, agentbus.ServePool(pool), agentbus.ServePartitions(4), agentbus.ServeMemberTTL(time.Second))
	}()
	stopped := false
	return func() {
		if stopped {
			return
		}
		stopped = true
		stopServe()
		if err := <-done; err != nil {
			t.Errorf("serve %s: %v", pool, err)
		}
	}
}
