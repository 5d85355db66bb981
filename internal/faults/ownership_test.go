//go:build faults

package faults_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/a2abus/a2abus/agentbus"
	"github.com/a2abus/a2abus/internal/faults"
)

// The ownership scenarios of issue 13: agents whose handlers take as long
// as LLM calls do (faults.HandlerTime: 50-300 ms for 70% of the messages,
// 1-4 s for 25%, 8-15 s for 5%), the default member TTL and ack wait, and
// members joining, leaving, crashing and stalling while handlers run. Each
// checks, on top of loss and duplicates, that every ordering key (agent and
// conversation) was first handled in send order and that no two handler
// calls of one key ran at overlapping times, on one member or two.
const (
	ownerAgents        = 40
	ownerConversations = 3 // per agent
	ownerMembers       = 4 // at the start
	// ownerPartitions, twice the suite's: a partition handles one batch at
	// a time, so 40 agents with handlers of seconds need partitions more
	// than members to finish a few hundred messages in a minute.
	ownerPartitions = 16
)

// ownerServe are the scenarios' Serve options: the default member TTL and
// ack wait, stated.
var ownerServe = []agentbus.ServeOption{
	agentbus.ServePartitions(ownerPartitions),
	agentbus.ServeMemberTTL(agentbus.DefaultMemberTTL),
	agentbus.ServeAckWait(agentbus.DefaultAckWait),
}

// newOwnerRun is a run with the scenario's agents and ownerMembers members,
// m1 to m4.
func newOwnerRun(t *testing.T) (*run, []*faults.Consumer) {
	r := newRun(t)
	r.agents = faults.Agents(ownerAgents)
	var ms []*faults.Consumer
	for i := range ownerMembers {
		ms = append(ms, r.member(fmt.Sprintf("m%d", i+1), i%3))
	}
	return r, ms
}

// member starts a member connected through a link of its own (to node
// first, then the others), its handlers working for faults.HandlerTime.
func (r *run) member(name string, first int) *faults.Consumer {
	r.t.Helper()
	link, err := r.c.NewLink()
	if err != nil {
		r.t.Fatal(err)
	}
	cons, err := faults.StartConsumer(ctxFor(r.t, 30*time.Second), faults.ConsumerConfig{
		URLs: link.URLs(first), Link: link, Name: name, Agents: r.agents, Ledger: r.ledger, Log: logger(r.t),
		Serve: ownerServe, Work: faults.HandlerTime,
	})
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := cons.Stop(ctx); err != nil {
			r.t.Errorf("stop member %s: %v", name, err)
		}
	})
	return cons
}

// converse starts rounds of one message to every conversation of every
// agent, a round every pause; the channel closes when the last round's
// sends have returned.
func (r *run) converse(rounds int, pause time.Duration) <-chan struct{} {
	bus := r.publisher("pub", 2)
	done := make(chan struct{})
	r.load(func(ctx context.Context) {
		defer close(done)
		faults.Converse(ctx, faults.ConversationsConfig{Bus: bus, From: "pub", Agents: r.agents,
			Conversations: ownerConversations, Ledger: r.ledger, Rounds: rounds, Pause: pause, Timeout: 30 * time.Second})
	})
	return done
}

// waitRunning waits until one of ms has a handler running and returns it.
func waitRunning(t *testing.T, what string, ms ...*faults.Consumer) *faults.Consumer {
	t.Helper()
	var busy *faults.Consumer
	waitFor(t, what, func() bool {
		for _, m := range ms {
			if m.Running() > 0 {
				busy = m
				return true
			}
		}
		return false
	})
	return busy
}

// waitDone waits for the end of the load, or fails after 2 minutes.
func waitDone(t *testing.T, done <-chan struct{}) {
	t.Helper()
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		t.Fatal("the load's sends did not return in 2 minutes")
	}
}

// TestOwnershipJoinLeaveJoin: four members under load; while handlers run
// a fifth joins, then a member leaves gracefully while one of its handlers
// runs for 10 s and, while it drains, a sixth joins. A graceful hand-over
// redelivers nothing and cancels nothing: no duplicate is allowed, and the
// leaver's handler runs to its end.
func TestOwnershipJoinLeaveJoin(t *testing.T) {
	r, ms := newOwnerRun(t)
	done := r.converse(3, 4*time.Second)

	waitRunning(t, "a handler running before the join", ms...)
	r.waitHandled("before the join", 40)
	ms = append(ms, r.member("m5", 0))
	t.Logf("m5 joined")

	waitFor(t, "m5 to handle envelopes", func() bool { return ms[4].Handled() > 0 })
	leaver := ms[1]
	held := leaver.HoldNext(10 * time.Second)
	waitStarted(t, leaver, held)
	left := make(chan error, 1)
	go func() { left <- leaver.Stop(ctxFor(t, time.Minute)) }()
	t.Logf("%s leaves with %d handlers running", leaver.Name(), leaver.Running())

	time.Sleep(time.Second) // the leaver is draining
	waitRunning(t, "a handler running before the second join", ms...)
	r.member("m6", 1)
	t.Logf("m6 joined")

	if err := <-left; err != nil {
		t.Errorf("%s left: %v", leaver.Name(), err)
	}
	if _, end := held.Call().Span(); end.IsZero() || held.Call().Cause() != nil {
		t.Errorf("the leaver's running handler did not run to its end: ended %v, cause %v", !end.IsZero(), held.Call().Cause())
	}
	waitDone(t, done)
	c := r.finish("")
	if c.Canceled > 0 {
		t.Errorf("%d handler calls were canceled: a graceful leave within its drain time cancels none", c.Canceled)
	}
}

// TestOwnershipMemberKilled: four members under load; one is killed while
// one of its handlers runs (its link cut and its connection closed at
// once: no ack, no release, its handlers gone), and a new member joins in
// its place before the dead one's membership expires. The dead member's
// batches come back after their ack wait and are handled before anything
// later of their keys.
func TestOwnershipMemberKilled(t *testing.T) {
	r, ms := newOwnerRun(t)
	done := r.converse(3, 4*time.Second)
	victim := ms[0]

	r.waitHandled("before the kill", 40)
	held := victim.HoldNext(time.Minute)
	waitStarted(t, victim, held)
	killed := make(chan error, 1)
	go func() { killed <- victim.Kill(ctxFor(t, time.Minute)) }()
	t.Logf("killed %s with %d handlers running (k%d among them), %d handled", victim.Name(), victim.Running(), held.Call().Key(), victim.Handled())
	r.member("m5", 0)

	if err := <-killed; err != nil {
		t.Logf("kill: %v", err) // a crash need not go cleanly
	}
	waitDone(t, done)
	r.finish("the killed member's unacknowledged batches are redelivered (at least once)")
	if by, _, ok := r.ledger.First(held.Call().Key()); !ok || by == victim.Name() {
		t.Errorf("k%d, running on %s when it was killed, was handled by %q", held.Call().Key(), victim.Name(), by)
	}
}

// waitStarted waits until a handler call of m took the hold h.
func waitStarted(t *testing.T, m *faults.Consumer, h *faults.Held) {
	t.Helper()
	select {
	case <-h.Started():
	case <-time.After(time.Minute):
		t.Fatalf("no handler call started on %s within a minute", m.Name())
	}
}

// TestOwnershipMemberStalled: four members under load; one of them (its
// link cut by the harness's proxies: no KV request, heartbeat or progress
// ack reaches a server) is stalled past its member TTL while one of its
// handlers runs far longer than the ack wait. That handler's context must
// end with cause ErrFenced before another member handles its batch; the
// batch is redelivered to the member that takes the partition over.
func TestOwnershipMemberStalled(t *testing.T) {
	r, ms := newOwnerRun(t)
	done := r.converse(3, 4*time.Second)
	victim := ms[0]

	r.waitHandled("before the stall", 40)
	const holdFor = 40 * time.Second // far past the ack wait and the TTL
	held := victim.HoldNext(holdFor)
	waitStarted(t, victim, held)
	call := held.Call()
	key := call.Key()
	time.Sleep(agentbus.DefaultAckWait / 2) // a renewal of its hold or two
	cutAt := time.Now()
	victim.Link().Cut()
	t.Logf("cut %s off while its handler of k%d runs", victim.Name(), key)

	// Stalled past the TTL, and until another member handled the batch.
	var by string
	var otherStart time.Time
	ctx := ctxFor(t, 2*time.Minute)
	for {
		m, start, ok := r.ledger.First(key)
		if ok && m != victim.Name() && time.Since(cutAt) > agentbus.DefaultMemberTTL+2*time.Second {
			by, otherStart = m, start
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("k%d, held by the stalled member, was not handled by another member within 2 minutes", key)
		}
		time.Sleep(50 * time.Millisecond)
	}
	victim.Link().Restore()
	t.Logf("restored %s after %v; k%d handled by %s", victim.Name(), time.Since(cutAt).Round(time.Millisecond), key, by)

	for _, end := call.Span(); end.IsZero(); _, end = call.Span() {
		if ctx.Err() != nil {
			t.Fatal("the held handler call did not end")
		}
		time.Sleep(50 * time.Millisecond)
	}
	start, end := call.Span()
	t.Logf("the held call ran %v (cause %v); %s began k%d %v after the cut",
		end.Sub(start).Round(time.Millisecond), call.Cause(), by, key, otherStart.Sub(cutAt).Round(time.Millisecond))
	if cause := call.Cause(); !errors.Is(cause, agentbus.ErrFenced) {
		t.Errorf("the stalled member's handler ended with cause %v, want %v", cause, agentbus.ErrFenced)
	}
	if !end.Before(otherStart) {
		t.Errorf("the stalled member's handler of k%d ran until %v after the cut, but %s began it %v after the cut",
			key, end.Sub(cutAt), by, otherStart.Sub(cutAt))
	}

	waitDone(t, done)
	c := r.finish("the stalled member's fenced batches are redelivered (at least once)")
	if c.Fenced == 0 {
		t.Errorf("no handler call was fenced")
	}
}
