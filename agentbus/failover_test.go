package agentbus_test

import (
	"context"
	"testing"
	"time"

	"github.com/a2abus/a2abus/agentbus"
	"github.com/a2abus/a2abus/codec"
	"github.com/a2abus/a2abus/embedded/embeddedtest"
	"github.com/nats-io/nats-server/v2/server"
)

// TestConnectDuringFailover (issue 15): buses that connect while the A2A
// stream's leader has just died follow the cluster: their stream lookup,
// unanswered while no leader is elected, is asked again, so each connects
// and stores a send once the new leader is in place, instead of waiting
// for its whole context (as `agentd send` did, 30 s). The figures say how
// long after the stop.
func TestConnectDuringFailover(t *testing.T) {
	c, _, leader := clusterOnLeader(t)
	survivor := (leader + 1) % c.Size()
	declarer := connectClusterBus(t, c, survivor, "declarer")
	declarePool(t, declarer, agentbus.PoolConfig{Name: "failover", Partitions: 1}, "failover")
	stopped := time.Now()
	c.Stop(leader)
	type result struct {
		after time.Duration
		err   error
	}
	const buses = 4
	results := make(chan result, buses)
	for i := range buses {
		go func() {
			// A minute: far more than an election, far less than a lookup
			// that waits for its context would need to fail the test.
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			bus, err := agentbus.Connect(ctx, agentbus.WithURL(c.Server((survivor+i%2)%c.Size()).ClientURL()),
				agentbus.WithLogger(embeddedtest.Logger(t)))
			if err == nil {
				err = bus.Send(ctx, &codec.Envelope{From: "a", To: "failover", Kind: "ping"})
				_ = bus.Close(context.Background())
			}
			results <- result{time.Since(stopped), err}
		}()
	}
	var slowest time.Duration
	for range buses {
		r := <-results
		if r.err != nil {
			t.Errorf("connect and send while the stream leader was replaced: %v (after %v)", r.err, r.after.Round(time.Millisecond))
		}
		slowest = max(slowest, r.after)
	}
	t.Logf("%d buses connected and stored a send at most %v after the stream leader stopped", buses, slowest.Round(time.Millisecond))
}

// TestConnectWithoutJetStream: Connect to a server without JetStream, with
// a context that never ends, fails with an error instead of asking again
// forever.
func TestConnectWithoutJetStream(t *testing.T) {
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	t.Cleanup(ns.Shutdown)
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("server not ready")
	}
	done := make(chan error, 1)
	go func() {
		_, err := agentbus.Connect(context.Background(), agentbus.WithURL(ns.ClientURL()))
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Connect to a server without JetStream succeeded")
		}
		t.Logf("Connect: %v", err)
	case <-time.After(3 * time.Minute):
		t.Fatal("Connect to a server without JetStream still waiting after 3 minutes")
	}
}
