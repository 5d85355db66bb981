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
	"github.com/a2abus/a2abus/placement"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func testCtx(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// connectBus connects a bus to srv in-process and provisions the streams.
func connectBus(t *testing.T, srv *embedded.Server, opts ...agentbus.Option) *agentbus.Bus {
	t.Helper()
	all := append([]agentbus.Option{
		agentbus.WithInProcessServer(srv.NATSServer()),
		agentbus.WithEnsureStreams(agentbus.StreamConfig{}),
		agentbus.WithLogger(embeddedtest.Logger(t)),
	}, opts...)
	bus, err := agentbus.Connect(testCtx(t, 30*time.Second), all...)
	if err != nil {
		t.Fatalf("connect bus: %v", err)
	}
	t.Cleanup(func() { _ = bus.Close(context.Background()) })
	return bus
}

// sendPool is the pool the send tests declare their destinations in: no
// member serves it, so what they send stays in the stream.
var sendPool = agentbus.PoolConfig{Name: "senders", Partitions: 8}

func textEnvelope(from, to, id, text string) *codec.Envelope {
	return &codec.Envelope{
		ID: id, From: from, To: to, Kind: "message",
		Message: &codec.Message{MessageID: id, Role: codec.RoleUser, Parts: []codec.Part{codec.TextPart(text)}},
	}
}

// storedEnvelopes reads every frame in the A2A stream and decodes its
// envelopes, in stream order.
func storedEnvelopes(t *testing.T, nc *nats.Conn) []codec.Envelope {
	t.Helper()
	ctx := testCtx(t, time.Minute)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	s, err := js.Stream(ctx, agentbus.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c := codec.MustNew()
	var out []codec.Envelope
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			t.Fatalf("get message %d: %v", seq, err)
		}
		if out, err = c.DecodeBatch(out, m.Data); err != nil {
			t.Fatalf("decode message %d: %v", seq, err)
		}
		if _, _, _, err := placement.ParseSubject(m.Subject); err != nil {
			t.Fatalf("message %d on subject %s: %v", seq, m.Subject, err)
		}
	}
	return out
}

func TestSendConcurrentExactlyOnceInOrder(t *testing.T) {
	srv := embeddedtest.RunServer(t)
	bus := connectBus(t, srv)
	const senders, dests, perPair = 4, 16, 150
	ctx := testCtx(t, time.Minute)
	var agents []string
	for d := range dests {
		agents = append(agents, fmt.Sprintf("agent-%d", d))
	}
	declarePool(t, bus, sendPool, agents...)

	var wg sync.WaitGroup
	errc := make(chan error, senders)
	for s := range senders {
		wg.Go(func() {
			var tickets []*agentbus.Ticket
			for i := range perPair {
				for d := range dests {
					env := textEnvelope(fmt.Sprintf("sender-%d", s), fmt.Sprintf("agent-%d", d),
						fmt.Sprintf("%d/%d/%05d", s, d, i), "hello")
					tk, err := bus.SendAsync(ctx, env)
					if err != nil {
						errc <- err
						return
					}
					tickets = append(tickets, tk)
				}
			}
			for _, tk := range tickets {
				if err := tk.Wait(ctx); err != nil {
					errc <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatalf("send: %v", err)
	}

	envs := storedEnvelopes(t, embeddedtest.Connect(t, srv))
	if len(envs) != senders*dests*perPair {
		t.Errorf("stored %d envelopes, want %d", len(envs), senders*dests*perPair)
	}
	seen := map[string]bool{}
	last := map[string]string{} // sender/dest -> last ID
	for _, e := range envs {
		if seen[e.ID] {
			t.Fatalf("envelope %s stored twice", e.ID)
		}
		seen[e.ID] = true
		pair := e.ID[:strings.LastIndexByte(e.ID, '/')]
		if prev := last[pair]; prev >= e.ID {
			t.Fatalf("envelope %s stored after %s: per-destination order broken", e.ID, prev)
		}
		last[pair] = e.ID
		if e.Message == nil || e.Message.Text() != "hello" || e.CreatedAt == 0 {
			t.Fatalf("envelope %s came back as %+v", e.ID, e)
		}
	}
}

func TestSendRefusesBadInputBeforeSending(t *testing.T) {
	srv := embeddedtest.RunServer(t)
	bus := connectBus(t, srv, agentbus.WithMaxMessageSize(1<<20))
	ctx := testCtx(t, 30*time.Second)
	declarePool(t, bus, sendPool, "b")
	tests := []struct {
		name    string
		env     *codec.Envelope
		wantErr error
	}{
		{"empty to", textEnvelope("a", "", "1", "x"), agentbus.ErrInvalidAgentID},
		{"dot in to", textEnvelope("a", "b.c", "1", "x"), agentbus.ErrInvalidAgentID},
		{"wildcard from", textEnvelope("a*", "b", "1", "x"), agentbus.ErrInvalidAgentID},
		{"too large", textEnvelope("a", "b", "1", strings.Repeat("x", 1<<20)), agentbus.ErrTooLarge},
		{"undeclared to", textEnvelope("a", "c", "1", "x"), agentbus.ErrUnknownAgent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := bus.Send(ctx, tt.env); !errors.Is(err, tt.wantErr) {
				t.Fatalf("Send = %v, want %v", err, tt.wantErr)
			}
		})
	}
	if envs := storedEnvelopes(t, embeddedtest.Connect(t, srv)); len(envs) != 0 {
		t.Fatalf("%d envelopes stored, want none", len(envs))
	}
}

func TestSendLargeMessagesArriveWhole(t *testing.T) {
	srv := embeddedtest.RunServer(t)
	bus := connectBus(t, srv)
	ctx := testCtx(t, time.Minute)
	declarePool(t, bus, sendPool, "b")
	// Just under the 10 MiB limit once encoded, and incompressible enough
	// to exercise the raw path too.
	big := make([]byte, 10<<20-512)
	for i := range big {
		big[i] = byte(i*7919 + i>>8)
	}
	env := &codec.Envelope{From: "a", To: "b", Payload: map[string]any{"blob": big}}
	if err := bus.Send(ctx, env); err != nil {
		t.Fatalf("send 10 MiB message: %v", err)
	}
	if err := bus.Send(ctx, textEnvelope("a", "b", "small", "after")); err != nil {
		t.Fatal(err)
	}
	envs := storedEnvelopes(t, embeddedtest.Connect(t, srv))
	if len(envs) != 2 {
		t.Fatalf("stored %d envelopes, want 2", len(envs))
	}
	got, _ := envs[0].Payload.(map[string]any)["blob"].([]byte)
	if len(got) != len(big) || string(got) != string(big) {
		t.Fatalf("10 MiB payload came back with %d bytes, or changed", len(got))
	}
}

func TestSendFullStreamIsBackpressure(t *testing.T) {
	srv := embeddedtest.RunServer(t)
	bus := connectBus(t, srv,
		agentbus.WithEnsureStreams(agentbus.StreamConfig{MaxBytes: 64 << 10}),
		agentbus.WithCompression(codec.CompressNone),
		agentbus.WithSendTimeout(300*time.Millisecond))
	ctx := testCtx(t, 30*time.Second)
	declarePool(t, bus, sendPool, "b")
	var sent, refused int
	var lastErr error
	for i := range 200 {
		err := bus.Send(ctx, textEnvelope("a", "b", fmt.Sprintf("m%03d", i), strings.Repeat("x", 1000)))
		switch {
		case err == nil:
			sent++
		case errors.Is(err, agentbus.ErrBackpressure):
			refused++
			lastErr = err
		default:
			t.Fatalf("send %d: %v, want nil or ErrBackpressure", i, err)
		}
		if refused >= 3 {
			break
		}
	}
	if refused == 0 {
		t.Fatalf("sent %d KiB into a 64 KiB stream without backpressure", sent)
	}
	t.Logf("%d sent, then: %v", sent, lastErr)
	envs := storedEnvelopes(t, embeddedtest.Connect(t, srv))
	if len(envs) != sent {
		t.Fatalf("stored %d envelopes, %d sends returned nil", len(envs), sent)
	}
}

func TestCloseDeliversBufferedAndIsIdempotent(t *testing.T) {
	srv := embeddedtest.RunServer(t)
	bus := connectBus(t, srv)
	ctx := testCtx(t, 30*time.Second)
	declarePool(t, bus, sendPool, "b", "d0", "d1", "d2", "d3", "d4", "d5", "d6")
	var tickets []*agentbus.Ticket
	for i := range 2000 {
		tk, err := bus.SendAsync(ctx, textEnvelope("a", fmt.Sprintf("d%d", i%7), fmt.Sprintf("m%05d", i), "x"))
		if err != nil {
			t.Fatal(err)
		}
		tickets = append(tickets, tk)
	}
	if err := bus.Close(ctx); err != nil {
		t.Fatalf("close: %v", err)
	}
	if err := bus.Close(ctx); err != nil {
		t.Fatalf("second close: %v", err)
	}
	for _, tk := range tickets {
		select {
		case <-tk.Done():
			if tk.Err() != nil {
				t.Fatalf("buffered message failed: %v", tk.Err())
			}
		default:
			t.Fatal("a ticket is still pending after Close")
		}
	}
	if envs := storedEnvelopes(t, embeddedtest.Connect(t, srv)); len(envs) != 2000 {
		t.Fatalf("stored %d envelopes, want 2000", len(envs))
	}
	if err := bus.Send(ctx, textEnvelope("a", "b", "late", "x")); !errors.Is(err, agentbus.ErrClosed) {
		t.Fatalf("send after close: %v, want ErrClosed", err)
	}
}

// TestSendSizesAtTheLimits sends messages of exactly the max size and
// many small ones under a small max: none may fail at flush time.
func TestSendSizesAtTheLimits(t *testing.T) {
	srv := embeddedtest.RunServer(t)
	const max = 8 << 10
	bus := connectBus(t, srv, agentbus.WithMaxMessageSize(max), agentbus.WithCompression(codec.CompressNone))
	ctx := testCtx(t, 30*time.Second)
	declarePool(t, bus, sendPool, "b")
	var tickets []*agentbus.Ticket
	for i := range 200 {
		tk, err := bus.SendAsync(ctx, textEnvelope("a", "b", fmt.Sprintf("s%03d", i), "small"))
		if err != nil {
			t.Fatal(err)
		}
		tickets = append(tickets, tk)
	}
	// Find a text length whose envelope encodes to exactly max bytes.
	exact := textEnvelope("a", "b", "exact", "")
	exact.CreatedAt = time.Now().UnixMilli() // as Send would fill it in
	base, _ := exact.AppendMsgpack(nil)
	for n := max - len(base) - 5; ; n++ {
		exact.Message.Parts[0].Text = strings.Repeat("x", n)
		b, _ := exact.AppendMsgpack(nil)
		if len(b) == max {
			break
		}
		if len(b) > max {
			t.Fatalf("no text length encodes to exactly %d bytes", max)
		}
	}
	if err := bus.Send(ctx, exact); err != nil {
		t.Fatalf("message of exactly the max size: %v", err)
	}
	for _, tk := range tickets {
		if err := tk.Wait(ctx); err != nil {
			t.Fatalf("small message: %v", err)
		}
	}
	exact.ID, exact.Message.Parts[0].Text = "over1", exact.Message.Parts[0].Text+"x" // same ID length, one byte more
	if err := bus.Send(ctx, exact); !errors.Is(err, agentbus.ErrTooLarge) {
		t.Fatalf("one byte over the max: %v, want ErrTooLarge", err)
	}
}

// TestSendFitsServerMaxPayload connects to a server left at NATS's 1 MB
// default max_payload: a 2 MiB message is refused before sending.
func TestSendFitsServerMaxPayload(t *testing.T) {
	srv := embeddedtest.RunServer(t, embedded.WithMaxPayload(1<<20))
	bus := connectBus(t, srv)
	ctx := testCtx(t, 30*time.Second)
	declarePool(t, bus, sendPool, "b")
	big := textEnvelope("a", "b", "big", strings.Repeat("y", 2<<20))
	if err := bus.Send(ctx, big); !errors.Is(err, agentbus.ErrTooLarge) {
		t.Fatalf("2 MiB message to a 1 MiB server: %v, want ErrTooLarge", err)
	}
	if err := bus.Send(ctx, textEnvelope("a", "b", "ok", strings.Repeat("z", 900<<10))); err != nil {
		t.Fatalf("900 KiB message: %v", err)
	}
}
