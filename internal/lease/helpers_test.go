package lease_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/a2abus/a2abus/internal/lease"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// testCtx bounds a test's calls; the bound is generous, not a measurement.
func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func newJS(t *testing.T, nc *nats.Conn) jetstream.JetStream {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// newLease makes a lease on key whose TTL is kv's.
func newLease(t *testing.T, kv jetstream.KeyValue, key string, opts ...lease.Option) *lease.Lease {
	t.Helper()
	ttl := longTTL
	if st, err := kv.Status(testCtx(t)); err != nil {
		t.Fatal(err)
	} else if st.TTL() > 0 {
		ttl = st.TTL()
	}
	l, err := lease.New(kv, key, ttl, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func acquire(l *lease.Lease, value string) func(context.Context) error {
	return func(ctx context.Context) error { return l.Acquire(ctx, []byte(value)) }
}

func renew(l *lease.Lease, value string) func(context.Context) error {
	return func(ctx context.Context) error { return l.Renew(ctx, []byte(value)) }
}

// waitFor polls cond until it holds, failing the test with what after a
// generous bound (not a measurement).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after 30s: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// lossy is a bucket whose next write, once armed, is applied by the server
// but answered with a timeout, as when a reply is lost in a leader change.
type lossy struct {
	jetstream.KeyValue
	loseNext atomic.Bool
}

func (k *lossy) lose(rev uint64, err error) (uint64, error) {
	if err == nil && k.loseNext.CompareAndSwap(true, false) {
		return 0, context.DeadlineExceeded
	}
	return rev, err
}

func (k *lossy) Create(ctx context.Context, key string, value []byte, opts ...jetstream.KVCreateOpt) (uint64, error) {
	return k.lose(k.KeyValue.Create(ctx, key, value, opts...))
}

func (k *lossy) Update(ctx context.Context, key string, value []byte, rev uint64) (uint64, error) {
	return k.lose(k.KeyValue.Update(ctx, key, value, rev))
}

// slowServer is a bucket during whose Create time passes: it calls during
// before the write.
type slowServer struct {
	jetstream.KeyValue
	during func()
}

func (k *slowServer) Create(ctx context.Context, key string, value []byte, opts ...jetstream.KVCreateOpt) (uint64, error) {
	k.during()
	return k.KeyValue.Create(ctx, key, value, opts...)
}
