package agentd

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/a2abus/a2abus/agentbus"
	"github.com/a2abus/a2abus/codec"
	"github.com/a2abus/a2abus/embedded/embeddedtest"
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

// TestConsumerPoolsFollowTheTarget runs two agentd consumer pools, of
// capacity 2 and 1, on one server: each runs its default until a target is
// set, then its share of the target, and none once stopped.
func TestConsumerPoolsFollowTheTarget(t *testing.T) {
	srv := embeddedtest.RunServer(t)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	newPool := func(capacity int) (*agentbus.Bus, *consumerPool, func()) {
		nc := embeddedtest.Connect(t, srv)
		js, _ := jetstream.New(nc)
		if err := agentbus.EnsureStreams(ctx, js, agentbus.StreamConfig{}); err != nil {
			t.Fatal(err)
		}
		bus, err := agentbus.Connect(ctx, agentbus.WithConn(nc), agentbus.WithGroups(16))
		if err != nil {
			t.Fatal(err)
		}
		if err := bus.Handle("echo", func(context.Context, *codec.Envelope) error { return nil }); err != nil {
			t.Fatal(err)
		}
		p, err := newConsumerPool(bus, js, log, nil, 1,
			agentbus.ServeMemberTTL(2*time.Second), agentbus.ServeAckWait(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		p.capacity, p.beat = capacity, 100*time.Millisecond
		pctx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); p.run(pctx) }()
		var once sync.Once
		return bus, p, func() {
			once.Do(func() {
				stop()
				<-done
				if err := p.wait(ctx); err != nil {
					t.Errorf("pool: %v", err)
				}
				_ = bus.Close(context.Background())
			})
		}
	}
	bus, big, stopBig := newPool(2000)
	_, small, stopSmall := newPool(1000)
	defer stopSmall()
	defer stopBig()

	waitMembers := func(what string, want map[string]int) {
		t.Helper()
		deadline := time.Now().Add(time.Minute)
		for {
			ms, err := bus.Members(ctx)
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]int{}
			for _, m := range ms {
				for _, p := range []*consumerPool{big, small} {
					if len(m.ID) > len(p.id) && m.ID[:len(p.id)] == p.id {
						got[p.id]++
					}
				}
			}
			if got[big.id] == want[big.id] && got[small.id] == want[small.id] && len(ms) == want[big.id]+want[small.id] {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: consumers %v, want %v", what, got, want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitMembers("no target: the default of one each", map[string]int{big.id: 1, small.id: 1})
	if err := bus.SetScaleTarget(ctx, agentbus.ScaleTarget{Consumers: 6, Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	waitMembers("target 6", map[string]int{big.id: 4, small.id: 2})
	if err := bus.SetScaleTarget(ctx, agentbus.ScaleTarget{Consumers: 1, Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	waitMembers("target 1", map[string]int{big.id: 1, small.id: 0})
	stopBig()
	waitMembers("the big host stopped", map[string]int{small.id: 1})
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
	bus, err := agentbus.Connect(ctx, agentbus.WithConn(nc), agentbus.WithGroups(16))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = bus.Close(context.Background()) }()
	if err := bus.Handle("echo", func(context.Context, *codec.Envelope) error { return nil }); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	p, err := newConsumerPool(bus, js, log, nil, 1, agentbus.ServeMemberTTL(2*time.Second), agentbus.ServeAckWait(time.Second))
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
	if err := bus.SetScaleTarget(ctx, agentbus.ScaleTarget{Consumers: 3, Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	waitConsumers(3)
}
