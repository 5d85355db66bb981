package agentbus_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/a2abus/a2abus/agentbus"
	"github.com/a2abus/a2abus/codec"
	"github.com/a2abus/a2abus/embedded/embeddedtest"
	"github.com/nats-io/nats.go/jetstream"
)

// TestEnsureBucketsAndMemberTTL: EnsureBuckets makes the registry and the
// members bucket with the TTL given; a member with another TTL is refused
// with a message naming both, rather than dropping out of its pool between
// heartbeats.
func TestEnsureBucketsAndMemberTTL(t *testing.T) {
	srv := embeddedtest.RunServer(t)
	bus := connectBus(t, srv)
	ctx := testCtx(t, time.Minute)
	if err := bus.EnsureBuckets(ctx, 3*time.Second); err != nil {
		t.Fatal(err)
	}
	js, _ := jetstream.New(embeddedtest.Connect(t, srv))
	for _, name := range []string{agentbus.PoolsBucket, agentbus.MembersBucket} {
		if _, err := js.KeyValue(ctx, name); err != nil {
			t.Errorf("bucket %s after EnsureBuckets: %v", name, err)
		}
	}
	if err := bus.EnsureBuckets(ctx, 3*time.Second); err != nil {
		t.Errorf("EnsureBuckets again: %v", err)
	}
	if err := bus.EnsureBuckets(ctx, 4*time.Second); !errors.Is(err, agentbus.ErrPoolMismatch) {
		t.Errorf("EnsureBuckets with another TTL: %v, want ErrPoolMismatch", err)
	}
	if err := bus.Handle("ttl", func(context.Context, *codec.Envelope) error { return nil }); err != nil {
		t.Fatal(err)
	}
	err := bus.Serve(ctx, agentbus.ServePartitions(1)) // the default TTL, 10 s
	if !errors.Is(err, agentbus.ErrPoolMismatch) {
		t.Fatalf("Serve with another member TTL: %v, want ErrPoolMismatch", err)
	}
	t.Log(err)
}
