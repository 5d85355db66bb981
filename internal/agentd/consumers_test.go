package agentd

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/a2abus/a2abus/agentbus"
	"github.com/a2abus/a2abus/codec"
	"github.com/a2abus/a2abus/embedded"
	"github.com/a2abus/a2abus/embedded/embeddedtest"
	"github.com/a2abus/a2abus/placement"
	"github.com/nats-io/nats.go/jetstream"
)

func TestSpread(t *testing.T) {
	hosts := []hostInfo{{ID: "a", Capacity: 2000}, {ID: "b", Capacity: 1000}, {ID: "c", Capacity: 1000}}
	tests := []struct {
		total int
		want  map[string]int
	}{
		{0, map[string]int{"a": 0, "b": 0, "c": 0}},
		{1, map[string]int{"a": 1, "b": 0, "c": 0}},
		{2, map[string]int{"a": 1, "b": 1, "c": 0}},
		{3, map[string]int{"a": 1, "b": 1, "c": 1}}, // quotas 1.5, 0.75, 0.75
		{4, map[string]int{"a": 2, "b": 1, "c": 1}},
		{9, map[string]int{"a": 5, "b": 2, "c": 2}},
		{100, map[string]int{"a": 50, "b": 25, "c": 25}},
	}
	for _, tt := range tests {
		got := spread(tt.total, hosts)
		sum := 0
		for id, n := range got {
			sum += n
			if n != tt.want[id] {
				t.Errorf("spread(%d)[%s] = %d, want %d (%v)", tt.total, id, n, tt.want[id], got)
			}
		}
		if sum != tt.total {
			t.Errorf("spread(%d) gives %d in all", tt.total, sum)
		}
	}
	if got := spread(3, nil); len(got) != 0 {
		t.Errorf("spread over no hosts = %v", got)
	}
}

func TestConsumerPoolWant(t *testing.T) {
	p := &consumerPool{id: "me", def: 2, running: make([]*consumerRun, 3)}
	peers := []hostInfo{{ID: "me", Capacity: 1000}, {ID: "other", Capacity: 3000}}
	for _, tt := range []struct {
		name   string
		target *agentbus.ScaleTarget
		peers  []hostInfo
		want   int
	}{
		{"no target: the default", nil, peers, 2},
		{"a share of the target", &agentbus.ScaleTarget{Consumers: 8}, peers, 2},
		{"no list of hosts (a failed heartbeat): hold", &agentbus.ScaleTarget{Consumers: 8}, nil, 3},
		{"alone", &agentbus.ScaleTarget{Consumers: 8}, peers[:1], 8},
		{"bounded", &agentbus.ScaleTarget{Consumers: 10 * maxConsumers}, peers[:1], maxConsumers},
	} {
		if got := p.want(tt.target, tt.peers); got != tt.want {
			t.Errorf("%s: want() = %d, want %d", tt.name, got, tt.want)
		}
	}
}

// runPool runs an agentd consumer pool of pool on srv, whose bus hosts
// agent, with the given capacity, a default of one consumer and a fast
// beat; stop stops it and waits for its consumers to hand over.
func runPool(t *testing.T, ctx context.Context, srv *embedded.Server, pool, agent string, capacity int) (bus *agentbus.Bus, p *consumerPool, stop func()) {
	t.Helper()
	nc := embeddedtest.Connect(t, srv)
	js, _ := jetstream.New(nc)
	if err := agentbus.EnsureStreams(ctx, js, agentbus.StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	bus, err := agentbus.Connect(ctx, agentbus.WithConn(nc))
	if err != nil {
		t.Fatal(err)
	}
	if err := bus.Handle(agent, func(context.Context, *codec.Envelope) error { return nil }); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	p, err = newConsumerPool(bus, js, log, nil, pool, 1, agentbus.ServeAgents(agent), agentbus.ServePartitions(8),
		agentbus.ServeMemberTTL(2*time.Second), agentbus.ServeAckWait(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	p.capacity, p.beat = capacity, 100*time.Millisecond
	pctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); p.run(pctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			<-done
			wctx, wcancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer wcancel()
			if err := p.wait(wctx); err != nil {
				t.Errorf("pool: %v", err)
			}
			_ = bus.Close(wctx)
		})
	}
	t.Cleanup(stop)
	return bus, p, stop
}

// TestConsumerPoolsFollowTheirPoolsTarget runs two agentds of pool p1, of
// capacity 2 and 1, and one of pool p2, of capacity 3, on one server:
// each runs its default until its pool's target is set, then its share of
// that target over its own pool's hosts only (the p2 host would take half
// of p1's target if it were counted, and p1's hosts would take part of
// p2's), and a stopped host's share goes to the others of its pool.
func TestConsumerPoolsFollowTheirPoolsTarget(t *testing.T) {
	srv := embeddedtest.RunServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	bus, big, stopBig := runPool(t, ctx, srv, "p1", "alpha", 2000)
	_, small, _ := runPool(t, ctx, srv, "p1", "alpha", 1000)
	_, other, _ := runPool(t, ctx, srv, "p2", "beta", 3000)
	hosts := []*consumerPool{big, small, other}

	waitMembers := func(what string, want map[*consumerPool]int) {
		t.Helper()
		deadline := time.Now().Add(time.Minute)
		for {
			ms, err := bus.Members(ctx)
			if err != nil {
				t.Fatal(err)
			}
			got := map[*consumerPool]int{}
			wantAll := 0
			for _, p := range hosts {
				wantAll += want[p]
				for _, m := range ms {
					if strings.HasPrefix(m.ID, p.id+"-c") {
						got[p]++
						if m.Pool != p.pool {
							t.Fatalf("host %s of pool %s runs member %+v", p.id, p.pool, m)
						}
					}
				}
			}
			same := len(ms) == wantAll
			for _, p := range hosts {
				same = same && got[p] == want[p]
			}
			if same {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: consumers big %d small %d other %d (%d members), want %d %d %d",
					what, got[big], got[small], got[other], len(ms), want[big], want[small], want[other])
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	set := func(pool string, n int) {
		t.Helper()
		if err := bus.SetScaleTarget(ctx, pool, agentbus.ScaleTarget{Consumers: n, Reason: "test"}); err != nil {
			t.Fatal(err)
		}
	}
	waitMembers("no target: the default of one each", map[*consumerPool]int{big: 1, small: 1, other: 1})
	set("p1", 6)
	waitMembers("p1's target 6 over p1's hosts; p2 keeps its default", map[*consumerPool]int{big: 4, small: 2, other: 1})
	set("p2", 3)
	waitMembers("p2's target 3 all on p2's one host", map[*consumerPool]int{big: 4, small: 2, other: 3})

	// The hosts bucket holds one lease per host, keyed <pool>.<host>.
	js, _ := jetstream.New(bus.Conn())
	kv, err := js.KeyValue(ctx, HostsBucket)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := kv.Keys(ctx)
	slices.Sort(keys)
	wantKeys := []string{"p1." + big.id, "p1." + small.id, "p2." + other.id}
	slices.Sort(wantKeys)
	if err != nil || !slices.Equal(keys, wantKeys) {
		t.Errorf("hosts %v %v, want %v", keys, err, wantKeys)
	}

	set("p1", 1)
	waitMembers("p1's target 1", map[*consumerPool]int{big: 1, small: 0, other: 3})
	stopBig()
	// The stopped host released its key: the other p1 host takes the
	// whole target at once, not a TTL later.
	waitMembers("the big host stopped", map[*consumerPool]int{small: 1, other: 3})
	if _, err := kv.Get(ctx, "p1."+big.id); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Errorf("the stopped host's key: %v, want it released", err)
	}
}

// TestNewConsumerPoolBadPool: a pool name that is not a subject token is
// refused.
func TestNewConsumerPoolBadPool(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, pool := range []string{"", "a.b", "a>"} {
		if _, err := newConsumerPool(nil, nil, log, nil, pool, 1); !errors.Is(err, placement.ErrInvalidPool) {
			t.Errorf("pool %q: %v, want ErrInvalidPool", pool, err)
		}
	}
}

// TestConsumerPoolOnACluster runs a pool on a 3-node cluster whose A2A
// stream has 3 replicas: the hosts bucket follows the stream's replicas and
// the pool's consumer and its share of a target work as on one server.
func TestConsumerPoolOnACluster(t *testing.T) {
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
	bus, err := agentbus.Connect(ctx, agentbus.WithConn(nc))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = bus.Close(context.Background()) }()
	if err := bus.Handle("echo", func(context.Context, *codec.Envelope) error { return nil }); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	p, err := newConsumerPool(bus, js, log, nil, "agentd", 1, agentbus.ServeAgents("echo"), agentbus.ServePartitions(16),
		agentbus.ServeMemberTTL(2*time.Second), agentbus.ServeAckWait(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	p.beat = 100 * time.Millisecond
	pctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); p.run(pctx) }()
	defer func() {
		stop()
		<-done
		wctx, wcancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer wcancel()
		if err := p.wait(wctx); err != nil {
			t.Error(err)
		}
	}()

	waitConsumers := func(n int) {
		t.Helper()
		for deadline := time.Now().Add(time.Minute); ; time.Sleep(50 * time.Millisecond) {
			// Short reads: one lost to a leader change must not use up the test.
			rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			ms, err := bus.Members(rctx)
			cancel()
			if err == nil && len(ms) == n {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("members %v (%v), want %d", ms, err, n)
			}
		}
	}
	waitConsumers(1)
	kv, err := js.KeyValue(ctx, HostsBucket)
	if err != nil {
		t.Fatal(err)
	}
	st, err := kv.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if si := st.(*jetstream.KeyValueBucketStatus).StreamInfo(); si.Config.Replicas != 3 {
		t.Errorf("hosts bucket has %d replicas, want the stream's 3", si.Config.Replicas)
	}
	if err := bus.SetScaleTarget(ctx, "agentd", agentbus.ScaleTarget{Consumers: 3, Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	waitConsumers(3)
}
