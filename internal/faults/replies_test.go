//go:build faults

package faults_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/a2abus/a2abus/agentbus"
	"github.com/a2abus/a2abus/codec"
	"github.com/a2abus/a2abus/internal/faults"
)

// TestReplyAcrossSlowRoute (issue 15): requesters connected to one server
// send durable requests to an agent consumed on another, whose route to
// the requesters' server is slow (300 ms), while the stored requests
// travel by the other routes. Each requester is new (as each `agentd send
// --wait` is), so its reply subscription is made just before its request,
// and the replying server does not know of it yet when the reply is
// ready. Every request must still get its reply.
func TestReplyAcrossSlowRoute(t *testing.T) {
	r := newRun(t)
	ctx := ctxFor(t, 3*time.Minute)
	leader := r.c.StreamLeader(agentbus.StreamName)
	requester, consumer := (leader+1)%3, (leader+2)%3
	r.c.DelayRoute(requester, consumer, 300*time.Millisecond)
	defer r.c.DelayRoute(requester, consumer, 0)

	host, err := faults.Connect(ctx, r.c.DirectURLs(consumer), "answerer-host", logger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = host.Close(context.Background()) })
	if err := host.Handle("answerer", func(ctx context.Context, env *codec.Envelope) error {
		return host.Reply(ctx, env, &codec.Envelope{Kind: "answer", Payload: env.Payload})
	}); err != nil {
		t.Fatal(err)
	}
	sctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- host.Serve(sctx, agentbus.ServePartitions(8)) }()
	defer func() {
		stop()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()

	// The member pulls every partition before the run: a warm-up request
	// from the consumer's own server to each partition's key.
	warm, err := faults.Connect(ctx, r.c.DirectURLs(consumer), "warm-up", logger(t))
	if err != nil {
		t.Fatal(err)
	}
	const requests = 24
	for i := range requests {
		body := fmt.Sprintf("question %d", i)
		env := &codec.Envelope{From: "asker", To: "answerer", Kind: "question", Payload: body}
		env.Headers.Set(agentbus.HeaderContextID, body)
		if _, err := warm.Request(ctxFor(t, time.Minute), env, agentbus.Durable); err != nil {
			t.Fatalf("warm-up request %d: %v", i, err)
		}
	}
	_ = warm.Close(context.Background())

	lost := 0
	start := time.Now()
	for i := range requests {
		bus, err := faults.Connect(ctx, r.c.DirectURLs(requester), fmt.Sprintf("requester-%d", i), logger(t))
		if err != nil {
			t.Fatal(err)
		}
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		body := fmt.Sprintf("question %d", i)
		env := &codec.Envelope{From: "asker", To: "answerer", Kind: "question", Payload: body}
		env.Headers.Set(agentbus.HeaderContextID, body) // spread over the partitions
		reply, err := bus.Request(rctx, env, agentbus.Durable)
		cancel()
		switch {
		case err != nil:
			lost++
			t.Logf("request %d: %v", i, err)
		case reply.Payload != body:
			t.Errorf("request %d: reply %v, want %q", i, reply.Payload, body)
		}
		_ = bus.Close(context.Background())
	}
	t.Logf("%d requests across the slow route in %v", requests, time.Since(start).Round(time.Millisecond))
	if lost > 0 {
		t.Fatalf("%d of %d requests across the slow route got no reply", lost, requests)
	}
}
