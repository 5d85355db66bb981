package agentbus_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/a2abus/a2abus/agentbus"
	"github.com/a2abus/a2abus/codec"
	"github.com/a2abus/a2abus/embedded"
	"github.com/a2abus/a2abus/embedded/embeddedtest"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
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

func TestServeHandlesEverythingOnceInOrder(t *testing.T) {
	srv := embeddedtest.RunServer(t)
	bus := connectBus(t, srv, agentbus.WithGroups(16))
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
	serve(t, bus, fastRetries)

	ctx := testCtx(t, time.Minute)
	var wg sync.WaitGroup
	for s := range senders {
		wg.Go(func() {
			for i := range perPair {
				for a := range agents {
					id := fmt.Sprintf("%d/%05d", s, i)
					if _, err := bus.SendAsync(ctx, textEnvelope("sender", fmt.Sprintf("agent-%d", a), id, "x")); err != nil {
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
	ctx := testCtx(t, time.Minute)
	for _, id := range []string{"m0", "m1", "m2", "m3", "m4"} {
		if _, err := bus.SendAsync(ctx, textEnvelope("a", "flaky", id, "x")); err != nil {
			t.Fatal(err)
		}
	}
	if err := bus.Send(ctx, textEnvelope("a", "nobody", "m9", "x")); err != nil {
		t.Fatal(err)
	}
	serve(t, bus, fastRetries, agentbus.ServeMaxAttempts(4))

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
		"m9": "no handler for agent nobody after 4",
	} {
		if !strings.Contains(reasons[id], want) {
			t.Errorf("dead letter of %s: %q, want %q", id, reasons[id], want)
		}
	}
	if len(dls) != 3 {
		t.Errorf("%d dead letters, want 3", len(dls))
	}
}

func TestServePoisonFrames(t *testing.T) {
	srv := embeddedtest.RunServer(t)
	reg := prometheus.NewPedanticRegistry()
	bus := connectBus(t, srv, agentbus.WithGroups(4), agentbus.WithRegisterer(reg))
	handled := make(chan string, 10)
	if err := bus.Handle("victim", func(_ context.Context, env *codec.Envelope) error {
		handled <- env.ID
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	nc := embeddedtest.Connect(t, srv)
	js, _ := jetstream.New(nc)
	subject, _ := bus.Groups().Subject("victim")
	ctx := testCtx(t, time.Minute)
	for _, data := range [][]byte{[]byte("not a frame"), []byte("RAW\xc1"), []byte("LZ4\x04\x22\x4d\x18garbage")} {
		if _, err := js.Publish(ctx, subject, data); err != nil {
			t.Fatal(err)
		}
	}
	if err := bus.Send(ctx, textEnvelope("a", "victim", "after-poison", "x")); err != nil {
		t.Fatal(err)
	}
	serve(t, bus, fastRetries)
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
	group, _ := bus.ConsumerName(bus.Groups().Group("victim"))
	// The handled envelope is counted once its batch's ack is confirmed,
	// which may come just after the stream let the batch go.
	waitFor(t, "the handled envelope counted", func() bool { return gathered(t, reg, "a2abus_receive_group_handled_total") == 1 })
	for name, want := range map[string]float64{"a2abus_receive_group_dead_letters_total": 3, "a2abus_receive_poison_frames_total": 3, "a2abus_receive_group_handled_total": 1} {
		if got := gathered(t, reg, name); got != want {
			t.Errorf("%s = %v, want %v (group %s)", name, got, want, group)
		}
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
// again on another bus: everything is handled once.
func TestServeStopAndResume(t *testing.T) {
	srv := embeddedtest.RunServer(t)
	first := connectBus(t, srv, agentbus.WithGroups(4))
	var mu sync.Mutex
	count := map[string]int{}
	h := func(_ context.Context, env *codec.Envelope) error {
		mu.Lock()
		count[env.ID]++
		mu.Unlock()
		return nil
	}
	if err := first.Handle("worker", h); err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t, time.Minute)
	for i := range 200 {
		if _, err := first.SendAsync(ctx, textEnvelope("a", "worker", fmt.Sprintf("m%03d", i), "x")); err != nil {
			t.Fatal(err)
		}
	}
	if err := first.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	stop := serve(t, first, fastRetries)
	waitFor(t, "some messages handled", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(count) > 0
	})
	stop()

	second := connectBus(t, srv, agentbus.WithGroups(4))
	if err := second.Handle("worker", h); err != nil {
		t.Fatal(err)
	}
	serve(t, second, fastRetries)
	waitFor(t, "all 200 handled", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(count) == 200
	})
	for id, n := range count {
		if n != 1 {
			t.Errorf("%s handled %d times", id, n)
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
	bus := connectBus(t, srv, agentbus.WithGroups(4))
	ctx := testCtx(t, time.Minute)
	if err := bus.Send(ctx, textEnvelope("a", "crasher", "deadly", "x")); err != nil {
		t.Fatal(err)
	}

	// The group's durable consumer, as Serve makes it; each Nak redelivers
	// at once.
	nc := embeddedtest.Connect(t, srv)
	js, _ := jetstream.New(nc)
	group := bus.Groups().Group("crasher")
	name, _ := bus.ConsumerName(group)
	filter, _ := bus.Groups().GroupFilter(group)
	cons, err := js.CreateOrUpdateConsumer(ctx, agentbus.StreamName, jetstream.ConsumerConfig{
		Durable: name, FilterSubject: filter, AckPolicy: jetstream.AckExplicitPolicy,
		AckWait: agentbus.DefaultAckWait, MaxDeliver: agentbus.MaxDeliver,
	})
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
	serve(t, bus, agentbus.ServeGroups(group))
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
	bus := connectBus(t, srv, agentbus.WithGroups(8))
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
	serve(t, bus)
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
