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
	"github.com/a2abus/a2abus/embedded/embeddedtest"
	"github.com/a2abus/a2abus/placement"
	"github.com/nats-io/nats.go/jetstream"
)

// TestSeveralConsumersOnOneBus runs two member Serve calls of one pool on
// one bus: both join, share the pool's 16 partitions, report themselves
// with their pool, and hand everything over when one stops.
func TestSeveralConsumersOnOneBus(t *testing.T) {
	srv := embeddedtest.RunServer(t)
	bus := connectBus(t, srv)
	var mu sync.Mutex
	handled := map[string]int{}
	for i := range 8 {
		agent := fmt.Sprintf("agent-%d", i)
		if err := bus.Handle(agent, func(context.Context, *codec.Envelope) error {
			mu.Lock()
			handled[agent]++
			mu.Unlock()
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	opts := []agentbus.ServeOption{fastRetries, agentbus.ServePool("workers"), agentbus.ServePartitions(16),
		agentbus.ServeMemberTTL(2 * time.Second), agentbus.ServeAckWait(time.Second)}
	stopA := serve(t, bus, append(opts, agentbus.ServeMemberID("worker-a"))...)
	serve(t, bus, append(opts, agentbus.ServeMemberID("worker-b"))...)

	ctx := testCtx(t, time.Minute)
	var members []agentbus.Member
	waitFor(t, "two members that report CPU and share the 16 partitions", func() bool {
		var err error
		members, err = bus.Members(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return len(members) == 2 && members[0].Partitions+members[1].Partitions == 16 && members[0].CPU >= 0 && members[1].CPU >= 0
	})
	for i, id := range []string{"worker-a", "worker-b"} {
		if m := members[i]; m.ID != id || m.Pool != "workers" || len(m.Agents) != 8 || m.HostCPU < 0 || m.CPU > 1 {
			t.Errorf("member %d: %+v", i, m)
		}
	}

	const each = 50
	for i := range 8 * each {
		if _, err := bus.SendAsync(ctx, textEnvelope("s", fmt.Sprintf("agent-%d", i%8), "", "x")); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "every message handled and reported", func() bool {
		ms, err := bus.Members(ctx)
		if err != nil {
			t.Fatal(err)
		}
		total := uint64(0)
		for _, m := range ms {
			total += m.Handled
		}
		return total == 8*each
	})
	stopA()
	waitFor(t, "worker-b to hold all 16 partitions", func() bool {
		ms, err := bus.Members(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return len(ms) == 1 && ms[0].ID == "worker-b" && ms[0].Partitions == 16
	})
	mu.Lock()
	defer mu.Unlock()
	for agent, n := range handled {
		if n != each {
			t.Errorf("%s handled %d, want %d", agent, n, each)
		}
	}
}

// TestScaleTarget sets, reads, watches and deletes one pool's target.
func TestScaleTarget(t *testing.T) {
	srv := embeddedtest.RunServer(t)
	bus := connectBus(t, srv)
	ctx := testCtx(t, time.Minute)
	const pool = "agentd"
	if _, ok, err := bus.ScaleTarget(ctx, pool); ok || err != nil {
		t.Fatalf("a target before any was set: %v %v", ok, err)
	}
	if members, err := bus.Members(ctx); err != nil || len(members) != 0 {
		t.Fatalf("members before any joined: %v %v", members, err)
	}
	wctx, cancel := context.WithCancel(ctx)
	watch, err := bus.WatchScaleTarget(wctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	if got := nextTarget(t, ctx, watch); got != nil {
		t.Fatalf("a watch before any target began with %+v, want nil", got)
	}
	want := agentbus.ScaleTarget{Consumers: 3, Reason: "backlog 5400 > 1000", At: time.Now().UTC().Truncate(time.Millisecond), By: "scalerd-1"}
	if err := bus.SetScaleTarget(ctx, pool, want); err != nil {
		t.Fatal(err)
	}
	if got := nextTarget(t, ctx, watch); got == nil || *got != want {
		t.Errorf("watched %+v, want %+v", got, want)
	}
	got, ok, err := bus.ScaleTarget(ctx, pool)
	if !ok || err != nil || got != want {
		t.Errorf("ScaleTarget = %+v %v %v", got, ok, err)
	}
	if err := bus.SetScaleTarget(ctx, pool, agentbus.ScaleTarget{Consumers: -1}); err == nil {
		t.Error("a negative target was stored")
	}
	// A new watch starts with the current target.
	watch2, err := bus.WatchScaleTarget(wctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	if got := nextTarget(t, ctx, watch2); got == nil || got.Consumers != 3 {
		t.Errorf("a new watch began with %+v", got)
	}
	// An operator deletes the target: the watches say there is none.
	js, err := jetstream.New(bus.Conn())
	if err != nil {
		t.Fatal(err)
	}
	bucket, err := js.KeyValue(ctx, agentbus.ScaleBucket)
	if err != nil {
		t.Fatal(err)
	}
	if err := bucket.Delete(ctx, "pools."+pool); err != nil {
		t.Fatal(err)
	}
	for _, w := range []<-chan *agentbus.ScaleTarget{watch, watch2} {
		if got := nextTarget(t, ctx, w); got != nil {
			t.Errorf("after the delete a watch sent %+v, want nil", got)
		}
	}
	if _, ok, err := bus.ScaleTarget(ctx, pool); ok || err != nil {
		t.Errorf("ScaleTarget after the delete: %v %v", ok, err)
	}
	cancel()
	for _, w := range []<-chan *agentbus.ScaleTarget{watch, watch2} {
		select {
		case _, open := <-w:
			if open {
				<-w // a target sent before the end
			}
		case <-time.After(10 * time.Second):
			t.Fatal("a watch did not end with its context")
		}
	}
}

// TestScaleTargetsPerPool: each pool has a target of its own, in a key of
// its own with its own history; a watch sees its pool's target only.
func TestScaleTargetsPerPool(t *testing.T) {
	srv := embeddedtest.RunServer(t)
	bus := connectBus(t, srv)
	ctx := testCtx(t, time.Minute)
	watchA, err := bus.WatchScaleTarget(ctx, "pool-a")
	if err != nil {
		t.Fatal(err)
	}
	if got := nextTarget(t, ctx, watchA); got != nil {
		t.Fatalf("pool-a's watch began with %+v", got)
	}
	for i, set := range []struct {
		pool string
		n    int
	}{{"pool-a", 2}, {"pool-b", 7}, {"pool-b", 9}, {"pool-a", 4}} {
		if err := bus.SetScaleTarget(ctx, set.pool, agentbus.ScaleTarget{Consumers: set.n, Reason: fmt.Sprint("step ", i)}); err != nil {
			t.Fatal(err)
		}
		if set.pool == "pool-a" {
			// pool-b's targets, set in between, never reach pool-a's watch.
			if got := nextTarget(t, ctx, watchA); got == nil || got.Consumers != set.n {
				t.Errorf("pool-a's watch sent %+v, want %d consumers", got, set.n)
			}
		}
	}
	for pool, want := range map[string]int{"pool-a": 4, "pool-b": 9} {
		if got, ok, err := bus.ScaleTarget(ctx, pool); err != nil || !ok || got.Consumers != want {
			t.Errorf("ScaleTarget(%s) = %+v %v %v, want %d consumers", pool, got, ok, err, want)
		}
	}
	if _, ok, err := bus.ScaleTarget(ctx, "pool-c"); ok || err != nil {
		t.Errorf("a pool never set has a target: %v %v", ok, err)
	}
	// The history is per pool: pool-b's key holds its two decisions.
	js, _ := jetstream.New(bus.Conn())
	kv, err := js.KeyValue(ctx, agentbus.ScaleBucket)
	if err != nil {
		t.Fatal(err)
	}
	hist, err := kv.History(ctx, "pools.pool-b")
	if err != nil || len(hist) != 2 {
		t.Errorf("pool-b's history: %d entries, %v; want 2", len(hist), err)
	}
	keys, err := kv.Keys(ctx)
	if err != nil || len(keys) != 2 {
		t.Errorf("keys %v %v, want pools.pool-a and pools.pool-b", keys, err)
	}
}

// TestScaleTargetBadPool: a pool name that is not one subject token is
// refused before anything is read or written.
func TestScaleTargetBadPool(t *testing.T) {
	srv := embeddedtest.RunServer(t)
	bus := connectBus(t, srv)
	ctx := testCtx(t, 30*time.Second)
	for _, pool := range []string{"", "a.b", "a*", ">", "a b"} {
		t.Run(fmt.Sprintf("%q", pool), func(t *testing.T) {
			if err := bus.SetScaleTarget(ctx, pool, agentbus.ScaleTarget{Consumers: 1}); !errors.Is(err, placement.ErrInvalidPool) {
				t.Errorf("SetScaleTarget: %v, want ErrInvalidPool", err)
			}
			if _, _, err := bus.ScaleTarget(ctx, pool); !errors.Is(err, placement.ErrInvalidPool) {
				t.Errorf("ScaleTarget: %v, want ErrInvalidPool", err)
			}
			if _, err := bus.WatchScaleTarget(ctx, pool); !errors.Is(err, placement.ErrInvalidPool) {
				t.Errorf("WatchScaleTarget: %v, want ErrInvalidPool", err)
			}
		})
	}
	js, _ := jetstream.New(bus.Conn())
	if _, err := js.KeyValue(ctx, agentbus.ScaleBucket); !errors.Is(err, jetstream.ErrBucketNotFound) {
		t.Errorf("the bad names made the scale bucket: %v", err)
	}
}

// nextTarget returns the next value a target watch sends.
func nextTarget(t *testing.T, ctx context.Context, w <-chan *agentbus.ScaleTarget) *agentbus.ScaleTarget {
	t.Helper()
	select {
	case got := <-w:
		return got
	case <-ctx.Done():
		t.Fatal("the watch sent nothing")
		return nil
	}
}
