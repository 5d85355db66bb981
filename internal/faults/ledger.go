package faults

import (
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/a2abus/a2abus/codec"
)

// Ledger books what the load sent and what the handlers handled, so that
// a run can say what was lost and what was handled twice.
//
// Every logical message has a key, a number the ledger hands out, carried
// as the message's text. The bus gives its envelope an ID (env.ID, the
// idempotency key a handler dedupes by); a publisher that retries a failed
// Send sends the same envelope again, so the ID stays. The ledger checks
// both: a key handled twice under the same ID is a duplicate an idempotent
// handler absorbs, a key handled under two IDs is one it would not.
//
// Keys done (acknowledged and handled) are retired after a while (Retire)
// into a bit set, so a long soak holds only the keys in flight.
type Ledger struct {
	mu      sync.Mutex
	next    uint64
	live    map[uint64]*entry
	retired bitset // keys retired: acknowledged or failed, handled, settled
	c       Counts
}

type entry struct {
	id       string // the envelope ID the key was first sent or handled under
	attempts int    // Send calls
	acked    bool   // a Send returned nil
	failed   bool   // the last Send failed (the message may still be stored)
	handled  int    // successful handler calls
	doneAt   int    // the Retire generation in which it was first both sent and handled
}

// Counts are a ledger's totals. The invariants the fault suite checks are
// Lost == 0, Unknown == 0, KeyDups == 0, and Duplicates == RetryDups where
// the scenario does not crash a consumer or a server.
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
}

// NewLedger returns an empty ledger.
func NewLedger() *Ledger { return &Ledger{live: map[uint64]*entry{}} }

// Next returns a fresh key and the text that carries it.
func (l *Ledger) Next() (uint64, string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.next++
	k := l.next
	l.live[k] = &entry{doneAt: -1}
	l.c.InFlight++
	return k, "k" + strconv.FormatUint(k, 10)
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
	if e.attempts == 1 {
		l.c.InFlight--
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
}

// Handled books a successful handler call for env.
func (l *Ledger) Handled(env *codec.Envelope) {
	key, ok := parseKey(env)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.c.Handled++
	if !ok || key == 0 || key > l.next {
		l.c.Unknown++
		return
	}
	e := l.live[key]
	if e == nil {
		if l.retired.has(key) {
			// A late duplicate of a retired key: its ID is forgotten,
			// and so is whether it was retried.
			l.c.Duplicates++
		} else {
			l.c.Unknown++
		}
		return
	}
	e.handled++
	if e.handled == 1 {
		l.c.Distinct++
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

// Counts returns the totals so far.
func (l *Ledger) Counts() Counts {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.c
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
			e.handled = 0
			l.c.Handled--
			l.c.Distinct--
			l.c.Lost++
			return true
		}
	}
	return false
}

// Retire starts a new generation and forgets the details of keys that have
// been sent for good and handled since before the previous one, keeping
// one bit each: a soak calls it each interval so that the ledger does not
// grow. A key handled again after it is retired still counts as a
// duplicate.
func (l *Ledger) Retire(gen int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for k, e := range l.live {
		if e.handled == 0 || (!e.acked && !e.failed) {
			continue
		}
		if e.doneAt < 0 {
			e.doneAt = gen
			continue
		}
		if e.doneAt < gen-1 {
			delete(l.live, k)
			l.retired.set(k)
		}
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
	return fmt.Sprintf("acked %d, failed %d (retried %d, %d sends), handled %d (%d distinct), lost %d, duplicates %d (%d of retried sends), duplicates by idempotency key %d, unknown %d",
		c.Acked, c.Failed, c.Retried, c.Sends, c.Handled, c.Distinct, c.Lost, c.Duplicates, c.RetryDups, c.KeyDups, c.Unknown)
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
