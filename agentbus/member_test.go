package agentbus_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/a2abus/a2abus/agentbus"
	"github.com/a2abus/a2abus/codec"
	"github.com/a2abus/a2abus/embedded"
	"github.com/a2abus/a2abus/embedded/embeddedtest"
	"github.com/a2abus/a2abus/placement"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// handledLog records which member handled each envelope, in order.
type handledLog struct {
	mu      sync.Mutex
	byAgent map[string][]string // agent -> envelope IDs in handling order
	by      map[string][]string // envelope ID -> members that handled it
}

func newHandledLog() *handledLog {
	return &handledLog{byAgent: map[string][]string{}, by: map[string][]string{}}
}

func (l *handledLog) handler(member, agent string) agentbus.Handler {
	return func(_ context.Context, env *codec.Envelope) error {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.byAgent[agent] = append(l.byAgent[agent], env.ID)
		l.by[env.ID] = append(l.by[env.ID], member)
		return nil
	}
}

func (l *handledLog) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.by)
}

// member starts a bus on srv that hosts every agent and serves as a
// member; stop leaves gracefully.
func startMember(t *testing.T, srv *embedded.Server, name string, agents []string, log *handledLog, opts ...agentbus.ServeOption) (bus *agentbus.Bus, stop func()) {
	t.Helper()
	bus = connectBus(t, srv, agentbus.WithGroups(64), agentbus.WithName(name))
	for _, a := range agents {
		if err := bus.Handle(a, log.handler(name, a)); err != nil {
			t.Fatal(err)
		}
	}
	all := append([]agentbus.ServeOption{fastRetries, agentbus.ServeMemberID(name),
		agentbus.ServeMemberTTL(2 * time.Second), agentbus.ServeAckWait(time.Second)}, opts...)
	return bus, serve(t, bus, all...)
}

// leaseOwners reads the leases bucket: group key -> member.
func leaseOwners(t *testing.T, srv *embedded.Server) map[string]string {
	t.Helper()
	js, _ := jetstream.New(embeddedtest.Connect(t, srv))
	kv, err := js.KeyValue(context.Background(), agentbus.LeasesBucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil // no member has started yet
	}
	if err != nil {
		t.Fatal(err)
	}
	keys, _ := kv.Keys(context.Background())
	out := map[string]string{}
	for _, k := range keys {
		if e, err := kv.Get(context.Background(), k); err == nil {
			out[k] = string(e.Value())
		}
	}
	return out
}

func TestMembersHandOverWithoutLossOrDoubles(t *testing.T) {
	srv := embeddedtest.RunServer(t)
	agents := make([]string, 1000)
	for i := range agents {
		agents[i] = fmt.Sprintf("agent-%04d", i)
	}
	log := newHandledLog()
	startMember(t, srv, "c1", agents, log)
	startMember(t, srv, "c2", agents, log)
	_, stop3 := startMember(t, srv, "c3", agents, log)
	waitFor(t, "the 3 members to hold all 64 groups", func() bool { return len(leaseOwners(t, srv)) == 64 })
	before := leaseOwners(t, srv)

	sender := connectBus(t, srv, agentbus.WithGroups(64))
	ctx := testCtx(t, 2*time.Minute)
	sent := 0
	send := func(rounds int) {
		t.Helper()
		for range rounds {
			for _, a := range agents {
				if _, err := sender.SendAsync(ctx, textEnvelope("sender", a, fmt.Sprintf("%s/%06d", a, sent), "x")); err != nil {
					t.Fatal(err)
				}
				sent++
			}
		}
		if err := sender.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	send(5)
	startMember(t, srv, "c4", agents, log)
	send(5)
	waitFor(t, "c4 to take its groups", func() bool {
		n := 0
		for _, m := range leaseOwners(t, srv) {
			if m == "c4" {
				n++
			}
		}
		return n >= 10
	})
	after := leaseOwners(t, srv)
	send(5)
	stop3() // c3 leaves: its groups move to the others
	send(5)
	waitFor(t, "everything handled", func() bool { return log.count() >= sent })

	// The leases seen while the groups were moving, and the assignment the
	// members computed, which the leases converge to.
	changed := 0
	for g, m := range after {
		if before[g] != m {
			changed++
		}
	}
	a3, _ := placement.Assign(64, []string{"c1", "c2", "c3"})
	a4, _ := placement.Assign(64, []string{"c1", "c2", "c3", "c4"})
	moved := len(placement.Moved(a3, a4))
	t.Logf("%d envelopes; when c4 joined, %d of 64 groups moved (%.3f, ideal 1/4 = 0.250); %d leases had changed hands when sampled",
		sent, moved, float64(moved)/64, changed)

	log.mu.Lock()
	defer log.mu.Unlock()
	for id, ms := range log.by {
		if len(ms) != 1 {
			t.Errorf("%s handled %d times, by %v", id, len(ms), ms)
		}
	}
	for a, ids := range log.byAgent {
		for i := 1; i < len(ids); i++ {
			if ids[i] <= ids[i-1] {
				t.Fatalf("%s: %s handled after %s", a, ids[i], ids[i-1])
			}
		}
	}
	if len(log.by) != sent {
		t.Fatalf("handled %d distinct envelopes, sent %d", len(log.by), sent)
	}
}

// TestMemberCrashGroupsMove kills a member (its connection) while one of
// its handlers hangs: after the TTL its groups move and the batch it never
// acknowledged is redelivered and handled by a survivor.
func TestMemberCrashGroupsMove(t *testing.T) {
	srv := embeddedtest.RunServer(t)
	log := newHandledLog()
	agents := []string{"a0", "a1", "a2", "a3", "a4", "a5", "a6", "a7"}

	hang := make(chan struct{})
	doomed := connectBus(t, srv, agentbus.WithGroups(64))
	var doomedGot sync.Map
	for _, a := range agents {
		if err := doomed.Handle(a, func(ctx context.Context, env *codec.Envelope) error {
			doomedGot.Store(env.ID, true)
			<-hang // never returns while the test runs: a hung, then dead, consumer
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	serve(t, doomed, fastRetries, agentbus.ServeMemberID("doomed"), agentbus.ServeMemberTTL(2*time.Second), agentbus.ServeAckWait(2*time.Second))
	t.Cleanup(func() { close(hang) }) // runs before Serve is stopped
	waitFor(t, "doomed to hold every group", func() bool { return len(leaseOwners(t, srv)) == 64 })

	sender := connectBus(t, srv, agentbus.WithGroups(64))
	ctx := testCtx(t, 2*time.Minute)
	for _, a := range agents {
		if err := sender.Send(ctx, textEnvelope("s", a, a+"/1", "x")); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "doomed to start handling", func() bool {
		n := 0
		doomedGot.Range(func(any, any) bool { n++; return true })
		return n > 0
	})
	doomed.Conn().Close() // the process dies: no acks, no heartbeats

	startMember(t, srv, "survivor", agents, log, agentbus.ServeAckWait(2*time.Second))
	waitFor(t, "the survivor to handle everything", func() bool { return log.count() == len(agents) })
	log.mu.Lock()
	defer log.mu.Unlock()
	for id, ms := range log.by {
		if len(ms) != 1 || ms[0] != "survivor" {
			t.Errorf("%s handled by %v", id, ms)
		}
	}
}

// TestMemberMetrics checks the receive metrics of a member: the groups it
// owns, their pending counts, and the batches and handler times.
func TestMemberMetrics(t *testing.T) {
	srv := embeddedtest.RunServer(t)
	reg := prometheus.NewPedanticRegistry()
	bus := connectBus(t, srv, agentbus.WithGroups(8), agentbus.WithRegisterer(reg))
	if err := bus.Handle("a", func(context.Context, *codec.Envelope) error { return nil }); err != nil {
		t.Fatal(err)
	}
	serve(t, bus, fastRetries, agentbus.ServeMemberTTL(time.Second), agentbus.ServeAckWait(time.Second))
	ctx := testCtx(t, 30*time.Second)
	if err := bus.Send(ctx, textEnvelope("s", "a", "m1", "x")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the metrics", func() bool {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]float64{}
		for _, mf := range mfs {
			for _, m := range mf.GetMetric() {
				got[mf.GetName()] += m.GetGauge().GetValue() + m.GetCounter().GetValue() + float64(m.GetHistogram().GetSampleCount())
			}
		}
		n, _ := testutil.GatherAndCount(reg, "a2abus_receive_group_pending")
		r, _ := testutil.GatherAndCount(reg, "a2abus_receive_group_redelivered")
		return got["a2abus_receive_groups_owned"] == 8 && got["a2abus_receive_handled_total"] == 1 &&
			got["a2abus_receive_group_handled_total"] == 1 &&
			got["a2abus_receive_batch_envelopes"] == 1 && got["a2abus_receive_handler_seconds"] == 1 && n == 8 && r == 8
	})
	// One handled series per owned group, and the message counted in its own.
	group, _ := bus.ConsumerName(bus.Groups().Group("a"))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	perGroup := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "a2abus_receive_group_handled_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			perGroup[m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
		}
	}
	if len(perGroup) != 8 || perGroup[group] != 1 {
		t.Errorf("handled by group %v, want 8 groups and 1 in %s", perGroup, group)
	}
	if n, err := testutil.GatherAndCount(reg, "a2abus_receive_group_pending"); err != nil || n != 8 {
		t.Fatalf("group pending series: %d (%v), want one per owned group", n, err)
	}
	if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) > 0 {
		t.Fatalf("lint: %v %v", problems, err)
	}
}
