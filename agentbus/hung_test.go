package agentbus_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/a2abus/a2abus/agentbus"
	"github.com/a2abus/a2abus/codec"
	"github.com/a2abus/a2abus/embedded/embeddedtest"
	"github.com/prometheus/client_golang/prometheus"
)

// TestHungHandlerHoldsNothing: a handler that ignores its canceled context
// past its timeout and a grace is reported (a2abus_receive_hung_handlers),
// frees its worker (another conversation goes on with ServeWorkers(1)) and
// gives its batch up, so the envelope is handled by the batch's next
// delivery instead of being kept alive for as long as the handler hangs.
func TestHungHandlerHoldsNothing(t *testing.T) {
	srv := embeddedtest.RunServer(t)
	reg := prometheus.NewRegistry()
	host := connectBus(t, srv, agentbus.WithRegisterer(reg))
	client := connectBus(t, srv)
	release := make(chan struct{})
	var calls, handled atomic.Int64
	other := make(chan struct{}, 1)
	if err := host.Handle("stuck", func(ctx context.Context, env *codec.Envelope) error {
		if env.Kind == "other" {
			other <- struct{}{}
			return nil
		}
		if calls.Add(1) == 1 {
			<-release // ignores ctx, as a broken handler would
			return nil
		}
		handled.Add(1)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	declarePool(t, host, agentbus.PoolConfig{Name: "stuck", Partitions: 1}, "stuck")
	serve(t, host, agentbus.ServePartitions(1), agentbus.ServeWorkers(1), agentbus.ServeAckWait(time.Second),
		agentbus.ServeHandlerTimeout(200*time.Millisecond), agentbus.ServeMemberTTL(2*time.Second))
	defer close(release)

	ctx := testCtx(t, time.Minute)
	if err := client.Send(ctx, &codec.Envelope{From: "a", To: "stuck", Kind: "hang"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the hung handler reported", func() bool { return gathered(t, reg, "a2abus_receive_hung_handlers") == 1 })
	// Its batch was given up: the next delivery handles the envelope, in
	// the one worker slot the hung handler no longer holds.
	waitFor(t, "the envelope handled by its next delivery", func() bool { return handled.Load() == 1 })
	if err := client.Send(ctx, &codec.Envelope{From: "b", To: "stuck", Kind: "other"}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-other:
	case <-ctx.Done():
		t.Fatal("another conversation waited behind the hung handler")
	}
}
