package agentbus_test

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/a2abus/a2abus/agentbus"
	"github.com/a2abus/a2abus/codec"
	"github.com/a2abus/a2abus/embedded"
	"github.com/a2abus/a2abus/embedded/embeddedtest"
	"github.com/a2abus/a2abus/placement"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// serve runs bus.Serve until the test ends (or stop is called) and fails
// the test if Serve returns an error.
func serve(t *testing.T, bus *agentbus.Bus, opts ...agentbus.ServeOption) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- bus.Serve(ctx, opts...) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Serve: %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Error("Serve did not return 30 s after its context ended")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// fastRetries keeps handler retries short in tests.
var fastRetries = agentbus.ServeRetryBackoff(time.Millisecond, 5*time.Millisecond)

// waitFor polls cond until it holds or a minute passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func streamMsgs(t *testing.T, nc *nats.Conn, stream string) uint64 {
	t.Helper()
	js, _ := jetstream.New(nc)
	s, err := js.Stream(context.Background(), stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

// deadLetters returns the headers and envelopes (nil for whole frames) in
// the dead-letter stream.
func deadLetters(t *testing.T, nc *nats.Conn) []*jetstream.RawStreamMsg {
	t.Helper()
	js, _ := jetstream.New(nc)
	s, err := js.Stream(context.Background(), agentbus.DeadLetterStreamName)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var out []*jetstream.RawStreamMsg
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(context.Background(), seq)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

// TestServeHandlesEverythingOnceInOrder sends from two senders to 24
// agents, starting to send while Serve is still declaring its pool (the
// sends wait for the declaration): every envelope is handled once, each
// (agent, sender) conversation in send order.
func TestServeHandlesEverythingOnceInOrder(t *testing.T) {
	srv := embeddedtest.RunServer(t)
	bus := connectBus(t, srv, agentbus.WithUnknownAgents(agentbus.WaitUnknown))
	const agents, senders, perPair = 24, 2, 120

	var mu sync.Mutex
	got := map[string][]string{} // agent -> IDs in handling order
	for a := range agents {
		agent := fmt.Sprintf("agent-%d", a)
		if err := bus.Handle(agent, func(_ context.Context, env *codec.Envelope) error {
			mu.Lock()
			got[agent] = append(got[agent], env.ID)
			mu.Unlock()
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	serve(t, bus, fastRetries, agentbus.ServePartitions(8))

	ctx := testCtx(t, time.Minute)
	var wg sync.WaitGroup
	for s := range senders {
		wg.Go(func() {
			for i := range perPair {
				for a := range agents {
					id := fmt.Sprintf("%d/%05d", s, i)
					if _, err := bus.SendAsync(ctx, textEnvelope(fmt.Sprintf("sender-%d", s), fmt.Sprintf("agent-%d", a), id, "x")); err != nil {
						t.Error(err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	if err := bus.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	total := agents * senders * perPair
	waitFor(t, "every message handled", func() bool {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, ids := range got {
			n += len(ids)
		}
		return n >= total
	})
	nc := embeddedtest.Connect(t, srv)
	waitFor(t, "the work queue to empty", func() bool { return streamMsgs(t, nc, agentbus.StreamName) == 0 })

	mu.Lock()
	defer mu.Unlock()
	n := 0
	for agent, ids := range got {
		seen := map[string]bool{}
		last := map[byte]string{}
		for _, id := range ids {
			if seen[id] {
				t.Fatalf("%s handled %s twice", agent, id)
			}
			seen[id] = true
			if prev := last[id[0]]; prev >= id {
				t.Fatalf("%s handled %s after %s: order broken", agent, id, prev)
			}
			last[id[0]] = id
		}
		n += len(ids)
	}
	if n != total {
		t.Fatalf("handled %d, want %d", n, total)
	}
}

func TestServeRetriesInOrderThenDeadLetters(t *testing.T) {
	srv := embeddedtest.RunServer(t)
	bus := connectBus(t, srv)
	var mu sync.Mutex
	var handled []string
	attempts := map[string]int{}
	err := bus.Handle("flaky", func(_ context.Context, env *codec.Envelope) error {
		mu.Lock()
		defer mu.Unlock()
		attempts[env.ID]++
		switch {
		case env.ID == "m1" && attempts[env.ID] < 3: // recovers on the third attempt
			return errors.New("temporarily unavailable")
		case env.ID == "m2": // never recovers
			return errors.New("cannot parse the request")
		case env.ID == "m3":
			panic("handler bug")
		}
		if int(env.Attempt) != attempts[env.ID]-1 {
			t.Errorf("%s: Attempt %d on call %d", env.ID, env.Attempt, attempts[env.ID])
		}
		handled = append(handled, env.ID)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// "nobody" is declared in the pool but its members have no handler
	// for it (a handler removed from a pool's processes): its envelopes
	// are retried and dead-lettered with ErrNoHandler.
	declarePool(t, bus, agentbus.PoolConfig{Name: "retries", Partitions: 4}, "flaky", "nobody")
	ctx := testCtx(t, time.Minute)
	for _, id := range []string{"m0", "m1", "m2", "m3", "m4"} {
		if _, err := bus.SendAsync(ctx, textEnvelope("a", "flaky", id, "x")); err != nil {
			t.Fatal(err)
		}
	}
	if err := bus.Send(ctx, textEnvelope("a", "nobody", "m9", "x")); err != nil {
		t.Fatal(err)
	}
	serve(t, bus, fastRetries, agentbus.ServeMaxAttempts(4), agentbus.ServePool("retries"), agentbus.ServePartitions(4))

	nc := embeddedtest.Connect(t, srv)
	waitFor(t, "the work queue to empty", func() bool { return streamMsgs(t, nc, agentbus.StreamName) == 0 })
	mu.Lock()
	if strings.Join(handled, ",") != "m0,m1,m4" {
		t.Errorf("handled %v, want m0,m1,m4 in order", handled)
	}
	if attempts["m2"] != 4 {
		t.Errorf("m2 tried %d times, want the max attempts 4", attempts["m2"])
	}
	mu.Unlock()

	dls := deadLetters(t, nc)
	reasons := map[string]string{}
	c := codec.MustNew()
	for _, m := range dls {
		var env codec.Envelope
		if err := c.DecodeEnvelope(m.Data, &env); err != nil {
			t.Fatalf("dead letter %d: %v", m.Sequence, err)
		}
		reasons[env.ID] = m.Header.Get(agentbus.HeaderDLQReason) + " after " + m.Header.Get(agentbus.HeaderDLQAttempts)
	}
	for id, want := range map[string]string{
		"m2": "cannot parse the request after 4",
		"m3": "handler panicked: handler bug after 4",
		"m9": "of pool retries after 4",
	} {
		if !strings.Contains(reasons[id], want) {
			t.Errorf("dead letter of %s: %q, want %q", id, reasons[id], want)
		}
	}
	if want := "no handler for agent nobody on member "; !strings.Contains(reasons["m9"], want) {
		t.Errorf("dead letter of m9: %q, want %q (naming the member)", reasons["m9"], want)
	}
	if len(dls) != 3 {
		t.Errorf("%d dead letters, want 3", len(dls))
	}
}

func TestServePoisonFrames(t *testing.T) {
	srv := embeddedtest.RunServer(t)
	reg := prometheus.NewPedanticRegistry()
	bus := connectBus(t, srv, agentbus.WithRegisterer(reg))
	handled := make(chan string, 10)
	if err := bus.Handle("victim", func(_ context.Context, env *codec.Envelope) error {
		handled <- env.ID
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	nc := embeddedtest.Connect(t, srv)
	js, _ := jetstream.New(nc)
	// The poison frames go to the partition of the envelope sent after
	// them (agent victim, conversation a), which must still be handled.
	pool := declarePool(t, bus, agentbus.PoolConfig{Name: "victim", Partitions: 4}, "victim")
	part := pool.Partition("victim", "a")
	subject, _ := pool.Subject("victim", part)
	ctx := testCtx(t, time.Minute)
	for _, data := range [][]byte{[]byte("not a frame"), []byte("RAW\xc1"), []byte("LZ4\x04\x22\x4d\x18garbage")} {
		if _, err := js.Publish(ctx, subject, data); err != nil {
			t.Fatal(err)
		}
	}
	if err := bus.Send(ctx, textEnvelope("a", "victim", "after-poison", "x")); err != nil {
		t.Fatal(err)
	}
	serve(t, bus, fastRetries, agentbus.ServePartitions(4))
	select {
	case id := <-handled:
		if id != "after-poison" {
			t.Fatalf("handled %q", id)
		}
	case <-ctx.Done():
		t.Fatal("the message after the poison frames was not handled")
	}
	waitFor(t, "the work queue to empty", func() bool { return streamMsgs(t, nc, agentbus.StreamName) == 0 })
	dls := deadLetters(t, nc)
	if len(dls) != 3 {
		t.Fatalf("%d dead letters, want the 3 poison frames", len(dls))
	}
	consumer, _ := pool.ConsumerName(part)
	// The handled envelope is counted once its batch's ack is confirmed,
	// which may come just after the stream let the batch go.
	waitFor(t, "the handled envelope counted", func() bool { return gathered(t, reg, "a2abus_receive_partition_handled_total") == 1 })
	for name, want := range map[string]float64{"a2abus_receive_partition_dead_letters_total": 3, "a2abus_receive_partition_handled_total": 1} {
		if got := gatheredSeries(t, reg, name, consumer); got != want {
			t.Errorf("%s{consumer=%q} = %v, want %v", name, consumer, got, want)
		}
	}
	if got := gathered(t, reg, "a2abus_receive_poison_frames_total"); got != 3 {
		t.Errorf("a2abus_receive_poison_frames_total = %v, want 3", got)
	}
	if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) > 0 {
		t.Errorf("metric lint: %v %v", problems, err)
	}
	for _, m := range dls {
		if r := m.Header.Get(agentbus.HeaderDLQReason); !strings.Contains(r, "undecodable frame") {
			t.Errorf("reason %q", r)
		}
		if m.Header.Get(agentbus.HeaderDLQSubject) != subject {
			t.Errorf("original subject %q, want %q", m.Header.Get(agentbus.HeaderDLQSubject), subject)
		}
	}
}

// TestServeStopAndResume stops Serve while messages wait and starts it
// again on another bus: everything is handled once, in send order.
func TestServeStopAndResume(t *testing.T) {
	srv := embeddedtest.RunServer(t)
	first := connectBus(t, srv)
	var mu sync.Mutex
	count := map[string]int{}
	var order []string
	h := func(_ context.Context, env *codec.Envelope) error {
		mu.Lock()
		count[env.ID]++
		order = append(order, env.ID)
		mu.Unlock()
		return nil
	}
	if err := first.Handle("worker", h); err != nil {
		t.Fatal(err)
	}
	declarePool(t, first, agentbus.PoolConfig{Name: "worker", Partitions: 4}, "worker")
	ctx := testCtx(t, time.Minute)
	for i := range 200 {
		if _, err := first.SendAsync(ctx, textEnvelope("a", "worker", fmt.Sprintf("m%03d", i), "x")); err != nil {
			t.Fatal(err)
		}
	}
	if err := first.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	stop := serve(t, first, fastRetries, agentbus.ServePartitions(4))
	waitFor(t, "some messages handled", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(count) > 0
	})
	stop()

	second := connectBus(t, srv)
	if err := second.Handle("worker", h); err != nil {
		t.Fatal(err)
	}
	serve(t, second, fastRetries, agentbus.ServePartitions(4))
	waitFor(t, "all 200 handled", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(count) == 200
	})
	mu.Lock()
	defer mu.Unlock()
	for id, n := range count {
		if n != 1 {
			t.Errorf("%s handled %d times", id, n)
		}
	}
	for i, id := range order {
		if want := fmt.Sprintf("m%03d", i); id != want {
			t.Fatalf("handled %s as envelope %d, want %s: order broken across the restart", id, i, want)
		}
	}
}

func TestHandleRejectsBadInput(t *testing.T) {
	bus := connectBus(t, embeddedtest.RunServer(t, embedded.WithoutListener()))
	if err := bus.Handle("a.b", func(context.Context, *codec.Envelope) error { return nil }); !errors.Is(err, agentbus.ErrInvalidAgentID) {
		t.Errorf("Handle(a.b) = %v", err)
	}
	if err := bus.Handle("a", nil); err == nil {
		t.Error("Handle with a nil handler succeeded")
	}
	if err := bus.Serve(context.Background(), agentbus.ServeWorkers(0)); err == nil {
		t.Error("Serve with 0 workers succeeded")
	}
}

// TestServeMaxDeliverDeadLetters delivers a batch MaxDeliver-1 times
// without an ack (as consumers that crash on it would), then serves: the
// batch's last delivery is dead-lettered, not handled, and the agent's next
// batch is handled.
func TestServeMaxDeliverDeadLetters(t *testing.T) {
	srv := embeddedtest.RunServer(t)
	bus := connectBus(t, srv)
	ctx := testCtx(t, time.Minute)
	pool := declarePool(t, bus, agentbus.PoolConfig{Name: "crasher", Partitions: 4}, "crasher")
	if err := bus.Send(ctx, textEnvelope("a", "crasher", "deadly", "x")); err != nil {
		t.Fatal(err)
	}

	// The partition's durable consumer, as Serve makes it; each Nak
	// redelivers at once.
	nc := embeddedtest.Connect(t, srv)
	js, _ := jetstream.New(nc)
	cfg, err := agentbus.ConsumerConfig(pool, pool.Partition("crasher", "a"), agentbus.DefaultAckWait)
	if err != nil {
		t.Fatal(err)
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, agentbus.StreamName, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i < agentbus.MaxDeliver; i++ {
		batch, err := cons.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			if md, _ := m.Metadata(); md == nil || md.NumDelivered != uint64(i) {
				t.Fatalf("fetch %d: metadata %+v", i, md)
			}
			if err := m.Nak(); err != nil {
				t.Fatal(err)
			}
		}
		if n != 1 {
			t.Fatalf("fetch %d: %d messages (%v)", i, n, batch.Error())
		}
	}
	if err := bus.Send(ctx, textEnvelope("a", "crasher", "next", "x")); err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	var handled []string
	if err := bus.Handle("crasher", func(_ context.Context, env *codec.Envelope) error {
		mu.Lock()
		handled = append(handled, env.ID)
		mu.Unlock()
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	serve(t, bus, agentbus.ServePartitions(4))
	waitFor(t, "the work queue to empty", func() bool { return streamMsgs(t, nc, agentbus.StreamName) == 0 })
	mu.Lock()
	if strings.Join(handled, ",") != "next" {
		t.Errorf("handled %v, want only next", handled)
	}
	mu.Unlock()
	dls := deadLetters(t, nc)
	if len(dls) != 1 {
		t.Fatalf("%d dead letters, want 1", len(dls))
	}
	reason := dls[0].Header.Get(agentbus.HeaderDLQReason)
	if want := fmt.Sprintf("delivered %d times", agentbus.MaxDeliver); !strings.Contains(reason, want) {
		t.Errorf("reason %q, want it to say %q", reason, want)
	}
	envs, err := codec.MustNew().DecodeBatch(nil, dls[0].Data)
	if err != nil || len(envs) != 1 || envs[0].ID != "deadly" {
		t.Errorf("dead letter holds %v (%v), want the batch of deadly", envs, err)
	}
}

// TestHandlerMayKeepEnvelopes: envelopes stay as delivered after their
// handler returns, across batches (Handler's promise).
func TestHandlerMayKeepEnvelopes(t *testing.T) {
	srv := embeddedtest.RunServer(t)
	bus := connectBus(t, srv, agentbus.WithUnknownAgents(agentbus.WaitUnknown))
	var mu sync.Mutex
	var kept []*codec.Envelope
	if err := bus.Handle("keeper", func(_ context.Context, env *codec.Envelope) error {
		mu.Lock()
		kept = append(kept, env)
		mu.Unlock()
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	serve(t, bus, agentbus.ServePartitions(8))
	ctx := testCtx(t, time.Minute)
	const n = 200
	for i := range n {
		if _, err := bus.SendAsync(ctx, textEnvelope("a", "keeper", fmt.Sprintf("m-%d", i), fmt.Sprintf("text %d", i))); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "every envelope handled", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(kept) == n
	})
	mu.Lock()
	defer mu.Unlock()
	for i, env := range kept {
		if want := fmt.Sprintf("text %d", i); env.ID != fmt.Sprintf("m-%d", i) || env.Message.Text() != want {
			t.Fatalf("kept envelope %d is now %s %q", i, env.ID, env.Message.Text())
		}
	}
}

// llmTime returns a handler time like a short model call's, 50 to 100 ms,
// that varies with id.
func llmTime(id string) time.Duration {
	return 50*time.Millisecond + time.Duration(crc32.ChecksumIEEE([]byte(id))%51)*time.Millisecond
}

// TestServeOrderPerConversation sends to one agent in twelve
// conversations at once, told apart by their senders, by the context-ID
// header and by the message's context ID: each conversation's envelopes
// are handled once each, one at a time, in send order.
func TestServeOrderPerConversation(t *testing.T) {
	srv := embeddedtest.RunServer(t)
	bus := connectBus(t, srv, agentbus.WithUnknownAgents(agentbus.WaitUnknown))
	log := newKeyLog()
	if err := bus.Handle("busy", func(_ context.Context, env *codec.Envelope) error {
		key := env.ID[:strings.IndexByte(env.ID, '/')]
		defer log.start(key, env.ID)()
		time.Sleep(llmTime(env.ID))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	serve(t, bus, fastRetries, agentbus.ServePartitions(8))

	const perConv = 12
	ctx := testCtx(t, 2*time.Minute)
	want := map[string][]string{}
	var convs []func(i int) *codec.Envelope
	for c := range 4 {
		key := fmt.Sprintf("from-%d", c)
		convs = append(convs, func(i int) *codec.Envelope { return textEnvelope(key, "busy", fmt.Sprintf("%s/%03d", key, i), "x") })
	}
	for c := range 4 {
		key := fmt.Sprintf("header-%d", c)
		convs = append(convs, func(i int) *codec.Envelope {
			env := textEnvelope("shared", "busy", fmt.Sprintf("%s/%03d", key, i), "x")
			env.Headers.Set(agentbus.HeaderContextID, key)
			return env
		})
	}
	for c := range 4 {
		key := fmt.Sprintf("message-%d", c)
		convs = append(convs, func(i int) *codec.Envelope {
			env := textEnvelope("shared", "busy", fmt.Sprintf("%s/%03d", key, i), "x")
			env.Message.ContextID = key
			return env
		})
	}
	var wg sync.WaitGroup
	for _, conv := range convs {
		key := conv(0).ID[:strings.IndexByte(conv(0).ID, '/')]
		for i := range perConv {
			want[key] = append(want[key], conv(i).ID)
		}
		wg.Go(func() {
			for i := range perConv {
				if _, err := bus.SendAsync(ctx, conv(i)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := bus.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	total := len(convs) * perConv
	waitFor(t, "every envelope handled", func() bool { return log.count() >= total })
	nc := embeddedtest.Connect(t, srv)
	waitFor(t, "the work queue to empty", func() bool { return streamMsgs(t, nc, agentbus.StreamName) == 0 })
	log.check(t, want)
	t.Logf("%d envelopes in %d conversations; at most %d handlers ran at once", total, len(convs), log.maxAll)
}

// TestServeSlowConversationDoesNotHoldBackOthers: while one conversation's
// handler is slow, another conversation of the same agent (in another
// partition) is handled to its end. The slow handler runs 2 s and in any
// case until the other conversation is done (at most 30 s), so the test
// compares events, not times: if the other conversation waited for the
// slow handler, it would end after it.
func TestServeSlowConversationDoesNotHoldBackOthers(t *testing.T) {
	srv := embeddedtest.RunServer(t)
	bus := connectBus(t, srv)
	pool := declarePool(t, bus, agentbus.PoolConfig{Name: "busy", Partitions: 8}, "busy")
	other := ""
	for i := 0; other == ""; i++ {
		if c := fmt.Sprintf("quick-%d", i); pool.Partition("busy", c) != pool.Partition("busy", "slow") {
			other = c
		}
	}
	const quick = 5
	var (
		slowStarted = make(chan struct{})
		othersDone  = make(chan struct{})
		slowEnded   atomic.Bool
		whileSlow   atomic.Bool // the other conversation ended while the slow handler ran
		slowCtxErr  atomic.Value
		othersOnce  sync.Once
		log         = newKeyLog()
	)
	if err := bus.Handle("busy", func(ctx context.Context, env *codec.Envelope) error {
		defer log.start(env.From, env.ID)()
		if env.ID == "slow-0" {
			close(slowStarted)
			atLeast := time.After(2 * time.Second)
			select {
			case <-othersDone:
			case <-time.After(30 * time.Second):
			}
			<-atLeast
			slowCtxErr.Store(fmt.Sprint(ctx.Err()))
			slowEnded.Store(true)
			return nil
		}
		if env.From == other {
			time.Sleep(llmTime(env.ID))
			if env.ID == fmt.Sprintf("quick-%d", quick-1) {
				othersOnce.Do(func() {
					whileSlow.Store(!slowEnded.Load())
					close(othersDone)
				})
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	serve(t, bus, fastRetries, agentbus.ServePartitions(8))
	ctx := testCtx(t, time.Minute)
	if err := bus.Send(ctx, textEnvelope("slow", "busy", "slow-0", "x")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-slowStarted:
	case <-ctx.Done():
		t.Fatal("the slow handler never started")
	}
	want := map[string][]string{"slow": {"slow-0", "slow-1"}}
	for i := range quick {
		id := fmt.Sprintf("quick-%d", i)
		want[other] = append(want[other], id)
		if _, err := bus.SendAsync(ctx, textEnvelope(other, "busy", id, "x")); err != nil {
			t.Fatal(err)
		}
	}
	// The slow conversation's next envelope waits for its first.
	if err := bus.Send(ctx, textEnvelope("slow", "busy", "slow-1", "x")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "every envelope handled", func() bool { return log.finished() >= quick+2 })
	if !whileSlow.Load() {
		t.Errorf("conversation %s ended after the slow handler of another conversation: it was held back", other)
	}
	if got := slowCtxErr.Load(); got != "<nil>" {
		t.Errorf("the slow handler's context ended: %v", got)
	}
	log.check(t, want)
}

// TestServeOrderAgent: in a pool ordered by agent, all of an agent's
// envelopes, whatever their conversation, are handled one at a time in
// send order.
func TestServeOrderAgent(t *testing.T) {
	srv := embeddedtest.RunServer(t)
	bus := connectBus(t, srv, agentbus.WithUnknownAgents(agentbus.WaitUnknown))
	log := newKeyLog()
	if err := bus.Handle("strict", func(_ context.Context, env *codec.Envelope) error {
		defer log.start("strict", env.ID)()
		time.Sleep(llmTime(env.ID))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	serve(t, bus, fastRetries, agentbus.ServePartitions(8), agentbus.ServeOrder(placement.OrderAgent))
	ctx := testCtx(t, time.Minute)
	var want []string
	for i := range 8 {
		for c := range 6 {
			env := textEnvelope(fmt.Sprintf("user-%d", c%3), "strict", fmt.Sprintf("%03d-%d", i, c), "x")
			if c >= 3 {
				env.Message.ContextID = fmt.Sprintf("ctx-%d", c)
			}
			want = append(want, env.ID)
			if _, err := bus.SendAsync(ctx, env); err != nil {
				t.Fatal(err)
			}
		}
		// A round at a time, so that the agent's envelopes are stored as
		// many batches of several conversations: within a batch the pool's
		// order, across batches the server's one batch out per partition,
		// keeps them from being handled at once.
		if err := bus.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "every envelope handled", func() bool { return log.count() >= len(want) })
	log.check(t, map[string][]string{"strict": want})
	if log.maxAll != 1 {
		t.Errorf("%d handlers of one agent ran at once in a pool ordered by agent", log.maxAll)
	}
}

// TestServeHandlerTimeout: a handler that blocks until its context ends
// is stopped at the handler timeout (cause ErrHandlerTimeout); each such
// attempt counts as failed, and after MaxAttempts the envelope is
// dead-lettered with the reason.
func TestServeHandlerTimeout(t *testing.T) {
	srv := embeddedtest.RunServer(t)
	reg := prometheus.NewPedanticRegistry()
	bus := connectBus(t, srv, agentbus.WithRegisterer(reg))
	causes := make(chan error, 10)
	if err := bus.Handle("stuck", func(ctx context.Context, _ *codec.Envelope) error {
		<-ctx.Done()
		causes <- context.Cause(ctx)
		return ctx.Err()
	}); err != nil {
		t.Fatal(err)
	}
	declarePool(t, bus, agentbus.PoolConfig{Name: "stuck", Partitions: 4}, "stuck")
	ctx := testCtx(t, time.Minute)
	if err := bus.Send(ctx, textEnvelope("a", "stuck", "forever", "x")); err != nil {
		t.Fatal(err)
	}
	serve(t, bus, fastRetries, agentbus.ServePartitions(4), agentbus.ServeMaxAttempts(3),
		agentbus.ServeHandlerTimeout(200*time.Millisecond))
	nc := embeddedtest.Connect(t, srv)
	waitFor(t, "the dead letter", func() bool { return streamMsgs(t, nc, agentbus.DeadLetterStreamName) == 1 })
	waitFor(t, "the work queue to empty", func() bool { return streamMsgs(t, nc, agentbus.StreamName) == 0 })
	close(causes)
	n := 0
	for c := range causes {
		n++
		if !errors.Is(c, agentbus.ErrHandlerTimeout) {
			t.Errorf("attempt %d: context cause %v, want ErrHandlerTimeout", n, c)
		}
	}
	if n != 3 {
		t.Errorf("%d attempts, want the max attempts 3", n)
	}
	dl := deadLetters(t, nc)[0]
	if r := dl.Header.Get(agentbus.HeaderDLQReason); !strings.Contains(r, agentbus.ErrHandlerTimeout.Error()) {
		t.Errorf("dead letter reason %q, want it to say %q", r, agentbus.ErrHandlerTimeout)
	}
	if a := dl.Header.Get(agentbus.HeaderDLQAttempts); a != "3" {
		t.Errorf("dead letter attempts %q, want 3", a)
	}
	if got := gathered(t, reg, "a2abus_receive_handler_failures_total"); got != 3 {
		t.Errorf("a2abus_receive_handler_failures_total = %v, want 3", got)
	}
}

// TestServeDrainFinishesRunningHandler cancels Serve's context while a
// handler runs for 1.5 s: the handler finishes with its context intact,
// its batch is acknowledged before Serve returns, and the next member is
// not given it again.
func TestServeDrainFinishesRunningHandler(t *testing.T) {
	srv := embeddedtest.RunServer(t)
	first := connectBus(t, srv)
	var mu sync.Mutex
	handled := map[string]int{}
	started, finished := make(chan struct{}), make(chan struct{})
	var (
		endErr             atomic.Value
		startOnce, finOnce sync.Once
	)
	if err := first.Handle("drainer", func(ctx context.Context, env *codec.Envelope) error {
		startOnce.Do(func() { close(started) })
		select {
		case <-ctx.Done():
		case <-time.After(1500 * time.Millisecond):
		}
		endErr.Store(fmt.Sprint(context.Cause(ctx)))
		mu.Lock()
		handled[env.ID]++
		mu.Unlock()
		finOnce.Do(func() { close(finished) })
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	declarePool(t, first, agentbus.PoolConfig{Name: "drainer", Partitions: 4}, "drainer")
	ctx := testCtx(t, time.Minute)
	if err := first.Send(ctx, textEnvelope("a", "drainer", "long", "x")); err != nil {
		t.Fatal(err)
	}
	stop := serve(t, first, agentbus.ServePartitions(4))
	<-started
	stop() // cancels Serve's context and waits for Serve to return
	select {
	case <-finished:
	default:
		t.Fatal("Serve returned while its handler still ran")
	}
	if got := endErr.Load(); got != "<nil>" {
		t.Errorf("the draining handler's context ended: %v", got)
	}
	nc := embeddedtest.Connect(t, srv)
	if n := streamMsgs(t, nc, agentbus.StreamName); n != 0 {
		t.Errorf("%d batches left in the stream after Serve drained: the finished batch was not acknowledged", n)
	}

	reg := prometheus.NewPedanticRegistry()
	second := connectBus(t, srv, agentbus.WithRegisterer(reg))
	if err := second.Handle("drainer", func(_ context.Context, env *codec.Envelope) error {
		mu.Lock()
		handled[env.ID]++
		mu.Unlock()
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	serve(t, second, agentbus.ServePartitions(4))
	if err := second.Send(ctx, textEnvelope("a", "drainer", "next", "x")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the next envelope handled", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return handled["next"] == 1
	})
	mu.Lock()
	defer mu.Unlock()
	if handled["long"] != 1 {
		t.Errorf("the drained envelope was handled %d times, want once", handled["long"])
	}
	if got := gathered(t, reg, "a2abus_receive_redelivered_batches_total"); got != 0 {
		t.Errorf("the next member got %v redelivered batches, want 0", got)
	}
}

// TestServeDrainTimeoutReleasesBatch: with a drain time of 100 ms, a
// handler still running then has its context canceled (cause
// ErrServeStopped) and its batch released: the next member handles that
// envelope again, before the ones sent after it. Each envelope is its own
// batch; the stopping member is never given the later ones.
func TestServeDrainTimeoutReleasesBatch(t *testing.T) {
	srv := embeddedtest.RunServer(t)
	first := connectBus(t, srv)
	started := make(chan struct{})
	var (
		once  sync.Once
		cause atomic.Value
		mu    sync.Mutex
		got   []string // envelopes handled to their end, by either member
	)
	if err := first.Handle("releaser", func(ctx context.Context, env *codec.Envelope) error {
		if env.ID == "r0" {
			once.Do(func() { close(started) })
			select {
			case <-ctx.Done():
				cause.Store(context.Cause(ctx))
				return ctx.Err()
			case <-time.After(1500 * time.Millisecond):
			}
		}
		mu.Lock()
		got = append(got, "first:"+env.ID)
		mu.Unlock()
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	declarePool(t, first, agentbus.PoolConfig{Name: "releaser", Partitions: 4}, "releaser")
	ctx := testCtx(t, time.Minute)
	want := []string{"second:r0", "second:r1", "second:r2"}
	for _, id := range []string{"r0", "r1", "r2"} {
		if err := first.Send(ctx, textEnvelope("a", "releaser", id, "x")); err != nil {
			t.Fatal(err)
		}
	}
	stop := serve(t, first, agentbus.ServePartitions(4), agentbus.ServeDrainTimeout(100*time.Millisecond))
	<-started
	stop()
	if c, _ := cause.Load().(error); !errors.Is(c, agentbus.ErrServeStopped) {
		t.Errorf("the handler's context ended with %v, want ErrServeStopped", c)
	}

	reg := prometheus.NewPedanticRegistry()
	second := connectBus(t, srv, agentbus.WithRegisterer(reg))
	if err := second.Handle("releaser", func(_ context.Context, env *codec.Envelope) error {
		mu.Lock()
		got = append(got, "second:"+env.ID)
		mu.Unlock()
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	serve(t, second, agentbus.ServePartitions(4))
	nc := embeddedtest.Connect(t, srv)
	waitFor(t, "the work queue to empty", func() bool { return streamMsgs(t, nc, agentbus.StreamName) == 0 })
	mu.Lock()
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("handled %v, want %v", got, want)
	}
	mu.Unlock()
	if n := gathered(t, reg, "a2abus_receive_redelivered_batches_total"); n != 1 {
		t.Errorf("a2abus_receive_redelivered_batches_total = %v, want 1 (the released batch)", n)
	}
}
