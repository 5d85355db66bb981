//go:build faults

package faults_test

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
	"github.com/a2abus/a2abus/internal/faults"
)

// results are the scenarios' counts, printed as a summary after the run.
var (
	resultsMu sync.Mutex
	results   []result
)

type result struct {
	name     string
	counts   faults.Counts
	disorder int // messages first handled before one sent earlier under their key
	failed   bool
}

func init() { summaries = append(summaries, printFaultResults) }

// printFaultResults prints the fault scenarios' counts, if any ran.
func printFaultResults() {
	resultsMu.Lock()
	defer resultsMu.Unlock()
	if len(results) > 0 {
		var total faults.Counts
		disorder := 0
		fmt.Println("fault scenarios:")
		for _, r := range results {
			verdict := "ok"
			if r.failed {
				verdict = "FAIL"
			}
			fmt.Printf("  %-28s %-4s %v; %d out of order\n", r.name, verdict, r.counts, r.disorder)
			total.Acked += r.counts.Acked
			total.Handled += r.counts.Handled
			total.Lost += r.counts.Lost
			total.Duplicates += r.counts.Duplicates
			total.KeyDups += r.counts.KeyDups
			total.Overlaps += r.counts.Overlaps
			disorder += r.disorder
		}
		fmt.Printf("faults summary: %d scenarios, %d acknowledged sends, %d handled, %d lost, %d duplicates (%d by idempotency key), %d out of order, %d overlapping handler calls\n",
			len(results), total.Acked, total.Handled, total.Lost, total.Duplicates, total.KeyDups, disorder, total.Overlaps)
	}
}

func newRun(t *testing.T) *run { return newRunWith(t, runConfig{}) }

// finish stops the load, drains, logs the counts and checks them.
// redelivery says why the scenario may handle a key twice beyond the
// publisher's own retries, or is empty when it may not.
func (r *run) finish(redelivery string) faults.Counts {
	r.t.Helper()
	r.stopPublishing()
	ctx := ctxFor(r.t, 90*time.Second)
	drainErr := faults.WaitDrained(ctx, r.nc, r.ledger)
	c := r.ledger.Counts()
	dlq, _ := faults.StreamMsgs(ctx, r.nc, agentbus.DeadLetterStreamName)
	r.t.Logf("%s: %v; %d dead letters", r.t.Name(), c, dlq)
	if errs := r.ledger.SendErrors(5); len(errs) > 0 {
		r.t.Logf("failed sends (the first %d):\n\t%s", len(errs), strings.Join(errs, "\n\t"))
	}
	problems := check(r.ledger, redelivery)
	if drainErr != nil {
		problems = append(problems, drainErr.Error())
	}
	if dlq > 0 {
		problems = append(problems, fmt.Sprintf("%d dead letters: every handler succeeds, nothing may be dead-lettered", dlq))
	}
	resultsMu.Lock()
	disorder, _ := r.ledger.Order(0)
	results = append(results, result{name: strings.TrimPrefix(r.t.Name(), "Test"), counts: c, disorder: disorder, failed: len(problems) > 0})
	resultsMu.Unlock()
	for _, p := range problems {
		r.t.Error(p)
	}
	return c
}

// check returns what is wrong with a drained run's ledger: loss, handled
// envelopes nobody sent, duplicates an idempotency key would not catch,
// duplicates the scenario does not allow, messages of an ordering key
// handled out of send order, and handler calls of one ordering key that
// ran at once.
func check(l *faults.Ledger, redelivery string) []string {
	c := l.Counts()
	var out []string
	if c.Acked == 0 {
		out = append(out, "no send was acknowledged: the scenario tested nothing")
	}
	if c.Lost > 0 {
		out = append(out, fmt.Sprintf("%d acknowledged sends were never handled", c.Lost))
	}
	if c.Unknown > 0 {
		out = append(out, fmt.Sprintf("%d handled envelopes were never sent", c.Unknown))
	}
	if c.KeyDups > 0 {
		out = append(out, fmt.Sprintf("%d messages were handled under a different envelope ID than they were sent with: deduplicating by env.ID would not catch them", c.KeyDups))
	}
	if other := c.Duplicates - c.RetryDups; other > 0 && redelivery == "" {
		out = append(out, fmt.Sprintf("%d envelopes were handled twice although no consumer or server failed and the publisher did not resend them", other))
	}
	if n, examples := l.Order(10); n > 0 {
		out = append(out, fmt.Sprintf("%d messages were first handled before a message sent earlier under their ordering key:\n\t%s", n, strings.Join(examples, "\n\t")))
	}
	if c.Overlaps > 0 {
		out = append(out, fmt.Sprintf("%d pairs of handler calls of one ordering key ran at overlapping times, %d of them on two members:\n\t%s",
			c.Overlaps, c.CrossMember, strings.Join(l.Overlaps(10), "\n\t")))
	}
	return out
}

// TestCheckCatchesLoss is the harness's own check: a handled key the
// ledger forgets (as if the handler never saw it) must fail the check, as
// must a duplicate where none is allowed.
func TestCheckCatchesLoss(t *testing.T) {
	l := faults.NewLedger()
	env := textEnv("a", "")
	k := l.Book(env)
	env.ID = "id-1"
	l.Sent(k, env.ID, nil)
	l.Handled(env)
	if p := check(l, ""); len(p) > 0 {
		t.Fatalf("a clean ledger fails the check: %v", p)
	}
	l.Handled(env)
	if p := check(l, ""); len(p) != 1 {
		t.Errorf("a redelivery where none is allowed: problems %v, want one", p)
	}
	if p := check(l, "a consumer crashed"); len(p) > 0 {
		t.Errorf("an allowed redelivery fails the check: %v", p)
	}
	env.ID = "id-2"
	l.Handled(env)
	if p := check(l, "a consumer crashed"); len(p) != 1 {
		t.Errorf("a duplicate under another ID: problems %v, want one", p)
	}

	l = faults.NewLedger()
	env = textEnv("a", "")
	k = l.Book(env)
	env.ID = "id-1"
	l.Sent(k, env.ID, nil)
	l.Handled(env)
	if !l.Forget() {
		t.Fatal("nothing to forget")
	}
	if p := check(l, "any"); len(p) != 1 || !strings.Contains(p[0], "never handled") {
		t.Errorf("a forgotten handling: problems %v, want the loss", p)
	}
}

// TestCheckCatchesDisorder: within one ordering key (agent and
// conversation) a message first handled after one sent later fails the
// check; across keys, and for a message whose first Send failed (the
// application resent it, so its place is its own doing), it does not; a
// redelivery of an earlier message after a later one is no violation when
// the earlier one's first handling came first.
func TestCheckCatchesDisorder(t *testing.T) {
	for _, tc := range []struct {
		name    string
		handle  []int // indexes of the sent messages, in handling order
		failed  int   // index of a message whose first Send failed, or -1
		retire  int   // retire what is settled after this many handlings, if > 0
		wantBad int
	}{
		{name: "in order", handle: []int{0, 1, 2, 3}, failed: -1},
		{name: "other keys interleaved", handle: []int{0, 4, 1, 5, 2, 3}, failed: -1},
		{name: "redelivered after later ones", handle: []int{0, 1, 2, 1, 0, 3}, failed: -1},
		{name: "swapped", handle: []int{0, 2, 1, 3}, failed: -1, wantBad: 1},
		{name: "redelivered batch scrambled", handle: []int{0, 3, 1, 2}, failed: -1, wantBad: 1},
		{name: "reversed", handle: []int{3, 2, 1, 0}, failed: -1, wantBad: 3},
		{name: "a resent message late", handle: []int{0, 2, 3, 1}, failed: 1},
		{name: "across a retirement", handle: []int{0, 1, 3, 2}, failed: -1, retire: 3, wantBad: 1},
		{name: "swapped, then retired", handle: []int{1, 0, 2, 3}, failed: -1, retire: 2, wantBad: 1},
		{name: "in order across a retirement", handle: []int{0, 1, 2, 3}, failed: -1, retire: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := faults.NewLedger()
			var envs []*codec.Envelope
			for i := range 6 {
				env := &codec.Envelope{From: "pub", To: "a", Message: &codec.Message{Role: codec.RoleUser, ContextID: "c1"}}
				if i >= 4 {
					env.Message.ContextID = "c2"
				}
				k := l.Book(env)
				env.ID = fmt.Sprintf("id-%d", i)
				if i == tc.failed {
					l.Sent(k, env.ID, errors.New("timeout"))
				}
				l.Sent(k, env.ID, nil)
				envs = append(envs, env)
			}
			for n, i := range tc.handle {
				l.Handled(envs[i])
				if n+1 == tc.retire {
					l.Retire(0)
					l.Retire(1)
					l.Retire(2)
				}
			}
			for _, i := range []int{4, 5} {
				l.Handled(envs[i])
			}
			bad, examples := l.Order(10)
			if bad != tc.wantBad {
				t.Errorf("order violations %d (%v), want %d", bad, examples, tc.wantBad)
			}
			if p := check(l, "redeliveries allowed"); (len(p) > 0) != (tc.wantBad > 0) {
				t.Errorf("check: %v", p)
			}
		})
	}
}

// TestCheckCatchesOverlap: two handler calls of one ordering key that run
// at overlapping times fail the check, on two members or one, a canceled
// call included; calls of different keys, and calls one after the other,
// do not; a killed call ends at the kill.
func TestCheckCatchesOverlap(t *testing.T) {
	l := faults.NewLedger()
	var envs []*codec.Envelope
	for i := range 4 {
		env := &codec.Envelope{From: "pub", To: "a", Message: &codec.Message{Role: codec.RoleUser, ContextID: "c1"}}
		if i == 3 {
			env.Message.ContextID = "c2"
		}
		k := l.Book(env)
		env.ID = fmt.Sprintf("id-%d", i)
		l.Sent(k, env.ID, nil)
		envs = append(envs, env)
	}
	ctx := context.Background()
	a := l.Begin("m1", envs[0])
	other := l.Begin("m2", envs[3]) // another key: no overlap
	a.Done(ctx, nil)
	b := l.Begin("m2", envs[1]) // after a: no overlap
	other.Done(ctx, nil)
	b.Done(ctx, nil)
	if c := l.Counts(); c.Overlaps != 0 {
		t.Fatalf("sequential calls overlap: %v", l.Overlaps(5))
	}

	k := l.Begin("m1", envs[2])
	k.Killed(time.Now())
	after := l.Begin("m2", envs[2]) // after the kill: no overlap
	after.Done(ctx, nil)
	if c := l.Counts(); c.Overlaps != 0 {
		t.Fatalf("a call after a killed one overlaps it: %v", l.Overlaps(5))
	}

	fenced, cancel := context.WithCancelCause(ctx)
	x := l.Begin("m1", envs[1])
	y := l.Begin("m2", envs[1])
	y.Done(ctx, nil)
	cancel(agentbus.ErrFenced)
	x.Done(fenced, fenced.Err())
	z := l.Begin("m2", envs[2])
	w := l.Begin("m2", envs[2])
	w.Done(ctx, nil)
	z.Done(ctx, nil)
	c := l.Counts()
	if c.Overlaps != 2 || c.CrossMember != 1 || c.Fenced != 1 || c.Killed != 1 {
		t.Errorf("counts %v, want 2 overlaps (1 on two members), 1 fenced, 1 killed; %v", c, l.Overlaps(5))
	}
	if p := check(l, "redeliveries allowed"); len(p) != 1 || !strings.Contains(p[0], "overlapping") {
		t.Errorf("check: %v, want the overlaps", p)
	}
}

func textEnv(to, text string) *codec.Envelope {
	return &codec.Envelope{To: to, Message: &codec.Message{Role: codec.RoleUser, Parts: []codec.Part{codec.TextPart(text)}}}
}
