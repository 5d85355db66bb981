package agentbus_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/a2abus/a2abus/agentbus"
	"github.com/a2abus/a2abus/codec"
	"github.com/a2abus/a2abus/embedded"
	"github.com/a2abus/a2abus/embedded/embeddedtest"
	"github.com/a2abus/a2abus/placement"
	"github.com/nats-io/nats.go/jetstream"
)

// TestDeclare declares a pool, then declares it again as each row says,
// in order, on one registry: the same declaration is accepted, a
// conflicting one is refused with ErrPoolMismatch and a message naming
// what the registry holds and what was asked.
func TestDeclare(t *testing.T) {
	srv := embeddedtest.RunServer(t, embedded.WithoutListener())
	bus := connectBus(t, srv)
	// A first send starts the bus's registry watch, so that what the bus
	// learns from its own declarations counts too.
	declarePool(t, bus, agentbus.PoolConfig{Name: "probe", Partitions: 1}, "probe")
	if err := bus.Send(testCtx(t, 30*time.Second), textEnvelope("a", "probe", "p1", "x")); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		cfg     agentbus.PoolConfig
		agents  []string
		wantErr error    // nil: accepted
		wantIn  []string // in the error's message
	}{
		{"creates", agentbus.PoolConfig{Name: "alpha", Partitions: 4}, []string{"a1", "a2"}, nil, nil},
		{"accepts the same", agentbus.PoolConfig{Name: "alpha", Partitions: 4, Order: "conversation"}, []string{"a1", "a2"}, nil, nil},
		{"adds an agent", agentbus.PoolConfig{Name: "alpha", Partitions: 4}, []string{"a3"}, nil, nil},
		{"another partition count", agentbus.PoolConfig{Name: "alpha", Partitions: 8}, []string{"a1"}, agentbus.ErrPoolMismatch,
			[]string{"pool alpha", "4 partitions", "asks for 8"}},
		{"another order", agentbus.PoolConfig{Name: "alpha", Partitions: 4, Order: "agent"}, []string{"a1"}, agentbus.ErrPoolMismatch,
			[]string{"pool alpha", "ordered by conversation", "ordered by agent"}},
		{"agent in another pool", agentbus.PoolConfig{Name: "beta", Partitions: 4}, []string{"b1", "a2"}, agentbus.ErrPoolMismatch,
			[]string{"a2", `pool "alpha"`, "pool is beta"}},
		{"invalid agent", agentbus.PoolConfig{Name: "alpha", Partitions: 4}, []string{"a.b"}, agentbus.ErrInvalidAgentID, nil},
		{"invalid pool name", agentbus.PoolConfig{Name: "al pha", Partitions: 4}, []string{"a1"}, placement.ErrInvalidPool, nil},
		{"invalid order", agentbus.PoolConfig{Name: "gamma", Order: "random"}, []string{"g1"}, placement.ErrInvalidOption, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := bus.Declare(testCtx(t, 30*time.Second), tt.cfg, tt.agents...)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("Declare: %v", err)
				}
				if p.Name() != tt.cfg.Name || p.Partitions() != tt.cfg.Partitions || p.Order() != placement.OrderConversation {
					t.Fatalf("Declare returned pool %s with %d partitions ordered by %v", p.Name(), p.Partitions(), p.Order())
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Declare = %v, want %v", err, tt.wantErr)
			}
			for _, s := range tt.wantIn {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not say %q", err, s)
				}
			}
		})
	}
	pools, err := bus.Pools(testCtx(t, 30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for cfg, agents := range pools {
		if cfg.Name != "alpha" {
			continue
		}
		found = true
		if cfg.Partitions != 4 || cfg.Order != "conversation" || strings.Join(agents, ",") != "a1,a2,a3" {
			t.Errorf("registry holds pool %+v with %v after the refusals, want alpha unchanged: 4 partitions by conversation, a1,a2,a3", cfg, agents)
		}
	}
	if !found {
		t.Errorf("registry lost pool alpha: %v", pools)
	}

	// This bus sends alpha's agents to alpha, refused declarations
	// notwithstanding.
	ctx := testCtx(t, 30*time.Second)
	for _, a := range []string{"a1", "a2", "a3"} {
		if err := bus.Send(ctx, textEnvelope("a", a, "to-"+a, "x")); err != nil {
			t.Fatal(err)
		}
	}
	for _, subj := range storedSubjects(t, embeddedtest.Connect(t, srv))[1:] {
		if pool, _, agent, err := placement.ParseSubject(subj); err != nil || pool != "alpha" {
			t.Errorf("%s sent on %s, want pool alpha (%v)", agent, subj, err)
		}
	}
}

// TestServeRefusesMismatchedPools: Serve fails with ErrPoolMismatch, and
// a message naming both sides, when it would join a pool with another
// partitioning, serve an agent another pool serves, or join a pool whose
// live members serve other agents.
func TestServeRefusesMismatchedPools(t *testing.T) {
	srv := embeddedtest.RunServer(t)
	member := connectBus(t, srv)
	if err := member.Handle("x", func(context.Context, *codec.Envelope) error { return nil }); err != nil {
		t.Fatal(err)
	}
	serve(t, member, agentbus.ServePool("shared"), agentbus.ServePartitions(4), agentbus.ServeMemberID("first"))
	waitFor(t, "the first member to join", func() bool {
		ms, err := member.Members(testCtx(t, 10*time.Second))
		return err == nil && len(ms) == 1
	})

	tests := []struct {
		name   string
		agents []string
		opts   []agentbus.ServeOption
		wantIn []string
	}{
		{"another partition count", []string{"x"}, []agentbus.ServeOption{agentbus.ServePool("shared"), agentbus.ServePartitions(8)},
			[]string{"4 partitions", "asks for 8"}},
		{"another order", []string{"x"}, []agentbus.ServeOption{agentbus.ServePool("shared"), agentbus.ServePartitions(4), agentbus.ServeOrder(placement.OrderAgent)},
			[]string{"ordered by conversation", "ordered by agent"}},
		{"agent of another pool", []string{"x"}, []agentbus.ServeOption{agentbus.ServePool("other"), agentbus.ServePartitions(4)},
			[]string{"agent x", `pool "shared"`, "pool is other"}},
		{"members serving other agents", []string{"x", "y"}, []agentbus.ServeOption{agentbus.ServePool("shared"), agentbus.ServePartitions(4)},
			[]string{"member first serves [x]", "this member serves [x y]"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bus := connectBus(t, srv)
			for _, a := range tt.agents {
				if err := bus.Handle(a, func(context.Context, *codec.Envelope) error { return nil }); err != nil {
					t.Fatal(err)
				}
			}
			// A Serve that is not refused runs until this context ends and
			// returns nil.
			err := bus.Serve(testCtx(t, 20*time.Second), tt.opts...)
			if !errors.Is(err, agentbus.ErrPoolMismatch) {
				t.Fatalf("Serve = %v, want ErrPoolMismatch", err)
			}
			for _, s := range tt.wantIn {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not say %q", err, s)
				}
			}
		})
	}
	ms, err := member.Members(testCtx(t, 10*time.Second))
	if err != nil || len(ms) != 1 || ms[0].ID != "first" {
		t.Errorf("members after the refusals: %+v (%v), want the first only", ms, err)
	}
}

// TestServeBadConfig: Serve with nothing to serve, or told to serve an
// agent it has no handler for, fails at once and says why.
func TestServeBadConfig(t *testing.T) {
	srv := embeddedtest.RunServer(t, embedded.WithoutListener())
	empty := connectBus(t, srv)
	one := connectBus(t, srv)
	if err := one.Handle("real", func(context.Context, *codec.Envelope) error { return nil }); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		bus    *agentbus.Bus
		opts   []agentbus.ServeOption
		wantIn string
	}{
		{"no handlers", empty, nil, "no agents to serve"},
		{"agent without handler", one, []agentbus.ServeOption{agentbus.ServeAgents("real", "ghost")}, "agent ghost is to be served but has no handler"},
		{"invalid agent", one, []agentbus.ServeOption{agentbus.ServeAgents("a.b")}, "invalid agent ID"},
		{"invalid pool", one, []agentbus.ServeOption{agentbus.ServePool("a*")}, "invalid pool name"},
		{"no partitions", one, []agentbus.ServeOption{agentbus.ServePartitions(0)}, "0 partitions"},
		{"short ack wait", one, []agentbus.ServeOption{agentbus.ServeAckWait(500 * time.Millisecond)}, "ack wait 500ms under 1s"},
		{"no handler time", one, []agentbus.ServeOption{agentbus.ServeHandlerTimeout(0)}, "handler timeout"},
		{"negative drain", one, []agentbus.ServeOption{agentbus.ServeDrainTimeout(-time.Second)}, "drain timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A Serve that starts runs until this context ends and returns nil.
			err := tt.bus.Serve(testCtx(t, 10*time.Second), tt.opts...)
			if err == nil || !strings.Contains(err.Error(), tt.wantIn) {
				t.Fatalf("Serve = %v, want an error saying %q", err, tt.wantIn)
			}
		})
	}
	if pools, err := one.Pools(testCtx(t, 10*time.Second)); err != nil || len(pools) != 0 {
		t.Errorf("pools after the failed Serves: %v (%v), want none", pools, err)
	}
}

// TestSendUnknownAgent: a send to an agent no pool declared fails at once
// (before its context ends) with ErrUnknownAgent, in every form, and
// stores nothing.
func TestSendUnknownAgent(t *testing.T) {
	srv := embeddedtest.RunServer(t)
	bus := connectBus(t, srv)
	declarePool(t, bus, sendPool, "known")
	ctx := testCtx(t, 30*time.Second)
	sends := map[string]func(*codec.Envelope) error{
		"Send": func(env *codec.Envelope) error { return bus.Send(ctx, env) },
		"SendAsync": func(env *codec.Envelope) error {
			_, err := bus.SendAsync(ctx, env)
			return err
		},
		"SendDirect": func(env *codec.Envelope) error { return bus.SendDirect(ctx, env) },
	}
	for name, send := range sends {
		t.Run(name, func(t *testing.T) {
			err := send(textEnvelope("a", "stranger", "", "x"))
			if !errors.Is(err, agentbus.ErrUnknownAgent) || errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("%s to an undeclared agent: %v, want ErrUnknownAgent at once", name, err)
			}
			if !strings.Contains(err.Error(), "stranger") {
				t.Errorf("error %q does not name the agent", err)
			}
		})
	}
	if err := bus.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if n := streamMsgs(t, embeddedtest.Connect(t, srv), agentbus.StreamName); n != 0 {
		t.Fatalf("%d messages stored in stream %s, want none", n, agentbus.StreamName)
	}
}

// TestSendWaitsForUnknownAgent: with WaitUnknown a send to an undeclared
// agent waits; another bus declaring the agent lets it through to the
// declared pool; a send whose context ends first fails with
// ErrUnknownAgent and the context's error, and stores nothing.
func TestSendWaitsForUnknownAgent(t *testing.T) {
	srv := embeddedtest.RunServer(t)
	sender := connectBus(t, srv, agentbus.WithUnknownAgents(agentbus.WaitUnknown))
	nc := embeddedtest.Connect(t, srv)

	short, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err := sender.Send(short, textEnvelope("a", "never", "n1", "x"))
	if !errors.Is(err, agentbus.ErrUnknownAgent) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("send whose context ends before a declaration: %v, want ErrUnknownAgent and DeadlineExceeded", err)
	}

	ctx := testCtx(t, 30*time.Second)
	sent := make(chan error, 1)
	go func() { sent <- sender.Send(ctx, textEnvelope("a", "late", "l1", "x")) }()
	// Give the send time to fail, were it going to: it must not.
	select {
	case err := <-sent:
		t.Fatalf("send to an undeclared agent returned before the declaration: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	if n := streamMsgs(t, nc, agentbus.StreamName); n != 0 {
		t.Fatalf("%d messages stored before the agent was declared", n)
	}
	declarer := connectBus(t, srv)
	pool := declarePool(t, declarer, agentbus.PoolConfig{Name: "latecomers", Partitions: 4}, "late")
	if err := <-sent; err != nil {
		t.Fatalf("the waiting send: %v", err)
	}
	want, _ := pool.Subject("late", pool.Partition("late", "a"))
	if got := storedSubjects(t, nc); len(got) != 1 || got[0] != want {
		t.Fatalf("stored on %v, want [%s]", got, want)
	}
}

// TestWithRoute: a bus told an agent's pool sends to it without reading
// the registry (it does not even exist), and a member of that pool
// handles what it sent.
func TestWithRoute(t *testing.T) {
	srv := embeddedtest.RunServer(t)
	route := agentbus.PoolConfig{Name: "routed", Partitions: 4}
	sender := connectBus(t, srv, agentbus.WithRoute("target", route))
	ctx := testCtx(t, 30*time.Second)
	if err := sender.Send(ctx, textEnvelope("a", "target", "t1", "x")); err != nil {
		t.Fatalf("send on a route: %v", err)
	}
	js, _ := jetstream.New(embeddedtest.Connect(t, srv))
	if _, err := js.KeyValue(ctx, agentbus.PoolsBucket); !errors.Is(err, jetstream.ErrBucketNotFound) {
		t.Fatalf("registry bucket after a routed send: %v, want it not to exist", err)
	}
	pool, _ := placement.NewPool("routed", 4, placement.OrderConversation)
	want, _ := pool.Subject("target", pool.Partition("target", "a"))
	if got := storedSubjects(t, embeddedtest.Connect(t, srv)); len(got) != 1 || got[0] != want {
		t.Fatalf("stored on %v, want [%s]", got, want)
	}

	member := connectBus(t, srv)
	got := make(chan string, 1)
	if err := member.Handle("target", func(_ context.Context, env *codec.Envelope) error {
		got <- env.ID
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	serve(t, member, agentbus.ServePool("routed"), agentbus.ServePartitions(4))
	select {
	case id := <-got:
		if id != "t1" {
			t.Fatalf("handled %s, want t1", id)
		}
	case <-ctx.Done():
		t.Fatal("the routed envelope was not handled")
	}
}

// TestRegistryWatchSeesLaterDeclarations: a sender that already sent (its
// registry watch running) can send to an agent declared afterwards by
// another bus, without a restart, and to its pool.
func TestRegistryWatchSeesLaterDeclarations(t *testing.T) {
	srv := embeddedtest.RunServer(t)
	sender := connectBus(t, srv)
	declarePool(t, sender, agentbus.PoolConfig{Name: "early", Partitions: 4}, "first")
	ctx := testCtx(t, 30*time.Second)
	if err := sender.Send(ctx, textEnvelope("a", "first", "f1", "x")); err != nil {
		t.Fatal(err)
	}
	if err := sender.Send(ctx, textEnvelope("a", "second", "s0", "x")); !errors.Is(err, agentbus.ErrUnknownAgent) {
		t.Fatalf("send before the declaration: %v, want ErrUnknownAgent", err)
	}
	other := connectBus(t, srv)
	pool := declarePool(t, other, agentbus.PoolConfig{Name: "later", Partitions: 4}, "second")
	// The watch applies the declaration a moment after it is stored.
	waitFor(t, "the sender to see the declaration", func() bool {
		err := sender.Send(ctx, textEnvelope("a", "second", "s1", "x"))
		if err != nil && !errors.Is(err, agentbus.ErrUnknownAgent) {
			t.Fatal(err)
		}
		return err == nil
	})
	want, _ := pool.Subject("second", pool.Partition("second", "a"))
	got := storedSubjects(t, embeddedtest.Connect(t, srv))
	if len(got) != 2 || got[1] != want {
		t.Fatalf("stored on %v, want the second on %s", got, want)
	}
}

// TestConversation: the conversation of an envelope is its context-ID
// header, else the context ID of its message, task or event, else its
// sender.
func TestConversation(t *testing.T) {
	withHeader := func(env *codec.Envelope, v string) *codec.Envelope {
		env.Headers.Set(agentbus.HeaderContextID, v)
		return env
	}
	tests := []struct {
		name string
		env  *codec.Envelope
		want string
	}{
		{"header", withHeader(&codec.Envelope{From: "f"}, "h-1"), "h-1"},
		{"header over message", withHeader(&codec.Envelope{From: "f", Message: &codec.Message{ContextID: "m-1"}}, "h-1"), "h-1"},
		{"empty header", withHeader(&codec.Envelope{From: "f", Message: &codec.Message{ContextID: "m-1"}}, ""), "m-1"},
		{"message", &codec.Envelope{From: "f", Message: &codec.Message{ContextID: "m-1"}}, "m-1"},
		{"task", &codec.Envelope{From: "f", Task: &codec.Task{ID: "t", ContextID: "t-1"}}, "t-1"},
		{"status update", &codec.Envelope{From: "f", StatusUpdate: &codec.TaskStatusUpdateEvent{ContextID: "s-1"}}, "s-1"},
		{"artifact update", &codec.Envelope{From: "f", ArtifactUpdate: &codec.TaskArtifactUpdateEvent{ContextID: "a-1"}}, "a-1"},
		{"message without context", &codec.Envelope{From: "f", Message: &codec.Message{}}, "f"},
		{"task without context", &codec.Envelope{From: "f", Task: &codec.Task{ID: "t"}}, "f"},
		{"payload only", &codec.Envelope{From: "f", Payload: "x"}, "f"},
		{"nothing", &codec.Envelope{}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := agentbus.Conversation(tt.env); got != tt.want {
				t.Fatalf("Conversation = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestConversationsSpreadOverPartitions: one agent's conversations go to
// several partitions of its pool, each conversation always to the same
// one; in a pool ordered by agent, all go to one.
func TestConversationsSpreadOverPartitions(t *testing.T) {
	srv := embeddedtest.RunServer(t)
	bus := connectBus(t, srv)
	declarePool(t, bus, agentbus.PoolConfig{Name: "spread", Partitions: 8}, "many")
	declarePool(t, bus, agentbus.PoolConfig{Name: "single", Partitions: 8, Order: "agent"}, "one")
	ctx := testCtx(t, 30*time.Second)
	for round := range 2 {
		for c := range 16 {
			for _, to := range []string{"many", "one"} {
				env := textEnvelope("a", to, "", "x")
				env.Message.ContextID = "conv-" + string(rune('a'+c))
				if _, err := bus.SendAsync(ctx, env); err != nil {
					t.Fatalf("round %d: %v", round, err)
				}
			}
		}
	}
	if err := bus.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	parts := map[string]map[int]bool{}
	for _, subj := range storedSubjects(t, embeddedtest.Connect(t, srv)) {
		pool, part, agent, err := placement.ParseSubject(subj)
		if err != nil {
			t.Fatal(err)
		}
		if want := map[string]string{"many": "spread", "one": "single"}[agent]; pool != want {
			t.Errorf("%s stored in pool %s, want %s", agent, pool, want)
		}
		if parts[agent] == nil {
			parts[agent] = map[int]bool{}
		}
		parts[agent][part] = true
	}
	if n := len(parts["many"]); n < 4 {
		t.Errorf("16 conversations of one agent used %d of 8 partitions", n)
	}
	if n := len(parts["one"]); n != 1 {
		t.Errorf("an agent of a pool ordered by agent used %d partitions, want 1", n)
	}
}
