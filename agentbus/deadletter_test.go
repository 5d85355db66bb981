package agentbus_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/a2abus/a2abus/agentbus"
	"github.com/a2abus/a2abus/codec"
	"github.com/a2abus/a2abus/embedded/embeddedtest"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// TestFullDeadLetterStreamHoldsTheBatch: when the dead-letter stream is
// full (discard new), an envelope that failed for good is neither dropped,
// nor released to loop, nor left in the A2A stream past its last
// delivery: its batch stays held while the dead letter is retried, the
// failure is counted and reported (DeadLetterHealth), and once the
// dead-letter stream has room the dead letter is stored and the batch
// acknowledged.
func TestFullDeadLetterStreamHoldsTheBatch(t *testing.T) {
	srv := embeddedtest.RunServer(t)
	reg := prometheus.NewRegistry()
	host := connectBus(t, srv, agentbus.WithRegisterer(reg))
	client := connectBus(t, srv)
	nc := embeddedtest.Connect(t, srv)
	ctx := testCtx(t, 2*time.Minute)
	js, _ := jetstream.New(nc)

	// Fill the dead-letter stream: one message, at most one kept.
	dlq, err := js.Stream(ctx, agentbus.DeadLetterStreamName)
	if err != nil {
		t.Fatal(err)
	}
	cfg := dlq.CachedInfo().Config
	cfg.MaxMsgs = 1
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, agentbus.DeadLetterSubjectPrefix+".filler", []byte("x")); err != nil {
		t.Fatal(err)
	}

	var calls atomic.Int64
	if err := host.Handle("poison", func(context.Context, *codec.Envelope) error {
		calls.Add(1)
		return errors.New("cannot handle this")
	}); err != nil {
		t.Fatal(err)
	}
	declarePool(t, host, agentbus.PoolConfig{Name: "poison", Partitions: 1}, "poison")
	serve(t, host, agentbus.ServePartitions(1), agentbus.ServeMaxAttempts(1), agentbus.ServeAckWait(time.Second),
		agentbus.ServeMemberTTL(2*time.Second))
	if err := client.Send(ctx, &codec.Envelope{From: "a", To: "poison", Kind: "bad"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a dead-letter failure counted", func() bool {
		return gathered(t, reg, "a2abus_receive_dead_letter_failures_total") >= 1
	})
	if failing, _, reason := host.DeadLetterHealth(); !failing || reason == "" {
		t.Errorf("DeadLetterHealth() = %v, %q; want failing with a reason", failing, reason)
	}
	// Held, not released: one handler call, no redelivery, still stored.
	if n := calls.Load(); n != 1 {
		t.Errorf("handler called %d times while the dead letter waits, want 1 (the batch was released and handled again)", n)
	}
	if got := gathered(t, reg, "a2abus_receive_redelivered_batches_total"); got != 0 {
		t.Errorf("%v redeliveries while the batch is held, want 0", got)
	}
	if n := streamMsgs(t, nc, agentbus.StreamName); n != 1 {
		t.Errorf("%d messages in %s while the dead letter waits, want 1", n, agentbus.StreamName)
	}

	// Room again: the dead letter goes in and the batch is acknowledged.
	cfg.MaxMsgs = -1
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the batch acknowledged", func() bool { return streamMsgs(t, nc, agentbus.StreamName) == 0 })
	var found bool
	for _, m := range deadLetters(t, nc) {
		found = found || m.Header.Get(agentbus.HeaderDLQReason) == "cannot handle this"
	}
	if !found {
		t.Error("the dead letter with its reason is not in the dead-letter stream")
	}
	if failing, _, _ := host.DeadLetterHealth(); failing {
		t.Error("DeadLetterHealth still failing after the dead letter was stored")
	}
}
