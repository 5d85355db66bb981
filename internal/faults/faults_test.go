//go:build faults

package faults_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/a2abus/a2abus/agentbus"
	"github.com/a2abus/a2abus/codec"
	"github.com/a2abus/a2abus/internal/faults"
)

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
