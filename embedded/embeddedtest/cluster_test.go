package embeddedtest_test

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/a2abus/a2abus/embedded/embeddedtest"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// TestClusterLeaderStopLosesNoAckedPublish publishes to an R3 stream without
// pause, stops the stream leader's node in the middle, and then checks that
// every publish the server acknowledged is in the stream, before and after
// the stopped node comes back.
func TestClusterLeaderStopLosesNoAckedPublish(t *testing.T) {
	c := embeddedtest.Cluster(t, 3)
	nc := c.Connect()
	embeddedtest.WaitPlacement(t, nc, 3) // every peer up before an R3 stream is placed
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	const stream = "R3"
	_, err = js.CreateStream(ctx, jetstream.StreamConfig{
		Name:     stream,
		Subjects: []string{"r3.>"},
		Replicas: 3,
		Storage:  jetstream.FileStorage,
	})
	if err != nil {
		t.Fatalf("create stream: %v", err)
	}
	leader := c.WaitStreamLeader(stream)

	// The publisher numbers its messages and records which were acked.
	var (
		mu      sync.Mutex
		acked   = map[int]uint64{} // message number -> stream sequence
		failed  int
		stopPub = make(chan struct{})
		pubDone = make(chan struct{})
	)
	ackedCount := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(acked)
	}
	go func() {
		defer close(pubDone)
		for i := 0; ; i++ {
			select {
			case <-stopPub:
				return
			default:
			}
			pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
			id := strconv.Itoa(i)
			ack, err := js.Publish(pctx, "r3.msg", []byte(id), jetstream.WithMsgID(id))
			pcancel()
			mu.Lock()
			if err != nil {
				failed++
			} else {
				acked[i] = ack.Sequence
			}
			mu.Unlock()
		}
	}()

	waitAcked := func(n int) {
		t.Helper()
		for ackedCount() < n {
			select {
			case <-ctx.Done():
				t.Fatalf("only %d publishes acked, want %d", ackedCount(), n)
			case <-time.After(5 * time.Millisecond):
			}
		}
	}
	waitAcked(300)
	before := ackedCount()
	c.Stop(leader)
	newLeader := c.WaitStreamLeader(stream)
	if newLeader == leader {
		t.Fatalf("stream leader is still the stopped node %d", leader)
	}
	waitAcked(before + 300) // publishing goes on under the new leader
	close(stopPub)
	<-pubDone

	mu.Lock()
	defer mu.Unlock()
	t.Logf("acked %d publishes, %d failed or timed out; leader moved from %s to %s",
		len(acked), failed, c.Name(leader), c.Name(newLeader))

	checkAllPresent(ctx, t, js, stream, acked)
	c.Restart(leader)
	c.WaitStreamLeader(stream)
	checkAllPresent(ctx, t, js, stream, acked)
}

// checkAllPresent reads the whole stream and fails for every acked message
// number that is missing or stored at another sequence than its ack said.
func checkAllPresent(ctx context.Context, t *testing.T, js jetstream.JetStream, stream string, acked map[int]uint64) {
	t.Helper()
	s, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatalf("stream info: %v", err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatalf("stream info: %v", err)
	}
	cons, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatalf("ordered consumer: %v", err)
	}
	seen := make(map[int]uint64, info.State.Msgs)
	for uint64(len(seen)) < info.State.Msgs {
		batch, err := cons.Fetch(1000, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatalf("fetch: %v", err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			id, err := strconv.Atoi(string(m.Data()))
			if err != nil {
				t.Fatalf("unexpected payload %q", m.Data())
			}
			md, err := m.Metadata()
			if err != nil {
				t.Fatal(err)
			}
			if _, dup := seen[id]; dup {
				t.Errorf("message %d stored twice (Nats-Msg-Id dedupe failed)", id)
			}
			seen[id] = md.Sequence.Stream
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			t.Fatalf("fetch: %v", err)
		}
		if n == 0 {
			t.Fatalf("stream stopped yielding messages at %d of %d", len(seen), info.State.Msgs)
		}
	}
	var lost []string
	for id, seq := range acked {
		got, ok := seen[id]
		switch {
		case !ok:
			lost = append(lost, strconv.Itoa(id))
		case got != seq:
			t.Errorf("message %d acked at sequence %d, stored at %d", id, seq, got)
		}
	}
	if len(lost) > 0 {
		t.Fatalf("%d acknowledged publishes lost: %v", len(lost), lost)
	}
	t.Logf("all %d acknowledged publishes present among %d stored", len(acked), len(seen))
}
