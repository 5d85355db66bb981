package scalerd

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/a2abus/a2abus/agentbus"
	"github.com/a2abus/a2abus/embedded/embeddedtest"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// leaderKeyValue reads the leader key: the ID holding it, or "" when none
// does.
func leaderKeyValue(t *testing.T, bus *agentbus.Bus) string {
	t.Helper()
	js, err := jetstream.New(bus.Conn())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	kv, err := js.KeyValue(ctx, LeaderBucket)
	if err != nil {
		return ""
	}
	e, err := kv.Get(ctx, leaderKey)
	if err != nil {
		return ""
	}
	var v leaderValue
	if err := json.Unmarshal(e.Value(), &v); err != nil {
		t.Fatal(err)
	}
	return v.ID
}

// TestLeaderHandOver: of two scalerds one leads; stopping it hands over to
// the other at once (it resigns), and a leader that dies without resigning
// is replaced once its lease ends.
func TestLeaderHandOver(t *testing.T) {
	srv := embeddedtest.RunServer(t)
	bus := newBus(t, srv)

	cfgA := testDaemonConfig(srv, "scalerd-a")
	cfgA.Lease = time.Hour // a resignation must hand over long before the lease would end
	a := startDaemon(t, cfgA)
	waitFor(t, 30*time.Second, "scalerd-a leads", a.Leader)
	cfgB := testDaemonConfig(srv, "scalerd-b")
	cfgB.Lease = time.Hour
	b := startDaemon(t, cfgB)
	waitFor(t, 30*time.Second, "scalerd-b samples", func() bool { _, ok := b.Status(); return ok })
	for range 5 { // several of b's intervals and campaigns
		time.Sleep(cfgB.Interval)
		if b.Leader() || !a.Leader() {
			t.Fatalf("a leads %v, b leads %v: want only a", a.Leader(), b.Leader())
		}
	}
	if st, _ := b.Status(); st.Leader {
		t.Errorf("standby reports %+v", st)
	}
	if id := leaderKeyValue(t, bus); id != "scalerd-a" {
		t.Errorf("leader key holds %q", id)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "scalerd-b takes over from the resigned scalerd-a (the lease is an hour)", b.Leader)
	if id := leaderKeyValue(t, bus); id != "scalerd-b" {
		t.Errorf("leader key holds %q", id)
	}
	if err := a.Shutdown(ctx); err != nil {
		t.Errorf("second Shutdown: %v", err)
	}
}

// TestKilledLeaderIsReplaced: a leader that stops refreshing without
// resigning keeps the key until the lease ends; then the standby leads.
func TestKilledLeaderIsReplaced(t *testing.T) {
	srv := embeddedtest.RunServer(t)
	bus := newBus(t, srv)
	cfgA := testDaemonConfig(srv, "scalerd-a")
	a := startDaemon(t, cfgA)
	waitFor(t, 30*time.Second, "scalerd-a leads", a.Leader)
	b := startDaemon(t, testDaemonConfig(srv, "scalerd-b"))
	waitFor(t, 30*time.Second, "scalerd-b samples", func() bool { _, ok := b.Status(); return ok })

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.kill(ctx); err != nil {
		t.Fatal(err)
	}
	if id := leaderKeyValue(t, bus); id != "scalerd-a" {
		t.Fatalf("the killed leader's key holds %q, want scalerd-a until the lease ends", id)
	}
	waitFor(t, 30*time.Second, "scalerd-b takes over after the lease", b.Leader)
	if id := leaderKeyValue(t, bus); id != "scalerd-b" {
		t.Errorf("leader key holds %q", id)
	}
}

// TestLostLeaseStopsActing: a leader whose key another scalerd took (its
// refresh failed) stops leading at once.
func TestLostLeaseStopsActing(t *testing.T) {
	srv := embeddedtest.RunServer(t)
	bus := newBus(t, srv)
	a := startDaemon(t, testDaemonConfig(srv, "scalerd-a"))
	waitFor(t, 30*time.Second, "scalerd-a leads", a.Leader)
	js, _ := jetstream.New(bus.Conn())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	kv, err := js.KeyValue(ctx, LeaderBucket)
	if err != nil {
		t.Fatal(err)
	}
	// An intruder overwrites the key, as a standby would after a lease
	// that ran out while the leader stalled.
	if _, err := kv.Put(ctx, leaderKey, []byte(`{"id":"intruder"}`)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "scalerd-a stops leading", func() bool { return !a.Leader() })
	if id := leaderKeyValue(t, bus); id != "intruder" {
		t.Errorf("leader key holds %q", id)
	}
}

// TestDryRunWritesNothing: a dry run leads and decides but never writes
// the target.
func TestDryRunWritesNothing(t *testing.T) {
	srv := embeddedtest.RunServer(t)
	bus := newBus(t, srv)
	reportPool(t, bus, "web", "web", 4)
	send(t, bus, "web", 10) // work waits: the pool is decided on with no members
	cfg := testDaemonConfig(srv, "scalerd-dry")
	cfg.DryRun = true
	cfg.Policy.MinConsumers = 3 // with no consumers, every decision is a step to 3
	d := startDaemon(t, cfg)
	waitFor(t, 30*time.Second, "the dry run leads and decides", func() bool {
		st, ok := d.PoolStatus("web")
		return ok && d.Leader() && st.DesiredConsumers == 3
	})
	for range 5 {
		time.Sleep(cfg.Interval)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if tgt, ok, err := bus.ScaleTarget(ctx, "web"); err != nil || ok {
		t.Errorf("dry run wrote %+v (%v)", tgt, err)
	}
	st, _ := d.PoolStatus("web")
	if !st.DryRun || st.Target != nil || !strings.Contains(st.Reason, "minimum 3") || st.Trigger != "bounds" {
		t.Errorf("status %+v", st)
	}
	if n := testutil.ToFloat64(d.m.writes.WithLabelValues("web")); n != 0 {
		t.Errorf("%v writes", n)
	}

	// The same without --dry-run writes the step, once.
	cfg.DryRun, cfg.ID = false, "scalerd-wet"
	if err := d.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	w := startDaemon(t, cfg)
	waitFor(t, 30*time.Second, "the target is written", func() bool {
		tgt, ok, err := bus.ScaleTarget(ctx, "web")
		return err == nil && ok && tgt.Consumers == 3 && tgt.By == "scalerd-wet" && strings.Contains(tgt.Reason, "minimum 3")
	})
	for range 5 {
		time.Sleep(cfg.Interval)
	}
	if n := testutil.ToFloat64(w.m.writes.WithLabelValues("web")); n != 1 {
		t.Errorf("%v writes of an unchanged target, want 1", n)
	}
}

// TestHTTP: /healthz, /readyz, /scale, /scale/{pool} and /metrics answer,
// and the metrics pass the Prometheus linter.
func TestHTTP(t *testing.T) {
	srv := embeddedtest.RunServer(t)
	bus := newBus(t, srv)
	reportPool(t, bus, "web", "web", 4)
	send(t, bus, "web", 10) // work waits: the pool is decided on with no members
	d := startDaemon(t, testDaemonConfig(srv, "scalerd-http"))
	if code, _ := get(t, d, "/healthz"); code != http.StatusOK {
		t.Errorf("/healthz %d", code)
	}
	if err := d.Start(context.Background()); !errors.Is(err, ErrStarted) {
		t.Errorf("second Start: %v", err)
	}
	waitFor(t, 30*time.Second, "/readyz answers 200 and the pool's target is written", func() bool {
		code, _ := get(t, d, "/readyz")
		st, ok := d.PoolStatus("web")
		return code == http.StatusOK && ok && st.Target != nil
	})
	code, body := get(t, d, "/scale")
	var all struct {
		ID     string                    `json:"id"`
		Leader bool                      `json:"leader"`
		Pools  map[string]map[string]any `json:"pools"`
	}
	if err := json.Unmarshal([]byte(body), &all); code != http.StatusOK || err != nil {
		t.Fatalf("/scale %d %q: %v", code, body, err)
	}
	if all.ID != "scalerd-http" || !all.Leader || len(all.Pools) != 1 || all.Pools["web"]["desiredConsumers"] != 1.0 {
		t.Errorf("/scale %s", body)
	}
	code, body = get(t, d, "/scale/web")
	var st map[string]any
	if err := json.Unmarshal([]byte(body), &st); code != http.StatusOK || err != nil {
		t.Fatalf("/scale/web %d %q: %v", code, body, err)
	}
	for _, k := range []string{"pool", "desiredConsumers", "reason", "leader", "at", "trigger", "target"} {
		if _, ok := st[k]; !ok {
			t.Errorf("/scale/web has no %q: %s", k, body)
		}
	}
	if st["pool"] != "web" || st["desiredConsumers"] != 1.0 || st["leader"] != true {
		t.Errorf("/scale/web %s", body)
	}
	if reason, _ := st["reason"].(string); !strings.Contains(body, reason) {
		t.Errorf("/scale/web escapes its reason %q: %s", reason, body)
	}
	if code, body := get(t, d, "/scale/nobody"); code != http.StatusNotFound || !strings.Contains(body, "has not reported") {
		t.Errorf("/scale/nobody %d %s", code, body)
	}
	if code, _ := get(t, d, "/scale/a.b"); code != http.StatusBadRequest {
		t.Errorf("/scale/a.b %d", code)
	}
	code, body = get(t, d, "/metrics")
	for _, name := range []string{
		`a2abus_scaler_backlog_messages{pool="web"}`, `a2abus_scaler_backlog_waiting_messages{pool="web"}`,
		`a2abus_scaler_arrivals_per_second{pool="web"}`, `a2abus_scaler_handled_per_second{pool="web"}`,
		`a2abus_scaler_consumer_cpu_ratio{pool="web"}`, `a2abus_scaler_consumers{pool="web"}`,
		`a2abus_scaler_forecast_arrivals_per_second{pool="web"}`, `a2abus_scaler_forecast_confidence{pool="web"}`,
		`a2abus_scaler_predicted_growth_ratio{pool="web"}`, `a2abus_scaler_desired_consumers{pool="web"} 1`,
		`a2abus_scaler_target_consumers{pool="web"} 1`, `a2abus_scaler_target_writes_total{pool="web"} 1`,
		"a2abus_scaler_leader 1", "a2abus_scaler_pools 1",
		`a2abus_scaler_decisions_total{direction="up",pool="web",trigger="bounds"}`, "go_goroutines",
	} {
		if code != http.StatusOK || !strings.Contains(body, name) {
			t.Errorf("/metrics (%d) has no %s", code, name)
		}
	}
	problems, err := testutil.GatherAndLint(d.reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
}

// TestNotReadyWithoutBus: with no stream to watch (no agentd yet), scalerd
// keeps trying; /healthz answers and /readyz and /scale do not.
func TestNotReadyWithoutBus(t *testing.T) {
	srv := embeddedtest.RunServer(t) // no streams provisioned
	d := startDaemon(t, testDaemonConfig(srv, "scalerd-early"))
	for range 3 {
		time.Sleep(100 * time.Millisecond)
		if code, _ := get(t, d, "/healthz"); code != http.StatusOK {
			t.Errorf("/healthz %d", code)
		}
		if code, body := get(t, d, "/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "not connected") {
			t.Errorf("/readyz %d %q", code, body)
		}
		if code, _ := get(t, d, "/scale"); code != http.StatusServiceUnavailable {
			t.Errorf("/scale %d", code)
		}
	}
	newBus(t, srv) // agentd arrives: the streams exist
	waitFor(t, 30*time.Second, "/readyz answers 200 once the stream exists", func() bool {
		code, _ := get(t, d, "/readyz")
		return code == http.StatusOK
	})
}

// TestLeaderOnACluster runs a scalerd on a 3-node cluster whose A2A stream
// has 3 replicas: its leader bucket follows the stream's replicas, and it
// leads and decides.
func TestLeaderOnACluster(t *testing.T) {
	c := embeddedtest.Cluster(t, 3)
	nc := c.Connect()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	embeddedtest.WaitPlacement(t, nc, 3)
	if err := agentbus.EnsureStreams(ctx, js, agentbus.StreamConfig{Replicas: 3}); err != nil {
		t.Fatalf("ensure streams: %v", err)
	}
	c.WaitStreamLeader(agentbus.StreamName)
	cfg := DefaultConfig()
	cfg.NATS = c.ClientURLs()
	cfg.HTTP = "127.0.0.1:0"
	cfg.ID = "scalerd-cluster"
	cfg.Interval = 200 * time.Millisecond
	cfg.Lease = 2 * time.Second
	d := startDaemon(t, cfg)
	waitFor(t, time.Minute, "the scalerd leads and decides", func() bool {
		st, ok := d.Status()
		return ok && st.Leader
	})
	kv, err := js.KeyValue(ctx, LeaderBucket)
	if err != nil {
		t.Fatal(err)
	}
	st, err := kv.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if si := st.(*jetstream.KeyValueBucketStatus).StreamInfo(); si.Config.Replicas != 3 {
		t.Errorf("leader bucket has %d replicas, want the stream's 3", si.Config.Replicas)
	}
}
