//go:build faults

package faults_test

import (
	"context"
	"testing"
	"time"

	"github.com/a2abus/a2abus/agentbus"
	"github.com/a2abus/a2abus/internal/faults"
)

// TestConsumerKilledMidBatch kills one of two consumers while one of its
// handler calls is in the middle of a batch: the envelopes of that batch it
// handled are handled again by the survivor (at least once), nothing is
// lost, and every duplicate has its first envelope ID.
func TestConsumerKilledMidBatch(t *testing.T) {
	r := newRun(t)
	victim := r.consumer("victim", 0)
	survivor := r.consumer("survivor", 1)
	r.publish(r.publisher("pub", 2), "pub", faults.PublisherConfig{Pause: 20 * time.Millisecond})
	r.waitHandled("before the kill", 300)
	waitFor(t, "both consumers to handle envelopes (each to hold partitions)", func() bool {
		return victim.Handled() > 0 && survivor.Handled() > 0
	})
	paused := victim.PauseAfter(victim.Handled() + 5)
	select {
	case <-paused:
	case <-time.After(30 * time.Second):
		t.Fatal("the victim's handler never reached the pause")
	}
	before := survivor.Handled()
	if err := victim.Kill(ctxFor(t, 30*time.Second)); err != nil {
		t.Logf("kill: %v", err) // a crash need not go cleanly
	}
	r.waitHandled("after the kill", 300)
	c := r.finish("the killed consumer's unacknowledged batch is redelivered (at least once)")
	t.Logf("the survivor handled %d envelopes after the kill", survivor.Handled()-before)
	if c.Duplicates-c.RetryDups == 0 {
		t.Errorf("no envelope was handled twice: the victim was killed holding a half-handled batch, which must come back")
	}
}

// TestStreamLeaderRestarted stops the node leading the A2A stream, with a
// consumer and the publisher connected to it, and brings it back.
func TestStreamLeaderRestarted(t *testing.T) {
	r := newRun(t)
	ctx := ctxFor(t, 2*time.Minute)
	leader := r.c.StreamLeader(agentbus.StreamName)
	other := (leader + 1) % 3
	r.consumer("on-leader", leader)
	r.consumer("elsewhere", other)
	r.publish(r.publisher("pub-leader", leader), "pub-leader", faults.PublisherConfig{Pause: 20 * time.Millisecond})
	r.publish(r.publisher("pub-other", other), "pub-other", faults.PublisherConfig{Pause: 20 * time.Millisecond})
	r.waitHandled("before the stop", 300)
	if err := r.c.Stop(ctx, leader); err != nil {
		t.Fatal(err)
	}
	next, err := r.c.WaitStreamLeader(ctx, agentbus.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("stream leader moved from %s to %s", r.c.Name(leader), r.c.Name(next))
	r.waitHandled("with the leader down", 300)
	if err := r.c.Restart(ctx, leader); err != nil {
		t.Fatal(err)
	}
	r.waitHandled("after the restart", 300)
	r.finish("acks the stopped node took but had not replicated are redelivered (at least once)")
}

// TestAllNodesRestarted stops every node (the file store keeps the
// stream) while the load runs, and starts them again.
func TestAllNodesRestarted(t *testing.T) {
	r := newRun(t)
	ctx := ctxFor(t, 2*time.Minute)
	r.consumer("c0", 0)
	r.consumer("c1", 1)
	r.publish(r.publisher("pub", 2), "pub", faults.PublisherConfig{Pause: 20 * time.Millisecond, Retries: 2})
	r.waitHandled("before the stop", 300)
	if err := r.c.StopAll(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond) // the clients run into the outage
	if err := r.c.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := r.c.WaitStreamLeader(ctx, agentbus.StreamName); err != nil {
		t.Fatal(err)
	}
	r.waitHandled("after the restart", 500)
	r.finish("acks the stopped nodes took but had not stored are redelivered (at least once)")
}

// TestNodeCutOff cuts the A2A stream's leader off from its peers (its
// routes refused both ways; its clients stay connected to it) and heals
// the partition.
func TestNodeCutOff(t *testing.T) {
	r := newRun(t)
	leader := r.c.StreamLeader(agentbus.StreamName)
	other := (leader + 1) % 3
	r.consumer("on-cut", leader)
	r.consumer("elsewhere", other)
	r.publish(r.publisher("pub-cut", leader), "pub-cut", faults.PublisherConfig{Pause: 20 * time.Millisecond})
	r.publish(r.publisher("pub-other", other), "pub-other", faults.PublisherConfig{Pause: 20 * time.Millisecond})
	r.waitHandled("before the cut", 300)
	r.c.Isolate(leader)
	waitFor(t, "the cut-off node to lose every route", func() bool {
		return r.c.Server(leader).NATSServer().NumRoutes() == 0
	})
	waitFor(t, "a stream leader on the majority side", func() bool {
		l := r.c.StreamLeader(agentbus.StreamName)
		return l >= 0 && l != leader
	})
	r.waitHandled("with the node cut off", 300)
	r.c.Heal(leader)
	waitFor(t, "the healed node's routes", func() bool {
		return r.c.Server(leader).NATSServer().NumRoutes() > 0
	})
	r.waitHandled("after healing", 300)
	r.finish("the cut-off consumer's batches and acks are redelivered (at least once)")
}

// TestSlowConsumer makes both consumers' handlers slow enough that a
// batch takes longer than the ack wait and batches queue behind each
// other: progress acks must keep every batch from being redelivered.
func TestSlowConsumer(t *testing.T) {
	r := newRun(t)
	for i, name := range []string{"slow-0", "slow-1"} {
		c := r.consumer(name, i, agentbus.ServeWorkers(2), agentbus.ServeAckWait(time.Second))
		c.SetDelay(10 * time.Millisecond)
	}
	r.publish(r.publisher("pub", 2), "pub", faults.PublisherConfig{Burst: 120, Pause: 50 * time.Millisecond, Max: 1200})
	r.waitDistinct("while slow", 1200)
	r.finish("")
}

// TestPublisherReconnectStorm drops every publisher's connection at once,
// again and again, while they send; failed sends are sent again with the
// same envelope, as an application would.
func TestPublisherReconnectStorm(t *testing.T) {
	const publishers = 12
	r := newRun(t)
	r.consumer("c0", 0)
	r.consumer("c1", 1)
	for i := range publishers {
		name := "pub-" + string(rune('a'+i))
		r.publish(r.publisher(name, i%3), name, faults.PublisherConfig{Burst: 10, Pause: 20 * time.Millisecond, Timeout: 3 * time.Second, Retries: 3})
	}
	r.waitHandled("before the storm", 300)
	for range 5 {
		r.c.CutClients()
		time.Sleep(300 * time.Millisecond)
		r.c.RestoreClients()
		r.waitHandled("after a reconnect", 100)
	}
	r.finish("")
}

// waitFor polls cond until it holds or 30 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s", what)
		case <-time.After(20 * time.Millisecond):
		}
	}
}
