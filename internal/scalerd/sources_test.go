package scalerd

import (
	"context"
	"testing"
	"time"

	"github.com/a2abus/a2abus/agentbus"
	"github.com/a2abus/a2abus/codec"
	"github.com/a2abus/a2abus/embedded/embeddedtest"
	"github.com/a2abus/a2abus/scaler"
	"github.com/nats-io/nats.go/jetstream"
)

// TestStreamSource checks the backlog against what was published, fetched
// and acknowledged: one stored message per envelope (batches of one), two
// groups, one of them part-consumed.
func TestStreamSource(t *testing.T) {
	srv := embeddedtest.RunServer(t)
	bus := newBus(t, srv, agentbus.WithBatch(1, 1<<20))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ga, gb := bus.Groups().Group("alpha"), bus.Groups().Group("beta")
	if ga == gb {
		t.Fatalf("alpha and beta share group %d; pick other agents", ga)
	}
	src, err := newStreamSource(bus)
	if err != nil {
		t.Fatal(err)
	}

	groups, received, finished, err := src.Stream(ctx)
	if err != nil || len(groups) != 0 || received != 0 || finished != 0 {
		t.Fatalf("empty bus: %v %d %d %v", groups, received, finished, err)
	}

	send(t, bus, "alpha", 30)
	send(t, bus, "beta", 12)
	js, err := jetstream.New(bus.Conn())
	if err != nil {
		t.Fatal(err)
	}
	consumer := func(g int) jetstream.Consumer {
		name, _ := bus.ConsumerName(g)
		filter, _ := bus.Groups().GroupFilter(g)
		c, err := js.CreateOrUpdateConsumer(ctx, agentbus.StreamName, jetstream.ConsumerConfig{
			Durable: name, FilterSubject: filter, AckPolicy: jetstream.AckExplicitPolicy, AckWait: time.Minute,
		})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	ca := consumer(ga)
	consumer(gb)
	// Not a group consumer: its name is not one of the bus's groups, and
	// it must not count.
	if _, err := js.CreateOrUpdateConsumer(ctx, agentbus.StreamName, jetstream.ConsumerConfig{
		Durable: "other", FilterSubject: "a2a.in.nobody.>", AckPolicy: jetstream.AckExplicitPolicy,
	}); err != nil {
		t.Fatal(err)
	}
	batch, err := ca.Fetch(10, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for m := range batch.Messages() {
		if n < 4 {
			if err := m.DoubleAck(ctx); err != nil {
				t.Fatal(err)
			}
		}
		n++
	}
	if n != 10 {
		t.Fatalf("fetched %d, want 10", n)
	}

	groups, received, finished, err = src.Stream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	nameA, _ := bus.ConsumerName(ga)
	nameB, _ := bus.ConsumerName(gb)
	want := map[string]scaler.GroupBacklog{
		nameA: {Group: nameA, NumPending: 20, NumAckPending: 6},
		nameB: {Group: nameB, NumPending: 12, NumAckPending: 0},
	}
	if len(groups) != 2 {
		t.Fatalf("groups %+v, want %v", groups, want)
	}
	for _, g := range groups {
		if g != want[g.Group] {
			t.Errorf("group %+v, want %+v", g, want[g.Group])
		}
	}
	if received != 42 || finished != 4 {
		t.Errorf("received %d, finished %d; want 42 and 4", received, finished)
	}
	if g, r, err := src.Backlog(ctx); err != nil || len(g) != 2 || r != 42 {
		t.Errorf("Backlog() = %v, %d, %v", g, r, err)
	}
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

// TestMemberSource maps the members bucket: a consumer is not ready until
// it reports its CPU, and its handled count is the bus's.
func TestMemberSource(t *testing.T) {
	srv := embeddedtest.RunServer(t)
	bus := newBus(t, srv)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := bus.Handle("alpha", func(context.Context, *codec.Envelope) error { return nil }); err != nil {
		t.Fatal(err)
	}
	src := memberSource{bus}
	if got, err := src.Consumers(ctx); err != nil || len(got) != 0 {
		t.Fatalf("no members: %v, %v", got, err)
	}
	sctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- bus.Serve(sctx, agentbus.ServeMemberTTL(time.Second), agentbus.ServeMemberID("m1"))
	}()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	send(t, bus, "alpha", 25)

	waitFor(t, 30*time.Second, "the member reports 25 handled and its CPU", func() bool {
		members, err := bus.Members(ctx)
		if err != nil {
			t.Fatal(err)
		}
		reports, err := src.Consumers(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(members) != 1 || len(reports) != 1 {
			return false
		}
		r := reports[0]
		if r.ID != "m1" || r.Handled > 25 {
			t.Fatalf("report %+v of member %+v", r, members[0])
		}
		return r.Handled == 25 && r.Ready && r.CPU >= 0 && r.CPU <= 1
	})
}
