package agentbus_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/a2abus/a2abus/agentbus"
	"github.com/a2abus/a2abus/codec"
	"github.com/a2abus/a2abus/embedded/embeddedtest"
	"github.com/a2abus/a2abus/internal/faults"
	"github.com/a2abus/a2abus/placement"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// TestHoldFencesCutOffMember cuts the connection of a member whose handler
// runs longer than the ack wait (1 s), with a second member on a direct
// connection ready to take the partition. The first member must stop on
// its own before the server can hand the batch to the second: its
// handler's context ends with ErrFenced before the second member's
// handler starts, it counts the batch as fenced, and it never
// acknowledges the batch, even once its connection is back while the
// second member still holds the batch. The second member handles it and
// acknowledges it.
//
// The cut comes right after the handler starts (the hold has no
// confirmed renewal yet) or 1.5 s later (the hold kept the batch past its
// ack wait with renewals, and the deadline counts from the last one).
func TestHoldFencesCutOffMember(t *testing.T) {
	for _, cutAfter := range []time.Duration{0, 1500 * time.Millisecond} {
		t.Run(fmt.Sprintf("cut after %v", cutAfter), func(t *testing.T) { testHoldFence(t, cutAfter) })
	}
}

func testHoldFence(t *testing.T, cutAfter time.Duration) {
	srv := embeddedtest.RunServer(t)
	u, err := url.Parse(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	proxy, err := faults.NewProxy("127.0.0.1:0", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = proxy.Close() })
	ctx := testCtx(t, 2*time.Minute)

	// One partition, and member IDs chosen so that it is the second
	// member's as soon as that one joins: the second pulls it while the
	// first, cut off, still has its member key.
	first, second := "", ""
	for i := 0; second == ""; i++ {
		a, b := fmt.Sprintf("first-%d", i), fmt.Sprintf("second-%d", i)
		if as, err := placement.Assign(1, []string{a, b}); err == nil && as.Owner(0) == b {
			first, second = a, b
		}
	}
	serveOpts := []agentbus.ServeOption{agentbus.ServePartitions(1), agentbus.ServeAckWait(time.Second), fastRetries}

	reg1 := prometheus.NewPedanticRegistry()
	bus1, err := agentbus.Connect(ctx, agentbus.WithURL("nats://"+proxy.Addr()), agentbus.WithName("cut-off"),
		agentbus.WithEnsureStreams(agentbus.StreamConfig{}), agentbus.WithLogger(embeddedtest.Logger(t)),
		agentbus.WithRegisterer(reg1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bus1.Close(context.Background()) })

	var (
		mu         sync.Mutex
		ctx1       context.Context // the first member's handler context
		cause1     error           // why it ended
		calls1     int
		started1   = make(chan struct{})
		returned1  = make(chan struct{})
		overlap    bool   // the second member started while the first's handler context was live
		storedAt2  uint64 // messages in stream A2A once the first member was done with the batch
		started2   = make(chan struct{})
		calls2     int
		fenceCount float64 // the first member's fenced batches once it was done with the batch
		cutAt      time.Time
	)
	sinceCut := func() time.Duration {
		mu.Lock()
		defer mu.Unlock()
		return time.Since(cutAt)
	}
	if err := bus1.Handle("held", func(ctx context.Context, _ *codec.Envelope) error {
		mu.Lock()
		calls1++
		if calls1 > 1 {
			mu.Unlock()
			return nil // a redelivery after the connection came back: the failure shows elsewhere
		}
		ctx1 = ctx
		mu.Unlock()
		close(started1)
		// Longer than the ack wait, as a model call may be.
		select {
		case <-ctx.Done():
		case <-time.After(5 * time.Second):
		}
		mu.Lock()
		cause1 = context.Cause(ctx)
		mu.Unlock()
		t.Logf("%v after the cut: the cut-off member's handler context ended: %v", sinceCut(), cause1)
		// Return once connected again, so that what this member does with
		// the batch next would reach the server.
		waitUntil(time.Minute, bus1.Conn().IsConnected)
		close(returned1)
		return ctx.Err()
	}); err != nil {
		t.Fatal(err)
	}
	serve(t, bus1, append(serveOpts, agentbus.ServeMemberID(first))...)

	sender := connectBus(t, srv, agentbus.WithUnknownAgents(agentbus.WaitUnknown))
	if err := sender.Send(ctx, textEnvelope("a", "held", "h1", "x")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-started1:
	case <-ctx.Done():
		t.Fatal("the first member never started handling")
	}
	time.Sleep(cutAfter)
	mu.Lock()
	if err := context.Cause(ctx1); err != nil {
		t.Errorf("the first member's handler context ended before the cut: %v", err)
	}
	proxy.Cut()
	cutAt = time.Now()
	mu.Unlock()

	reg2 := prometheus.NewPedanticRegistry()
	bus2 := connectBus(t, srv, agentbus.WithRegisterer(reg2))
	nc := embeddedtest.Connect(t, srv)
	if err := bus2.Handle("held", func(context.Context, *codec.Envelope) error {
		mu.Lock()
		calls2++
		overlap = ctx1 == nil || ctx1.Err() == nil
		mu.Unlock()
		t.Logf("%v after the cut: the second member got the batch", sinceCut())
		if calls2 == 1 {
			close(started2)
		}
		// Hold the batch until the first member is back and done with
		// it: an ack from it would land while this delivery is out.
		select {
		case <-returned1:
		case <-time.After(30 * time.Second):
		}
		waitUntil(30*time.Second, func() bool {
			return gatheredNoFail(reg1, "a2abus_receive_fenced_batches_total")+gatheredNoFail(reg1, "a2abus_receive_handled_total") > 0
		})
		n, _ := streamMsgsNoFail(nc, agentbus.StreamName)
		t.Logf("%v after the cut: the cut-off member is done with the batch; %d messages in the stream", sinceCut(), n)
		mu.Lock()
		storedAt2 = n
		fenceCount = gatheredNoFail(reg1, "a2abus_receive_fenced_batches_total")
		mu.Unlock()
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	serve(t, bus2, append(serveOpts, agentbus.ServeMemberID(second))...)

	select {
	case <-started2:
	case <-time.After(30 * time.Second):
		t.Error("the second member never got the batch")
	}
	proxy.Restore()
	emptied := waitUntil(time.Minute, func() bool {
		n, err := streamMsgsNoFail(nc, agentbus.StreamName)
		return err == nil && n == 0
	})
	acked2 := waitUntil(30*time.Second, func() bool { return gatheredNoFail(reg2, "a2abus_receive_handled_total") >= 1 })

	mu.Lock()
	defer mu.Unlock()
	if !emptied {
		t.Error("the batch was never acknowledged")
	}
	if !acked2 {
		t.Error("the second member's ack did not go through")
	}
	if !errors.Is(cause1, agentbus.ErrFenced) {
		t.Errorf("the cut-off member's handler context ended with %v, want ErrFenced", cause1)
	}
	if overlap {
		t.Error("the second member started handling the batch while the cut-off member's handler context was still live")
	}
	if fenceCount != 1 {
		t.Errorf("a2abus_receive_fenced_batches_total = %v on the cut-off member, want 1", fenceCount)
	}
	if storedAt2 != 1 {
		t.Errorf("%d messages in the stream while the second member held the batch, want 1: the cut-off member acknowledged it", storedAt2)
	}
	if got := gathered(t, reg1, "a2abus_receive_handled_total"); got != 0 {
		t.Errorf("the cut-off member counted %v envelopes handled (acknowledged), want 0", got)
	}
	if calls1 != 1 || calls2 != 1 {
		t.Errorf("handler calls: %d on the cut-off member, %d on the second, want 1 and 1", calls1, calls2)
	}
}

// waitUntil polls cond until it holds or d passes, and reports whether it
// held; for goroutines that may not fail the test.
func waitUntil(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}

// gatheredNoFail is gathered for goroutines that may not fail the test:
// -1 when the metric is not gathered.
func gatheredNoFail(reg *prometheus.Registry, name string) float64 {
	mfs, err := reg.Gather()
	if err != nil {
		return -1
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			sum := 0.0
			for _, m := range mf.GetMetric() {
				sum += m.GetGauge().GetValue() + m.GetCounter().GetValue()
			}
			return sum
		}
	}
	return -1
}

// streamMsgsNoFail is streamMsgs for goroutines that may not fail the
// test.
func streamMsgsNoFail(nc *nats.Conn, stream string) (uint64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	js, err := jetstream.New(nc)
	if err != nil {
		return 0, err
	}
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return 0, err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return 0, err
	}
	return info.State.Msgs, nil
}
