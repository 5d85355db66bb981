package agentbus_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/a2abus/a2abus/agentbus"
	"github.com/a2abus/a2abus/codec"
	"github.com/a2abus/a2abus/embedded/embeddedtest"
	"github.com/nats-io/nats.go/jetstream"
)

// echoBus serves an "echo" agent that replies with the text it got, and a
// "broken" agent whose handler always fails.
func echoBus(t *testing.T) (server, client *agentbus.Bus) {
	t.Helper()
	srv := embeddedtest.RunServer(t)
	server = connectBus(t, srv)
	err := server.Handle("echo", func(ctx context.Context, env *codec.Envelope) error {
		return server.Reply(ctx, env, &codec.Envelope{Kind: "message",
			Message: &codec.Message{MessageID: "r-" + env.ID, Role: codec.RoleAgent,
				Parts: []codec.Part{codec.TextPart("echo: " + env.Message.Text())}}})
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := server.Handle("broken", func(context.Context, *codec.Envelope) error {
		return errors.New("model unavailable")
	}); err != nil {
		t.Fatal(err)
	}
	// Declared before Serve, so that the client's requests find the pool.
	pool := declarePool(t, server, agentbus.PoolConfig{Name: "echoes", Partitions: 8}, "echo", "broken")
	serve(t, server, fastRetries, agentbus.ServeMaxAttempts(2), agentbus.ServeMemberTTL(2*time.Second), agentbus.ServeAckWait(time.Second),
		agentbus.ServePool("echoes"), agentbus.ServePartitions(8))
	client = connectBus(t, srv)
	// Direct requests need a member subscribed on their partition.
	waitDirectSubs(t, srv, pool)
	return server, client
}

func TestRequestReplyBothModes(t *testing.T) {
	_, client := echoBus(t)
	for _, mode := range []agentbus.RequestMode{agentbus.Durable, agentbus.Direct} {
		ctx := testCtx(t, 30*time.Second)
		reply, err := client.Request(ctx, textEnvelope("asker", "echo", "", "hello"), mode)
		if err != nil {
			t.Fatalf("mode %d: %v", mode, err)
		}
		if reply.Message.Text() != "echo: hello" || reply.From != "echo" || reply.To != "asker" || reply.CorrelationID == "" {
			t.Fatalf("mode %d: reply %+v", mode, reply)
		}

		_, err = client.Request(ctx, textEnvelope("asker", "broken", "", "x"), mode)
		if !errors.Is(err, agentbus.ErrRemote) || !strings.Contains(err.Error(), "model unavailable") {
			t.Fatalf("mode %d: request to a failing handler: %v, want ErrRemote with its text", mode, err)
		}
	}
}

func TestRequestTimeoutsAndMissingConsumers(t *testing.T) {
	srv := embeddedtest.RunServer(t)
	client := connectBus(t, srv)
	ctx := testCtx(t, 30*time.Second)

	// Declared before the client first sends, so that its registry watch
	// starts with it.
	declarePool(t, client, agentbus.PoolConfig{Name: "empty", Partitions: 8}, "nobody")

	// An agent no pool declared: every mode fails at once.
	for _, mode := range []agentbus.RequestMode{agentbus.Durable, agentbus.Direct, agentbus.Auto} {
		if _, err := client.Request(ctx, textEnvelope("asker", "undeclared", "", "x"), mode); !errors.Is(err, agentbus.ErrUnknownAgent) || ctx.Err() != nil {
			t.Fatalf("mode %d: request to an undeclared agent: %v, want ErrUnknownAgent", mode, err)
		}
	}

	// A pool with no member: a direct request fails at once.
	_, err := client.Request(ctx, textEnvelope("asker", "nobody", "", "x"), agentbus.Direct)
	if !errors.Is(err, agentbus.ErrNoConsumer) {
		t.Fatalf("direct request with no consumer: %v", err)
	}
	// A durable request is stored and waits for its deadline.
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	_, err = client.Request(short, textEnvelope("asker", "nobody", "", "x"), agentbus.Durable)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("durable request past its deadline: %v", err)
	}
}

// TestReplyToDepartedRequester: the requester gives up before the handler
// replies; the reply goes nowhere and blocks nothing.
func TestReplyToDepartedRequester(t *testing.T) {
	srv := embeddedtest.RunServer(t)
	server := connectBus(t, srv)
	release := make(chan struct{})
	replied := make(chan error, 1)
	if err := server.Handle("slow", func(ctx context.Context, env *codec.Envelope) error {
		<-release
		err := server.Reply(ctx, env, &codec.Envelope{Kind: "message"})
		replied <- err
		return err
	}); err != nil {
		t.Fatal(err)
	}
	declarePool(t, server, agentbus.PoolConfig{Name: "slow", Partitions: 8}, "slow")
	serve(t, server, fastRetries, agentbus.ServeMemberTTL(2*time.Second), agentbus.ServeAckWait(time.Second), agentbus.ServePartitions(8))
	client := connectBus(t, srv)
	short, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := client.Request(short, textEnvelope("asker", "slow", "", "x"), agentbus.Durable); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("request: %v", err)
	}
	if err := client.Close(context.Background()); err != nil { // the requester is gone
		t.Fatal(err)
	}
	close(release)
	select {
	case err := <-replied:
		if err != nil {
			t.Fatalf("reply to a departed requester: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the handler never got to reply")
	}
}

// TestRequestAuto: with no consumer an Auto request is stored and waits
// for one; with a consumer it goes direct and is not stored.
func TestRequestAuto(t *testing.T) {
	srv := embeddedtest.RunServer(t)
	client := connectBus(t, srv)
	ctx := testCtx(t, time.Minute)
	// The agent is declared, its pool has no member yet.
	pool := declarePool(t, client, agentbus.PoolConfig{Name: "echo", Partitions: 8}, "echo")
	js, _ := jetstream.New(embeddedtest.Connect(t, srv))
	lastSeq := func() uint64 {
		s, err := js.Stream(ctx, agentbus.StreamName)
		if err != nil {
			t.Fatal(err)
		}
		return s.CachedInfo().State.LastSeq
	}

	got := make(chan error, 1)
	go func() {
		reply, err := client.Request(ctx, textEnvelope("asker", "echo", "", "stored"), agentbus.Auto)
		if err == nil && reply.Message.Text() != "echo: stored" {
			err = errors.New("reply " + reply.Message.Text())
		}
		got <- err
	}()
	waitFor(t, "the request to be stored", func() bool { return lastSeq() == 1 })

	server := connectBus(t, srv)
	if err := server.Handle("echo", func(ctx context.Context, env *codec.Envelope) error {
		return server.Reply(ctx, env, &codec.Envelope{Kind: "message", Message: &codec.Message{MessageID: "r-" + env.ID,
			Role: codec.RoleAgent, Parts: []codec.Part{codec.TextPart("echo: " + env.Message.Text())}}})
	}); err != nil {
		t.Fatal(err)
	}
	serve(t, server, agentbus.ServeMemberTTL(2*time.Second), agentbus.ServePartitions(8))
	if err := <-got; err != nil {
		t.Fatalf("the stored Auto request: %v", err)
	}
	// The stored request may be answered before the partition's direct
	// subscription is in place.
	waitDirectSubs(t, srv, pool)

	reply, err := client.Request(ctx, textEnvelope("asker", "echo", "", "direct"), agentbus.Auto)
	if err != nil || reply.Message.Text() != "echo: direct" {
		t.Fatalf("Auto request with a consumer: %v, %v", reply, err)
	}
	if n := lastSeq(); n != 1 {
		t.Fatalf("stream's last sequence %d after an Auto request with a consumer, want 1: it was stored", n)
	}
}

// TestReplyWithCanceledContext: Reply returns nil once the reply is
// published, even when its context has already ended, and the requester
// gets the reply: a handler whose context ends as it answers does not
// fail and answer again.
func TestReplyWithCanceledContext(t *testing.T) {
	srv := embeddedtest.RunServer(t)
	server := connectBus(t, srv)
	replied := make(chan error, 4)
	if err := server.Handle("late", func(ctx context.Context, env *codec.Envelope) error {
		done, cancel := context.WithCancel(ctx)
		cancel()
		err := server.Reply(done, env, &codec.Envelope{Kind: "message", Message: &codec.Message{MessageID: "r-" + env.ID,
			Role: codec.RoleAgent, Parts: []codec.Part{codec.TextPart("late: " + env.Message.Text())}}})
		replied <- err
		return err
	}); err != nil {
		t.Fatal(err)
	}
	pool := declarePool(t, server, agentbus.PoolConfig{Name: "late", Partitions: 4}, "late")
	serve(t, server, agentbus.ServePartitions(4))
	waitDirectSubs(t, srv, pool)
	client := connectBus(t, srv)
	for _, mode := range []agentbus.RequestMode{agentbus.Durable, agentbus.Direct} {
		ctx := testCtx(t, 30*time.Second)
		reply, err := client.Request(ctx, textEnvelope("asker", "late", "", "hi"), mode)
		if err != nil || reply.Message.Text() != "late: hi" {
			t.Fatalf("mode %d: reply %v, %v", mode, reply, err)
		}
		if err := <-replied; err != nil {
			t.Errorf("mode %d: Reply with a canceled context = %v, want nil", mode, err)
		}
	}
	if len(replied) != 0 {
		t.Errorf("the handler replied %d more times", len(replied))
	}
}
