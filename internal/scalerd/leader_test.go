package scalerd

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/a2abus/a2abus/embedded/embeddedtest"
	"github.com/a2abus/a2abus/internal/lease"
	"github.com/nats-io/nats.go/jetstream"
)

// hangingKV is a bucket whose updates, once hang is set, get no answer
// until release is closed, as a server that stopped answering would.
type hangingKV struct {
	jetstream.KeyValue
	hang     atomic.Bool
	inFlight atomic.Int32
	release  chan struct{}
}

func (k *hangingKV) Update(ctx context.Context, key string, value []byte, rev uint64) (uint64, error) {
	if !k.hang.Load() {
		return k.KeyValue.Update(ctx, key, value, rev)
	}
	k.inFlight.Add(1)
	defer k.inFlight.Add(-1)
	<-k.release
	return 0, context.DeadlineExceeded
}

// TestLeaderStopsAtTheLeaseDeadline: a leader whose refresh hangs stops
// leading at its lease's deadline, while the refresh still hangs, not once
// the refresh gives up: the deadline falls before the server can let the
// key expire and a standby take it.
func TestLeaderStopsAtTheLeaseDeadline(t *testing.T) {
	srv := embeddedtest.RunServer(t)
	js, err := jetstream.New(embeddedtest.Connect(t, srv))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const ttl = time.Second
	kv, err := lease.Bucket(ctx, js, LeaderBucket, "", ttl, 1)
	if err != nil {
		t.Fatal(err)
	}
	hkv := &hangingKV{KeyValue: kv, release: make(chan struct{})}
	changes := make(chan bool, 4)
	e, err := elect(hkv, "scalerd-a", ttl, embeddedtest.Logger(t), time.Now, func(leading bool) { changes <- leading })
	if err != nil {
		t.Fatal(err)
	}
	rctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { e.run(rctx, ttl/3) })
	var release sync.Once
	defer func() {
		release.Do(func() { close(hkv.release) })
		stop()
		wg.Wait()
		e.abdicate()
	}()
	next := func(what string) bool {
		t.Helper()
		select {
		case v := <-changes:
			return v
		case <-time.After(30 * time.Second):
			t.Fatalf("after 30s: no change: %s", what)
			return false
		}
	}
	if !next("scalerd-a leads") {
		t.Fatal("the first change reports not leading")
	}
	hkv.hang.Store(true)
	deadline := time.Now().Add(30 * time.Second)
	for hkv.inFlight.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("after 30s: no refresh hangs")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The refresh hangs until release: only the lease's deadline can end
	// the leadership now.
	if next("scalerd-a stops leading while its refresh hangs") {
		t.Fatal("a change reports leading again")
	}
	if d := e.l.Deadline(); d.IsZero() || time.Now().Before(d) {
		t.Errorf("stopped leading before the lease's deadline %v, or with no claim", d)
	}
	if hkv.inFlight.Load() == 0 {
		t.Error("the refresh no longer hangs")
	}
}
