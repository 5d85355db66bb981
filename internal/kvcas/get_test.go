package kvcas_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/a2abus/a2abus/embedded/embeddedtest"
	"github.com/a2abus/a2abus/internal/kvcas"
	"github.com/nats-io/nats.go/jetstream"
)

// TestGet: Get reads what was written last, at its revision, from the
// leader of an R3 bucket, whichever server the client is connected to; a
// deleted or purged key, a key never written and a missing bucket are
// told apart.
func TestGet(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := embeddedtest.Cluster(t, 3)
	nc := c.Connect()
	embeddedtest.WaitPlacement(t, nc, 3)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "leader_reads", Replicas: 3})
	if err != nil {
		t.Fatal(err)
	}
	for i := range c.Size() {
		reader := embeddedtest.Connect(t, c.Server(i))
		for n := range 20 {
			val := []byte{byte(i), byte(n)}
			rev, err := kv.Put(ctx, "k", val)
			if err != nil {
				t.Fatal(err)
			}
			e, err := kvcas.Get(ctx, reader, "leader_reads", "k")
			if err != nil || e.Revision != rev || string(e.Value) != string(val) || e.Key != "k" {
				t.Fatalf("server %d, write %d: got %+v, %v; want revision %d value %v", i, n, e, err, rev, val)
			}
		}
	}
	if _, err := kvcas.Get(ctx, nc, "leader_reads", "never"); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Fatalf("a key never written: %v, want ErrKeyNotFound", err)
	}
	if err := kv.Delete(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if _, err := kvcas.Get(ctx, nc, "leader_reads", "k"); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Fatalf("a deleted key: %v, want ErrKeyNotFound", err)
	}
	if _, err := kv.Put(ctx, "p", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := kv.Purge(ctx, "p"); err != nil {
		t.Fatal(err)
	}
	if _, err := kvcas.Get(ctx, nc, "leader_reads", "p"); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Fatalf("a purged key: %v, want ErrKeyNotFound", err)
	}
	if _, err := kvcas.Get(ctx, nc, "no_such_bucket", "k"); !errors.Is(err, jetstream.ErrBucketNotFound) {
		t.Fatalf("a missing bucket: %v, want ErrBucketNotFound", err)
	}
}
