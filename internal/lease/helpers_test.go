package lease_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
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

// faultKV is a bucket with faults injected into its writes (Create,
// Update, Delete): once loseNext is set, the next write that succeeds is
// answered with a timeout, as when a reply is lost in a leader change; the
// next refuse writes are refused with err_code 10164 without being made,
// as a stream leader refuses a write while another to the key is in
// process. It counts the err_codes the server answered.
type faultKV struct {
	jetstream.KeyValue
	loseNext atomic.Bool
	refuse   atomic.Int32

	mu    sync.Mutex
	codes map[jetstream.ErrorCode]int
}

// errBusy is a 10164 refusal as nats.go returns it from Update and Delete.
var errBusy = fmt.Errorf("%w: %w", &jetstream.APIError{Code: 400, ErrorCode: jetstream.JSErrCodeStreamWrongLastSequenceConstant,
	Description: "wrong last sequence"}, jetstream.ErrKeyRevisionMismatch)

func (k *faultKV) write(w func() (uint64, error)) (uint64, error) {
	if k.refuse.Load() > 0 && k.refuse.Add(-1) >= 0 {
		return 0, errBusy
	}
	rev, err := w()
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		k.mu.Lock()
		if k.codes == nil {
			k.codes = map[jetstream.ErrorCode]int{}
		}
		k.codes[apiErr.ErrorCode]++
		k.mu.Unlock()
	}
	if err == nil && k.loseNext.CompareAndSwap(true, false) {
		return 0, context.DeadlineExceeded
	}
	return rev, err
}

// code returns how many writes the server refused with code.
func (k *faultKV) code(code jetstream.ErrorCode) int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.codes[code]
}

func (k *faultKV) Create(ctx context.Context, key string, value []byte, opts ...jetstream.KVCreateOpt) (uint64, error) {
	return k.write(func() (uint64, error) { return k.KeyValue.Create(ctx, key, value, opts...) })
}

func (k *faultKV) Update(ctx context.Context, key string, value []byte, rev uint64) (uint64, error) {
	return k.write(func() (uint64, error) { return k.KeyValue.Update(ctx, key, value, rev) })
}

func (k *faultKV) Delete(ctx context.Context, key string, opts ...jetstream.KVDeleteOpt) error {
	_, err := k.write(func() (uint64, error) { return 0, k.KeyValue.Delete(ctx, key, opts...) })
	return err
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
