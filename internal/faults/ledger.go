package faults

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/a2abus/a2abus/agentbus"
	"github.com/a2abus/a2abus/codec"
)

// Ledger books what the load sent and what the handlers did, so that a run
// can say what was lost, what was handled twice, what was handled out of
// order and what was handled by two members at once.
//
// Every logical message has a number the ledger hands out (its key,
// carried as the message's text) and an ordering key: its agent and
// conversation, agentbus.Conversation, as the bus orders them. The bus
// gives each envelope an ID (env.ID, the idempotency key a handler dedupes
// by); a publisher that retries a failed Send sends the same envelope
// again, so the ID stays. The ledger checks both: a message handled twice
// under the same ID is a duplicate an idempotent handler absorbs, one
// handled under two IDs is one it would not.
//
// Order: within one ordering key, the messages whose first Send returned
// nil must be handled first (their first successful handler call) in the
// order they were sent. Overlap: no two handler calls of one ordering key
// may run at overlapping times, on one member or two; a call counts from
// Begin until it returned, or until its member was killed (Killed). A call
// that was canceled and failed still counts until it returned: the bus
// promises that a fenced handler's context is canceled before another
// member can be handed its batch.
//
// Messages done (acknowledged and handled) are retired after a while
// (Retire) into a bit set, each ordering key's oldest first, so a long soak
// holds only what is in flight.
type Ledger struct {
	mu      sync.Mutex
	t0      time.Time
	next    uint64
	live    map[uint64]*entry
	orders  map[string]*orderKey
	retired bitset // keys retired after they were handled
	unseen  bitset // keys retired without being handled (all Sends failed)
	firsts  uint64 // first handlings so far: the order they happened in
	c       Counts
	// retiredBad are the order violations found among retired keys,
	// retiredOrder examples of them.
	retiredBad   int
	retiredOrder []string
	overlaps     []string // examples, at most maxExamples
	sendErrs     []string // examples of failed Sends, at most maxExamples
}

// maxExamples bounds the examples of a problem the ledger keeps.
const maxExamples = 20

type entry struct {
	key      uint64
	id       string // the envelope ID the key was first sent or handled under
	order    *orderKey
	seq      int  // its place in its ordering key's send order, from 1
	attempts int  // Send calls
	acked    bool // a Send returned nil
	// inOrder: the first Send returned nil, so the message's place among
	// its key's is the one it was sent in.
	inOrder  bool
	failed   bool   // the last Send failed (the message may still be stored)
	handled  int    // successful handler calls
	first    uint64 // the order of its first successful handling, 0 before
	firstBy  string // the member that first handled it
	firstAt  time.Time
	doneAt   int // the Retire generation in which it was first settled
	inflight bool
}

// orderKey is one ordering key's messages and handler calls.
type orderKey struct {
	name  string
	sent  int      // messages sent under it
	keys  []uint64 // its live keys, in send order
	floor uint64   // the last first-handling among its retired in-order keys
	calls []*Call  // handler calls running, or done and possibly overlapping one running
}

// Counts are a ledger's totals. The invariants the fault suite checks are
// Lost == 0, Unknown == 0, KeyDups == 0, Overlaps == 0, and Duplicates ==
// RetryDups where the scenario does not crash a consumer or a server; and,
// with Ledger.Order, no order violation.
type Counts struct {
	Sends    int // Send calls, retries included
	Acked    int // keys whose Send returned nil: stored, so never to be lost
	Failed   int // keys whose Sends all failed (a failed Send may still have stored them)
	Retried  int // keys the publisher sent again after a failed Send
	Handled  int // successful handler calls
	Distinct int // keys handled at least once
	// Duplicates are handler calls beyond a key's first: redeliveries and
	// retried sends that were stored twice. RetryDups are those of keys the
	// publisher sent more than once.
	Duplicates int
	RetryDups  int
	// KeyDups are duplicates under a different envelope ID than the key's
	// first: a handler deduplicating by env.ID would handle them twice.
	KeyDups int
	// Unknown are handled envelopes that no publisher sent (or whose text
	// is not a key).
	Unknown int
	// Lost are acknowledged keys not handled (yet: it is loss once the run
	// is drained), InFlight keys whose first Send has not returned.
	Lost     int
	InFlight int
	// Calls are handler calls begun; Canceled those that ended with their
	// context canceled (Fenced of them with cause agentbus.ErrFenced),
	// Killed those whose member was killed while they ran.
	Calls, Canceled, Fenced, Killed int
	// Overlaps are pairs of handler calls of one ordering key that ran at
	// overlapping times; CrossMember of them on two members.
	Overlaps    int
	CrossMember int
}

// NewLedger returns an empty ledger.
func NewLedger() *Ledger {
	return &Ledger{t0: time.Now(), live: map[uint64]*entry{}, orders: map[string]*orderKey{}}
}

// OrderKey returns env's ordering key as the ledger names it:
// agent/conversation.
func OrderKey(env *codec.Envelope) string { return env.To + "/" + agentbus.Conversation(env) }

// Next returns a fresh key for a message of the ordering key order (see
// OrderKey), and the text that carries it. Messages of one ordering key are
// in send order in the order Next is called for them.
func (l *Ledger) Next(order string) (uint64, string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ok := l.orders[order]
	if ok == nil {
		ok = &orderKey{name: order}
		l.orders[order] = ok
	}
	l.next++
	k := l.next
	ok.sent++
	ok.keys = append(ok.keys, k)
	l.live[k] = &entry{key: k, order: ok, seq: ok.sent, doneAt: -1, inflight: true}
	l.c.InFlight++
	return k, "k" + strconv.FormatUint(k, 10)
}

// Book gives env, a message with no parts yet, a fresh key of its ordering
// key (Next) and makes the key its text; it returns the key.
func (l *Ledger) Book(env *codec.Envelope) uint64 {
	k, text := l.Next(OrderKey(env))
	env.Message.Parts = []codec.Part{codec.TextPart(text)}
	return k
}

// Sent books a Send of key with the envelope ID it went under and its
// outcome.
func (l *Ledger) Sent(key uint64, id string, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.live[key]
	if e == nil {
		return // retired: cannot happen, a retired key was sent for good
	}
	l.c.Sends++
	e.attempts++
	if e.attempts == 2 {
		l.c.Retried++
	}
	l.sameID(e, id)
	if e.inflight {
		e.inflight = false
		l.c.InFlight--
		e.inOrder = err == nil
	} else if e.acked {
		return
	}
	if err == nil {
		if e.failed {
			l.c.Failed--
		}
		e.acked, e.failed = true, false
		l.c.Acked++
		if e.handled == 0 {
			l.c.Lost++
		}
		return
	}
	if !e.failed {
		e.failed = true
		l.c.Failed++
	}
	if len(l.sendErrs) < maxExamples {
		l.sendErrs = append(l.sendErrs, fmt.Sprintf("k%d (%s) at %s: %v", key, e.order.name, l.at(time.Now()), err))
	}
}

// SendErrors returns up to n examples of failed Sends, the first ones.
func (l *Ledger) SendErrors(n int) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.sendErrs[:min(n, len(l.sendErrs))])
}

// Handled books a successful handler call for env, on no member in
// particular: Begin and Call.Done book one on a member, with its times.
func (l *Ledger) Handled(env *codec.Envelope) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.handled(env, "", time.Now())
}

// handled books a successful handler call of member that began at start;
// l.mu is held.
func (l *Ledger) handled(env *codec.Envelope, member string, start time.Time) {
	key, ok := parseKey(env)
	l.c.Handled++
	if !ok || key == 0 || key > l.next {
		l.c.Unknown++
		return
	}
	e := l.live[key]
	if e == nil {
		switch {
		case l.retired.has(key):
			// A late duplicate of a retired key: its ID is forgotten,
			// and so is whether it was retried.
			l.c.Duplicates++
		case l.unseen.has(key):
			// A key whose Sends failed, stored after all and handled
			// late: not a duplicate, not to be lost.
			l.c.Distinct++
		default:
			l.c.Unknown++
		}
		return
	}
	e.handled++
	if e.handled == 1 {
		l.c.Distinct++
		l.firsts++
		e.first, e.firstBy, e.firstAt = l.firsts, member, start
		if e.acked {
			l.c.Lost--
		}
	} else {
		l.c.Duplicates++
		if e.attempts > 1 {
			l.c.RetryDups++
		}
	}
	l.sameID(e, env.ID)
}

// sameID checks that every send and handling of a key has one envelope ID:
// the publisher reuses the envelope, so a second ID is the bus's doing.
func (l *Ledger) sameID(e *entry, id string) {
	switch e.id {
	case "":
		e.id = id
	case id:
	default:
		l.c.KeyDups++
	}
}

// Call is one handler call booked with Begin. Its methods are for the
// handler's goroutine; the ledger reads it under its lock.
type Call struct {
	l      *Ledger
	env    *codec.Envelope
	member string
	order  *orderKey // nil for an envelope the ledger did not send

	// Set under l.mu.
	start, end time.Time
	done       bool
	outcome    string // "ok", "failed", "canceled: <cause>", "killed"
	cause      error  // context.Cause of a canceled call
}

// Begin books the start of a handler call of member for env; end it with
// exactly one of Done or Killed.
func (l *Ledger) Begin(member string, env *codec.Envelope) *Call {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := &Call{l: l, env: env, member: member, start: time.Now()}
	l.c.Calls++
	if key, ok := parseKey(env); ok {
		if e := l.live[key]; e != nil {
			c.order = e.order
		}
	}
	if c.order == nil {
		c.order = l.orders[OrderKey(env)] // retired keys keep their order's calls
	}
	if c.order != nil {
		c.order.calls = append(c.order.calls, c)
	}
	return c
}

// Done ends the call as the handler returns err with ctx, its context: a
// nil err books a successful handling.
func (c *Call) Done(ctx context.Context, err error) {
	l := c.l
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case err == nil:
		c.outcome = "ok"
		l.handled(c.env, c.member, c.start)
	case ctx.Err() != nil:
		c.cause = context.Cause(ctx)
		c.outcome = "canceled: " + c.cause.Error()
		l.c.Canceled++
		if errors.Is(c.cause, agentbus.ErrFenced) {
			l.c.Fenced++
		}
	default:
		c.outcome = "failed"
	}
	l.end(c, time.Now())
}

// Killed ends the call at at, when its member was killed: a crashed
// process does nothing more.
func (c *Call) Killed(at time.Time) {
	l := c.l
	l.mu.Lock()
	defer l.mu.Unlock()
	c.outcome = "killed"
	l.c.Killed++
	l.end(c, at)
}

// Cause returns the cause of a canceled call's context, once the call is
// done; nil otherwise.
func (c *Call) Cause() error {
	c.l.mu.Lock()
	defer c.l.mu.Unlock()
	return c.cause
}

// Span returns when the call began and ended (zero while it runs).
func (c *Call) Span() (start, end time.Time) {
	c.l.mu.Lock()
	defer c.l.mu.Unlock()
	return c.start, c.end
}

// Key returns the ledger key of the call's envelope (0 if it has none).
func (c *Call) Key() uint64 {
	k, _ := parseKey(c.env)
	return k
}

// end closes c at t and checks it against the calls of its ordering key
// that are done: each overlapping pair is found once, when the later of
// the two ends. Then it drops the done calls no running call can overlap.
// l.mu is held.
func (l *Ledger) end(c *Call, t time.Time) {
	if t.Before(c.start) {
		t = c.start
	}
	c.end, c.done = t, true
	ok := c.order
	if ok == nil {
		return
	}
	for _, o := range ok.calls {
		if o == c || !o.done || !o.start.Before(c.end) || !c.start.Before(o.end) {
			continue
		}
		l.c.Overlaps++
		if o.member != c.member {
			l.c.CrossMember++
		}
		if len(l.overlaps) < maxExamples {
			l.overlaps = append(l.overlaps, fmt.Sprintf("%s: %s on %s [%s, %s] (%s) and %s on %s [%s, %s] (%s)",
				ok.name, l.callName(o), o.member, l.at(o.start), l.at(o.end), o.outcome,
				l.callName(c), c.member, l.at(c.start), l.at(c.end), c.outcome))
		}
	}
	// A call still to end can overlap only the done calls that ended after
	// the earliest start among the running ones.
	var oldest time.Time
	running := false
	for _, o := range ok.calls {
		if !o.done && (!running || o.start.Before(oldest)) {
			oldest, running = o.start, true
		}
	}
	ok.calls = slices.DeleteFunc(ok.calls, func(o *Call) bool {
		return o.done && (!running || o.end.Before(oldest))
	})
}

func (l *Ledger) callName(c *Call) string {
	k, _ := parseKey(c.env)
	if e := l.live[k]; e != nil {
		return fmt.Sprintf("k%d (#%d)", k, e.seq)
	}
	return fmt.Sprintf("k%d", k)
}

// at is t as seconds into the run.
func (l *Ledger) at(t time.Time) string { return fmt.Sprintf("%.3fs", t.Sub(l.t0).Seconds()) }

// Overlaps returns up to n examples of handler calls of one ordering key
// that ran at overlapping times.
func (l *Ledger) Overlaps(n int) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.overlaps[:min(n, len(l.overlaps))])
}

// Order checks the order of first handlings within each ordering key: each
// message whose first Send returned nil must have been first handled after
// every such message sent before it under its key. It returns the number of
// messages first handled before one sent earlier (in a redelivered batch
// that comes back as 11, 7, 8, 9, 10, 12, that is 11), with up to n
// examples. Call it once the run is drained: a message not handled yet is
// not checked.
func (l *Ledger) Order(n int) (int, []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := slices.Clone(l.retiredOrder)
	bad := l.retiredBad
	names := make([]string, 0, len(l.orders))
	for name := range l.orders {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		ok := l.orders[name]
		_, b := l.checkOrder(ok, ok.keys, ok.floor, &out)
		bad += b
	}
	return bad, out[:min(n, len(out))]
}

// checkOrder walks keys (a run of ok's, in send order) from floor, the
// last first handling before them, and counts the keys first handled
// before one sent earlier, adding an example of each to out (up to
// maxExamples); it returns the floor after them and the count. l.mu is
// held.
func (l *Ledger) checkOrder(ok *orderKey, keys []uint64, floor uint64, out *[]string) (uint64, int) {
	var last *entry
	bad := 0
	for _, k := range keys {
		e := l.live[k]
		if e == nil || !e.inOrder || e.first == 0 {
			continue
		}
		if e.first < floor {
			bad++
			if len(*out) < maxExamples {
				what := "a message sent earlier, retired since"
				if last != nil {
					what = fmt.Sprintf("k%d (#%d, sent earlier; first handled by %s at %s)", last.key, last.seq, last.firstBy, l.at(last.firstAt))
				}
				*out = append(*out, fmt.Sprintf("%s: k%d (#%d) first handled by %s at %s, before %s",
					ok.name, k, e.seq, e.firstBy, l.at(e.firstAt), what))
			}
			continue
		}
		floor, last = e.first, e
	}
	return floor, bad
}

// Counts returns the totals so far.
func (l *Ledger) Counts() Counts {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.c
}

// First returns the member that first handled key successfully and when
// that call began; ok is false while no call has.
func (l *Ledger) First(key uint64) (member string, start time.Time, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.live[key]
	if e == nil || e.first == 0 {
		return "", time.Time{}, false
	}
	return e.firstBy, e.firstAt, true
}

// LostKeys returns up to n acknowledged keys not handled, for a failure
// message.
func (l *Ledger) LostKeys(n int) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for k, e := range l.live {
		if e.acked && e.handled == 0 {
			out = append(out, fmt.Sprintf("k%d (%s)", k, e.id))
			if len(out) == n {
				break
			}
		}
	}
	return out
}

// Forget drops an acknowledged key's handling, as if its handler had never
// recorded it: a harness self-check that a lost message fails the
// assertions. It reports whether there was one to forget.
func (l *Ledger) Forget() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, e := range l.live {
		if e.acked && e.handled == 1 {
			e.handled, e.first = 0, 0
			l.c.Handled--
			l.c.Distinct--
			l.c.Lost++
			return true
		}
	}
	return false
}

// Retire starts a new generation and forgets the details of keys that have
// been settled since before the previous one (sent for good, and handled
// unless every Send failed), keeping one bit each: a soak calls it each
// interval so that the ledger does not grow. Each ordering key retires its
// oldest keys first and stops at the first one not settled, so that the
// order of the rest is still checked against what retired. A key handled
// again after it is retired still counts as a duplicate.
func (l *Ledger) Retire(gen int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, e := range l.live {
		if e.doneAt < 0 && !e.inflight && (e.handled > 0 || (e.failed && !e.acked)) {
			e.doneAt = gen
		}
	}
	for _, ok := range l.orders {
		n := 0
		for n < len(ok.keys) {
			e := l.live[ok.keys[n]]
			if e.doneAt < 0 || e.doneAt >= gen-1 {
				break
			}
			n++
		}
		if n == 0 {
			continue
		}
		var bad int
		ok.floor, bad = l.checkOrder(ok, ok.keys[:n], ok.floor, &l.retiredOrder)
		l.retiredBad += bad
		for _, k := range ok.keys[:n] {
			if l.live[k].handled > 0 {
				l.retired.set(k)
			} else {
				l.unseen.set(k)
			}
			delete(l.live, k)
		}
		ok.keys = slices.Delete(ok.keys, 0, n)
	}
}

// Live returns how many keys the ledger holds in detail.
func (l *Ledger) Live() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.live)
}

func parseKey(env *codec.Envelope) (uint64, bool) {
	if env.Message == nil {
		return 0, false
	}
	s, ok := strings.CutPrefix(env.Message.Text(), "k")
	if !ok {
		return 0, false
	}
	k, err := strconv.ParseUint(s, 10, 64)
	return k, err == nil
}

// String is one line of the counts.
func (c Counts) String() string {
	return fmt.Sprintf("acked %d, failed %d (retried %d, %d sends), handled %d (%d distinct), lost %d, duplicates %d (%d of retried sends), duplicates by idempotency key %d, unknown %d; %d handler calls (%d canceled, %d fenced, %d killed), %d overlapping (%d on two members)",
		c.Acked, c.Failed, c.Retried, c.Sends, c.Handled, c.Distinct, c.Lost, c.Duplicates, c.RetryDups, c.KeyDups, c.Unknown,
		c.Calls, c.Canceled, c.Fenced, c.Killed, c.Overlaps, c.CrossMember)
}

// bitset is a growable set of small integers.
type bitset []uint64

func (b *bitset) set(i uint64) {
	w := int(i / 64)
	for len(*b) <= w {
		*b = append(*b, 0)
	}
	(*b)[w] |= 1 << (i % 64)
}

func (b bitset) has(i uint64) bool {
	w := int(i / 64)
	return w < len(b) && b[w]&(1<<(i%64)) != 0
}
