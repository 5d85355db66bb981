package agentbus_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/a2abus/a2abus/agentbus"
	"github.com/a2abus/a2abus/codec"
	"github.com/a2abus/a2abus/embedded/embeddedtest"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// TestDeletedConsumerIsRecreated: an operator deletes the consumers of a
// pool under a running member (nats consumer rm): the member notices,
// counts it, creates them again within a heartbeat or two, and the agent
// answers again; nothing sent after the deletion is lost.
func TestDeletedConsumerIsRecreated(t *testing.T) {
	srv := embeddedtest.RunServer(t)
	reg := prometheus.NewRegistry()
	host := connectBus(t, srv, agentbus.WithRegisterer(reg))
	client := connectBus(t, srv)
	var handled atomic.Int64
	if err := host.Handle("echo", func(context.Context, *codec.Envelope) error {
		handled.Add(1)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	pool := declarePool(t, host, agentbus.PoolConfig{Name: "lost", Partitions: 2}, "echo")
	serve(t, host, agentbus.ServePool("lost"), agentbus.ServePartitions(2), agentbus.ServeMemberTTL(2*time.Second))

	ctx := testCtx(t, 2*time.Minute)
	send := func(n int) {
		t.Helper()
		for i := range n {
			if err := client.Send(ctx, &codec.Envelope{From: "c", To: "echo", Kind: "k", ID: ""}); err != nil {
				t.Fatalf("send %d: %v", i, err)
			}
		}
	}
	send(3)
	waitFor(t, "the first envelopes handled", func() bool { return handled.Load() == 3 })

	js, err := jetstream.New(embeddedtest.Connect(t, srv))
	if err != nil {
		t.Fatal(err)
	}
	for n := range pool.Partitions() {
		name, _ := pool.ConsumerName(n)
		if err := js.DeleteConsumer(ctx, agentbus.StreamName, name); err != nil {
			t.Fatalf("delete consumer %s: %v", name, err)
		}
	}
	send(3)
	waitFor(t, "the envelopes sent after the deletion handled", func() bool { return handled.Load() == 6 })
	if got := gathered(t, reg, "a2abus_receive_partitions_lost_total"); got < 1 {
		t.Errorf("a2abus_receive_partitions_lost_total = %v, want at least 1", got)
	}
	// Each partition is started again at a heartbeat after its loss was
	// noticed: one that got no envelope may come back after the others.
	for n := range pool.Partitions() {
		name, _ := pool.ConsumerName(n)
		waitFor(t, "consumer "+name+" created again", func() bool {
			_, err := js.Consumer(ctx, agentbus.StreamName, name)
			return err == nil
		})
	}
}
