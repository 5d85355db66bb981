package scalerd

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/a2abus/a2abus/agentbus"
	"github.com/a2abus/a2abus/codec"
	"github.com/a2abus/a2abus/embedded/embeddedtest"
	"github.com/a2abus/a2abus/placement"
	"github.com/a2abus/a2abus/scaler"
	"github.com/nats-io/nats.go/jetstream"
)

// TestStreamSource checks each pool's backlog and counters against what
// was published, fetched and acknowledged: one stored message per
// envelope (batches of one), two pools, one part-consumed, and a consumer
// that appears with a backlog (which is not an arrival).
func TestStreamSource(t *testing.T) {
	srv := embeddedtest.RunServer(t)
	bus := newBus(t, srv, agentbus.WithBatch(1, 1<<20))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	alpha, err := bus.Declare(ctx, agentbus.PoolConfig{Name: "alpha-pool", Partitions: 4}, "alpha")
	if err != nil {
		t.Fatal(err)
	}
	beta, err := bus.Declare(ctx, agentbus.PoolConfig{Name: "beta-pool", Partitions: 2}, "beta")
	if err != nil {
		t.Fatal(err)
	}
	src, err := newStreamSource(bus)
	if err != nil {
		t.Fatal(err)
	}
	if pools, err := src.Pools(ctx); err != nil || len(pools) != 0 {
		t.Fatalf("empty bus: %v %v", pools, err)
	}

	send(t, bus, "alpha", 30)
	send(t, bus, "beta", 12)
	js, err := jetstream.New(bus.Conn())
	if err != nil {
		t.Fatal(err)
	}
	consumer := func(p *placement.Pool, n int) (jetstream.Consumer, string) {
		cfg, err := agentbus.ConsumerConfig(p, n, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		c, err := js.CreateOrUpdateConsumer(ctx, agentbus.StreamName, cfg)
		if err != nil {
			t.Fatal(err)
		}
		return c, cfg.Durable
	}
	var alphaNames []string
	var ca jetstream.Consumer
	pa := alpha.Partition("alpha", "") // every envelope: no conversation, no sender
	for n := range 4 {
		c, name := consumer(alpha, n)
		alphaNames = append(alphaNames, name)
		if n == pa {
			ca = c
		}
	}
	pb := beta.Partition("beta", "")
	_, betaIdle := consumer(beta, 1-pb) // beta's other partition: empty
	// Not a partition consumer: its name is no pool's, and it must not count.
	if _, err := js.CreateOrUpdateConsumer(ctx, agentbus.StreamName, jetstream.ConsumerConfig{
		Durable: "other", FilterSubject: "a2a.in.nobody.>", AckPolicy: jetstream.AckExplicitPolicy,
	}); err != nil {
		t.Fatal(err)
	}

	pools, err := src.Pools(ctx)
	if err != nil {
		t.Fatal(err)
	}
	check := func(what string, pools map[string]poolBacklog, pool string, groups []scaler.GroupBacklog, received, finished uint64) {
		t.Helper()
		got := pools[pool]
		if !slices.Equal(got.groups, groups) || got.received != received || got.finished != finished {
			t.Errorf("%s: pool %s: %+v, want groups %+v, received %d, finished %d", what, pool, got, groups, received, finished)
		}
	}
	alphaGroups := func(pending, ackPending uint64) []scaler.GroupBacklog {
		var gs []scaler.GroupBacklog
		for n, name := range alphaNames {
			g := scaler.GroupBacklog{Group: name}
			if n == pa {
				g.NumPending, g.NumAckPending = pending, ackPending
			}
			gs = append(gs, g)
		}
		return gs
	}
	if len(pools) != 2 {
		t.Fatalf("pools %v, want alpha-pool and beta-pool", pools)
	}
	// First seen: the backlog is there, the counters start at zero.
	check("first reading", pools, "alpha-pool", alphaGroups(30, 0), 0, 0)
	check("first reading", pools, "beta-pool", []scaler.GroupBacklog{{Group: betaIdle}}, 0, 0)

	// Alpha's consumer finishes 4 and holds a fifth (MaxAckPending 1: one
	// at a time); 5 more arrive for beta, whose busy partition's consumer
	// appears now, holding 17.
	for i := range 5 {
		batch, err := ca.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		for m := range batch.Messages() {
			if i < 4 {
				if err := m.DoubleAck(ctx); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	send(t, bus, "beta", 5)
	_, betaBusy := consumer(beta, pb)
	betaGroups := func(pending uint64) []scaler.GroupBacklog {
		gs := []scaler.GroupBacklog{{Group: betaIdle}, {Group: betaBusy, NumPending: pending}}
		slices.SortFunc(gs, func(a, b scaler.GroupBacklog) int { return strings.Compare(a.Group, b.Group) })
		return gs
	}
	pools, err = src.Pools(ctx)
	if err != nil {
		t.Fatal(err)
	}
	check("after 4 acks", pools, "alpha-pool", alphaGroups(25, 1), 0, 4)
	check("a consumer appears", pools, "beta-pool", betaGroups(17), 0, 0)

	// 3 more for beta and 2 for alpha arrive.
	send(t, bus, "beta", 3)
	send(t, bus, "alpha", 2)
	pools, err = src.Pools(ctx)
	if err != nil {
		t.Fatal(err)
	}
	check("arrivals", pools, "alpha-pool", alphaGroups(27, 1), 2, 4)
	check("arrivals", pools, "beta-pool", betaGroups(20), 3, 0)
}

func TestConsumerReport(t *testing.T) {
	tests := []struct {
		name string
		m    agentbus.Member
		want scaler.ConsumerReport
	}{
		{name: "ready", m: agentbus.Member{ID: "a", CPU: 0.4, HostCPU: 0.9, Handled: 7}, want: scaler.ConsumerReport{ID: "a", CPU: 0.4, Handled: 7, Ready: true}},
		{name: "idle is ready", m: agentbus.Member{ID: "b", CPU: 0}, want: scaler.ConsumerReport{ID: "b", Ready: true}},
		{name: "CPU unknown: just started", m: agentbus.Member{ID: "c", CPU: -1, HostCPU: -1, Handled: 3}, want: scaler.ConsumerReport{ID: "c", Handled: 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := consumerReport(tt.m); got != tt.want {
				t.Errorf("consumerReport(%+v) = %+v, want %+v", tt.m, got, tt.want)
			}
		})
	}
}

// TestMemberSource maps the members bucket by pool: a consumer is not
// ready until it reports its CPU, and its handled count is the bus's.
func TestMemberSource(t *testing.T) {
	srv := embeddedtest.RunServer(t)
	bus := newBus(t, srv)
	other := newBus(t, srv)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := bus.Handle("alpha", func(context.Context, *codec.Envelope) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if err := other.Handle("beta", func(context.Context, *codec.Envelope) error { return nil }); err != nil {
		t.Fatal(err)
	}
	src := memberSource{bus}
	if got, err := src.Pools(ctx); err != nil || len(got) != 0 {
		t.Fatalf("no members: %v, %v", got, err)
	}
	serve := func(bus *agentbus.Bus, opts ...agentbus.ServeOption) {
		sctx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- bus.Serve(sctx, append(opts, agentbus.ServeMemberTTL(time.Second))...) }()
		t.Cleanup(func() {
			stop()
			if err := <-done; err != nil {
				t.Error(err)
			}
		})
	}
	serve(bus, agentbus.ServeMemberID("m1"), agentbus.ServePartitions(4))
	serve(other, agentbus.ServeMemberID("m2"), agentbus.ServePartitions(4), agentbus.ServePool("betas"))
	send(t, bus, "alpha", 25)

	waitFor(t, 30*time.Second, "the members report, alpha's 25 handled and its CPU", func() bool {
		pools, err := src.Pools(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(pools) != 2 || len(pools["alpha"]) != 1 || len(pools["betas"]) != 1 {
			return false // the pool of a single agent is named after it
		}
		r := pools["alpha"][0]
		if r.ID != "m1" || r.Handled > 25 || pools["betas"][0].ID != "m2" {
			t.Fatalf("reports %+v", pools)
		}
		return r.Handled == 25 && r.Ready && r.CPU >= 0 && r.CPU <= 1
	})
}
