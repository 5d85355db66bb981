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
	server = connectBus(t, srv, agentbus.WithGroups(8))
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
	serve(t, server, fastRetries, agentbus.ServeMaxAttempts(2), agentbus.ServeMemberTTL(2*time.Second), agentbus.ServeAckWait(time.Second))
	client = connectBus(t, srv, agentbus.WithGroups(8))
	// Wait until the groups are owned (direct requests need an owner).
	waitFor(t, "the server to own its groups", func() bool { return len(leaseOwners(t, srv)) == 8 })
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
	client := connectBus(t, srv, agentbus.WithGroups(8))
	ctx := testCtx(t, 30*time.Second)

	// Nobody serves the groups: a direct request fails at once.
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
	server := connectBus(t, srv, agentbus.WithGroups(8))
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
	serve(t, server, fastRetries, agentbus.ServeMemberTTL(2*time.Second), agentbus.ServeAckWait(time.Second))
	client := connectBus(t, srv, agentbus.WithGroups(8))
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
	client := connectBus(t, srv, agentbus.WithGroups(8))
	ctx := testCtx(t, time.Minute)
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

	server := connectBus(t, srv, agentbus.WithGroups(8))
	if err := server.Handle("echo", func(ctx context.Context, env *codec.Envelope) error {
		return server.Reply(ctx, env, &codec.Envelope{Kind: "message", Message: &codec.Message{MessageID: "r-" + env.ID,
			Role: codec.RoleAgent, Parts: []codec.Part{codec.TextPart("echo: " + env.Message.Text())}}})
	}); err != nil {
		t.Fatal(err)
	}
	serve(t, server, agentbus.ServeMemberTTL(2*time.Second))
	if err := <-got; err != nil {
		t.Fatalf("the stored Auto request: %v", err)
	}

	reply, err := client.Request(ctx, textEnvelope("asker", "echo", "", "direct"), agentbus.Auto)
	if err != nil || reply.Message.Text() != "echo: direct" {
		t.Fatalf("Auto request with a consumer: %v, %v", reply, err)
	}
	if n := lastSeq(); n != 1 {
		t.Fatalf("stream's last sequence %d after an Auto request with a consumer, want 1: it was stored", n)
	}
}
