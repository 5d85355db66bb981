package agentbus_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/a2abus/a2abus/agentbus"
	"github.com/a2abus/a2abus/codec"
	"github.com/a2abus/a2abus/embedded/embeddedtest"
	"github.com/nats-io/nats.go/jetstream"
)

// TestSeveralConsumersOnOneBus runs two member Serve calls on one bus: both
// join, share the groups, report themselves, and hand everything over when
// one stops; a ServeGroups call beside them is refused.
func TestSeveralConsumersOnOneBus(t *testing.T) {
	srv := embeddedtest.RunServer(t)
	bus := connectBus(t, srv, agentbus.WithGroups(16))
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
	opts := []agentbus.ServeOption{fastRetries, agentbus.ServeMemberTTL(2 * time.Second), agentbus.ServeAckWait(time.Second)}
	stopA := serve(t, bus, append(opts, agentbus.ServeMemberID("worker-a"))...)
	serve(t, bus, append(opts, agentbus.ServeMemberID("worker-b"))...)

	ctx := testCtx(t, time.Minute)
	var members []agentbus.Member
	waitFor(t, "two members that report CPU and share the 16 groups", func() bool {
		var err error
		members, err = bus.Members(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return len(members) == 2 && members[0].Groups+members[1].Groups == 16 && members[0].CPU >= 0
	})
	if members[0].ID != "worker-a" || members[1].ID != "worker-b" || members[0].HostCPU < 0 || members[0].CPU > 1 {
		t.Errorf("members %+v", members)
	}
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := bus.Serve(sctx, agentbus.ServeGroups(0)); err == nil {
		t.Error("ServeGroups beside member Serve calls succeeded")
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
	waitFor(t, "worker-b to hold all 16 groups", func() bool {
		ms, err := bus.Members(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return len(ms) == 1 && ms[0].ID == "worker-b" && ms[0].Groups == 16
	})
	mu.Lock()
	defer mu.Unlock()
	for agent, n := range handled {
		if n != each {
			t.Errorf("%s handled %d, want %d", agent, n, each)
		}
	}
}

func TestScaleTarget(t *testing.T) {
	srv := embeddedtest.RunServer(t)
	bus := connectBus(t, srv)
	ctx := testCtx(t, time.Minute)
	if _, ok, err := bus.ScaleTarget(ctx); ok || err != nil {
		t.Fatalf("a target before any was set: %v %v", ok, err)
	}
	if members, err := bus.Members(ctx); err != nil || len(members) != 0 {
		t.Fatalf("members before any joined: %v %v", members, err)
	}
	wctx, cancel := context.WithCancel(ctx)
	watch, err := bus.WatchScaleTarget(wctx)
	if err != nil {
		t.Fatal(err)
	}
	next := func(w <-chan *agentbus.ScaleTarget) *agentbus.ScaleTarget {
		t.Helper()
		select {
		case got := <-w:
			return got
		case <-ctx.Done():
			t.Fatal("the watch sent nothing")
			return nil
		}
	}
	if got := next(watch); got != nil {
		t.Fatalf("a watch before any target began with %+v, want nil", got)
	}
	want := agentbus.ScaleTarget{Consumers: 3, Reason: "backlog 5400 > 1000", At: time.Now().UTC().Truncate(time.Millisecond), By: "scalerd-1"}
	if err := bus.SetScaleTarget(ctx, want); err != nil {
		t.Fatal(err)
	}
	if got := next(watch); got == nil || *got != want {
		t.Errorf("watched %+v, want %+v", got, want)
	}
	got, ok, err := bus.ScaleTarget(ctx)
	if !ok || err != nil || got != want {
		t.Errorf("ScaleTarget = %+v %v %v", got, ok, err)
	}
	if err := bus.SetScaleTarget(ctx, agentbus.ScaleTarget{Consumers: -1}); err == nil {
		t.Error("a negative target was stored")
	}
	// A new watch starts with the current target.
	watch2, err := bus.WatchScaleTarget(wctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := next(watch2); got == nil || got.Consumers != 3 {
		t.Errorf("a new watch began with %+v", got)
	}
	// An operator deletes the target: the watches say there is none.
	kv, err := jetstream.New(bus.Conn())
	if err != nil {
		t.Fatal(err)
	}
	bucket, err := kv.KeyValue(ctx, agentbus.ScaleBucket)
	if err != nil {
		t.Fatal(err)
	}
	if err := bucket.Delete(ctx, "consumers"); err != nil {
		t.Fatal(err)
	}
	for _, w := range []<-chan *agentbus.ScaleTarget{watch, watch2} {
		if got := next(w); got != nil {
			t.Errorf("after the delete a watch sent %+v, want nil", got)
		}
	}
	if _, ok, err := bus.ScaleTarget(ctx); ok || err != nil {
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
