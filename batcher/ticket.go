package batcher

import (
	"context"
	"sync"
	"sync/atomic"
)

// Ticket is the outcome of one batch. Every item of a batch shares its
// batch's Ticket, so that Add allocates nothing per item; a Ticket is never
// reused for another batch.
//
// A Ticket completes exactly once: with nil when the FlushFunc delivered the
// batch, with the FlushFunc's error, or with an error wrapping ErrClosed when
// Close gave up on it. Its methods are safe for concurrent use.
type Ticket struct {
	completed atomic.Bool
	mu        sync.Mutex
	done      chan struct{} // made on the first Done call, or closedChan
	err       error
}

// closedChan is handed out by Done on a Ticket that completed before anyone
// asked for its channel, so that batches nobody waits for never make one.
var closedChan = func() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}()

// Done returns a channel that is closed when the batch's outcome is known.
func (t *Ticket) Done() <-chan struct{} {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.done == nil {
		if t.completed.Load() {
			return closedChan
		}
		t.done = make(chan struct{})
	}
	return t.done
}

// Err returns the batch's error: nil if it was delivered. Before Done is
// closed it returns nil.
func (t *Ticket) Err() error {
	if !t.completed.Load() {
		return nil
	}
	return t.err
}

// Wait blocks until the batch's outcome is known and returns its error, or
// until ctx ends and returns ctx's error. In the second case the item may
// still be delivered later: ctx bounds only the wait, not the delivery.
func (t *Ticket) Wait(ctx context.Context) error {
	if t.completed.Load() {
		return t.err
	}
	select {
	case <-t.Done():
		return t.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// complete records the outcome and wakes the waiters. Only the first call
// counts; it reports whether it was the first.
func (t *Ticket) complete(err error) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.completed.Load() {
		return false
	}
	t.err = err
	t.completed.Store(true)
	if t.done != nil {
		close(t.done)
	}
	return true
}
