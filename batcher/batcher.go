package batcher

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// FlushFunc delivers one batch for one destination and returns nil once the
// batch is stored, or the error that stopped it. It does its own retrying,
// until ctx ends; the Batcher never retries a batch.
//
// The Batcher calls it from its flush goroutines, at most WithMaxInFlight
// calls at a time and at most one per destination, so the batches of one
// destination are delivered one after the other in Add order even when the
// FlushFunc retries. items is only valid during the call: the Batcher reuses
// the slice. ctx has the WithFlushTimeout deadline and is cancelled when
// Close gives up.
//
// A FlushFunc must not call Add, Flush or Close on its own Batcher: they may
// wait for the FlushFunc itself to return. A panic in a FlushFunc is not
// recovered.
type FlushFunc[T any] func(ctx context.Context, dest string, items []T) error

// idleDestinations is the number of idle destinations (nothing buffered, in
// flight or lingering) whose state a Batcher keeps for reuse. Past it, the
// least recently used one is recycled for the next new destination, so the
// Batcher's memory does not grow with the number of destinations ever seen.
const idleDestinations = 4096

// batch is one batch of one destination: the open batch that takes new
// items, a sealed one waiting for its turn, or the one in flight.
type batch[T any] struct {
	items  []T
	bytes  int
	ticket *Ticket
	next   *batch[T] // the next sealed batch of the same destination
}

// destination is the state of one destination. A destination with items
// (open or sealed) is always in exactly one of three states: queued for a
// flush goroutine, in flight, or lingering; one with none of the four is
// idle.
type destination[T any] struct {
	name       string
	open       *batch[T] // takes new items; never empty
	head, tail *batch[T] // sealed batches, oldest first
	flying     *batch[T] // the batch in flight
	flyTicket  *Ticket   // flying's ticket, read by Flush and Close
	queued     bool      // in the ready list
	lingering  bool      // waiting for its linger timer
	idle       bool      // in the idle list
	timer      *time.Timer

	next               *destination[T] // ready list
	idlePrev, idleNext *destination[T] // idle list
}

func (d *destination[T]) hasItems() bool { return d.open != nil || d.head != nil }

// waiter is an Add waiting for buffer space.
type waiter struct {
	ch      chan struct{} // size 1: exactly one send, by grant or by Close
	size    int
	granted bool // space reserved for it
	closed  bool // Close failed it
}

// Batcher lifecycle.
const (
	stateOpen    = iota
	stateClosing // Close started: Add fails, the flush goroutines drain and exit
	stateDone    // the flush goroutines and timers have all finished
)

// Batcher collects items per destination and hands them to a FlushFunc in
// batches. Create one with New and stop it with Close.
//
// A batch is flushed when it reaches WithMaxBatchItems items or
// WithMaxBatchBytes bytes, or when its destination is idle: a lone item to
// a destination with nothing in flight goes out at once (or after the
// WithLinger delay, if set), and items that arrive while a destination's
// batch is in flight go out together as its next batch the moment that one
// completes. So batches grow with load and cost no latency without it.
//
// All methods are safe for concurrent use.
type Batcher[T any] struct {
	flush FlushFunc[T]
	opt   options

	ctx    context.Context // parent of every FlushFunc's context
	cancel context.CancelFunc
	wg     sync.WaitGroup // the flush goroutines
	exited chan struct{}  // closed on stateDone

	mu   sync.Mutex
	work sync.Cond // the flush goroutines wait here for ready destinations

	dests                map[string]*destination[T]
	readyHead, readyTail *destination[T]
	readyLen             int
	idleHead, idleTail   *destination[T]
	idleLen              int
	freeBatches          []*batch[T] // emptied batches kept for reuse, items slices and all
	freeCap              int         // at most this many
	waiters              waitQueue
	freeWaiters          []*waiter

	bufItems    int   // buffered items, plus the space granted to waiting Adds
	bufBytes    int64 // the same in bytes
	grantItems  int   // space granted to waiting Adds that have not added yet
	grantBytes  int64 // the same in bytes
	inFlight    int
	idleWorkers int // flush goroutines in work.Wait
	wakes       int // of those, the ones signalled and not yet running
	workers     int // live flush goroutines
	timers      int // armed linger timers plus fired callbacks yet to run

	state        int
	aborted      error     // set when Close gave up: what undelivered items got
	closeTickets []*Ticket // the batches pending when Close started
	closeErr     error
	closeDone    bool // closeErr is set

	stats Stats // counters only; gauges are filled in by Stats
}

// New returns a Batcher that delivers batches through flush, and starts its
// WithMaxInFlight flush goroutines. Call Close to stop them.
func New[T any](flush FlushFunc[T], opts ...Option) (*Batcher[T], error) {
	if flush == nil {
		return nil, fmt.Errorf("%w: nil FlushFunc", ErrInvalidOption)
	}
	o := defaultOptions()
	for _, opt := range opts {
		if opt == nil {
			continue
		}
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	b := &Batcher[T]{
		flush:   flush,
		opt:     o,
		exited:  make(chan struct{}),
		dests:   make(map[string]*destination[T]),
		freeCap: 2*o.maxInFlight + 64,
		workers: o.maxInFlight,
	}
	b.work.L = &b.mu
	b.ctx, b.cancel = context.WithCancel(context.Background())
	b.wg.Add(o.maxInFlight)
	for range o.maxInFlight {
		go b.worker()
	}
	return b, nil
}

// Add buffers item for dest and returns the Ticket of the batch it went
// into. size is the item's size in bytes, counted against WithMaxBatchBytes
// and WithMaxBufferedBytes.
//
// Add blocks only when the buffer is full (WithMaxBufferedItems,
// WithMaxBufferedBytes): it waits, first come first served, until flushes
// free enough space, and returns an error wrapping ErrBackpressure and
// ctx's error if ctx ends first (an Add whose ctx ends just as its space is
// granted may still succeed). ctx does not bound the delivery: wait on the
// Ticket for that. After Close has started, Add returns ErrClosed.
func (b *Batcher[T]) Add(ctx context.Context, dest string, item T, size int) (*Ticket, error) {
	if size < 0 {
		return nil, fmt.Errorf("%w: %d", ErrInvalidSize, size)
	}
	b.mu.Lock()
	if b.state != stateOpen {
		b.mu.Unlock()
		return nil, ErrClosed
	}
	if b.waiters.len() == 0 && b.fits(size) {
		b.bufItems++
		b.bufBytes += int64(size)
	} else if err := b.waitForSpace(ctx, size); err != nil {
		return nil, err
	}
	t := b.add(dest, item, size)
	b.mu.Unlock()
	return t, nil
}

// fits reports whether an item of size bytes fits in the buffer. An item
// always fits an empty buffer, however big, so that it cannot wait forever.
func (b *Batcher[T]) fits(size int) bool {
	return b.bufItems == 0 ||
		b.bufItems < b.opt.maxBufferedItems && b.bufBytes+int64(size) <= int64(b.opt.maxBufferedBytes)
}

// waitForSpace queues the caller behind the other waiting Adds until its
// space is reserved. Called with b.mu held; returns with it held on
// success, released on error.
func (b *Batcher[T]) waitForSpace(ctx context.Context, size int) error {
	if err := ctx.Err(); err != nil {
		b.stats.BackpressureErrors++
		b.mu.Unlock()
		return fmt.Errorf("%w: %w", ErrBackpressure, err)
	}
	w := b.newWaiter(size)
	b.waiters.push(w)
	b.stats.BackpressureWaits++
	b.mu.Unlock()

	select {
	case <-w.ch:
	case <-ctx.Done():
	}

	b.mu.Lock()
	// Exactly one send happens, under b.mu, and only with granted or
	// closed set. If the select took ctx.Done, the value is still in the
	// channel: drain it so that the waiter can be reused.
	granted, closed := w.granted, w.closed
	if granted || closed {
		select {
		case <-w.ch:
		default:
		}
		if granted {
			b.grantItems--
			b.grantBytes -= int64(size)
		}
	} else {
		b.waiters.remove(w)
		b.grant() // the next waiter may fit now
	}
	b.freeWaiter(w)
	switch {
	case closed:
		b.mu.Unlock()
		return ErrClosed
	case !granted:
		b.stats.BackpressureErrors++
		b.mu.Unlock()
		return fmt.Errorf("%w: %w", ErrBackpressure, ctx.Err())
	case b.state != stateOpen:
		// Granted, but Close started before we got the lock back.
		b.release(1, size)
		b.mu.Unlock()
		return ErrClosed
	}
	return nil
}

func (b *Batcher[T]) newWaiter(size int) *waiter {
	var w *waiter
	if n := len(b.freeWaiters); n > 0 {
		w = b.freeWaiters[n-1]
		b.freeWaiters = b.freeWaiters[:n-1]
	} else {
		w = &waiter{ch: make(chan struct{}, 1)}
	}
	w.size = size
	return w
}

func (b *Batcher[T]) freeWaiter(w *waiter) {
	w.granted, w.closed = false, false
	if len(b.freeWaiters) < 64 {
		b.freeWaiters = append(b.freeWaiters, w)
	}
}

// grant reserves space for the waiting Adds, in order, while they fit.
func (b *Batcher[T]) grant() {
	for b.waiters.len() > 0 {
		w := b.waiters.peek()
		if !b.fits(w.size) {
			return
		}
		b.waiters.pop()
		b.bufItems++
		b.bufBytes += int64(w.size)
		b.grantItems++
		b.grantBytes += int64(w.size)
		w.granted = true
		w.ch <- struct{}{}
	}
}

// release returns the space of n items of size bytes to the buffer.
func (b *Batcher[T]) release(n, size int) {
	b.bufItems -= n
	b.bufBytes -= int64(size)
	if b.waiters.len() > 0 {
		b.grant()
	}
}

// add appends item to dest's open batch and makes sure the destination
// will be flushed. Called with b.mu held and the item's space reserved.
func (b *Batcher[T]) add(name string, item T, size int) *Ticket {
	d := b.dests[name]
	if d == nil {
		d = b.newDest(name)
	} else if d.idle {
		b.unidle(d)
	}
	o := d.open
	if o != nil && o.bytes+size > b.opt.maxBatchBytes {
		b.seal(d)
		o = nil
	}
	if o == nil {
		o = b.newBatch()
		d.open = o
	}
	o.items = append(o.items, item)
	o.bytes += size
	t := o.ticket
	if len(o.items) >= b.opt.maxBatchItems || o.bytes >= b.opt.maxBatchBytes {
		b.seal(d)
	}
	b.stats.ItemsAdded++
	b.stats.BytesAdded += uint64(size)

	if d.flying == nil && !d.queued {
		switch {
		case d.head != nil || b.opt.linger == 0:
			if d.lingering {
				b.stopLinger(d)
			}
			b.enqueue(d)
			b.wake(0)
		case !d.lingering:
			b.startLinger(d)
		}
	}
	return t
}

// seal closes dest's open batch to new items.
func (b *Batcher[T]) seal(d *destination[T]) {
	o := d.open
	d.open = nil
	if d.tail == nil {
		d.head = o
	} else {
		d.tail.next = o
	}
	d.tail = o
}

func (b *Batcher[T]) newBatch() *batch[T] {
	if n := len(b.freeBatches); n > 0 {
		bt := b.freeBatches[n-1]
		b.freeBatches = b.freeBatches[:n-1]
		return bt
	}
	return &batch[T]{ticket: new(Ticket)}
}

// freeBatch keeps an emptied batch for reuse, with a fresh Ticket.
func (b *Batcher[T]) freeBatch(bt *batch[T], ticket *Ticket) {
	if len(b.freeBatches) >= b.freeCap {
		return
	}
	bt.bytes = 0
	bt.ticket = ticket
	b.freeBatches = append(b.freeBatches, bt)
}

func (b *Batcher[T]) newDest(name string) *destination[T] {
	var d *destination[T]
	if b.idleLen >= idleDestinations {
		d = b.idleHead
		b.unidle(d)
		delete(b.dests, d.name)
		d.name = name
	} else {
		d = &destination[T]{name: name}
	}
	b.dests[name] = d
	return d
}

func (b *Batcher[T]) makeIdle(d *destination[T]) {
	d.idle = true
	d.idlePrev = b.idleTail
	if b.idleTail == nil {
		b.idleHead = d
	} else {
		b.idleTail.idleNext = d
	}
	b.idleTail = d
	b.idleLen++
}

func (b *Batcher[T]) unidle(d *destination[T]) {
	if d.idlePrev == nil {
		b.idleHead = d.idleNext
	} else {
		d.idlePrev.idleNext = d.idleNext
	}
	if d.idleNext == nil {
		b.idleTail = d.idlePrev
	} else {
		d.idleNext.idlePrev = d.idlePrev
	}
	d.idlePrev, d.idleNext = nil, nil
	d.idle = false
	b.idleLen--
}

// enqueue appends dest to the ready list.
func (b *Batcher[T]) enqueue(d *destination[T]) {
	d.queued = true
	if b.readyTail == nil {
		b.readyHead = d
	} else {
		b.readyTail.next = d
	}
	b.readyTail = d
	b.readyLen++
}

// wake signals an idle flush goroutine if the ready list holds more
// destinations than the goroutines already woken for it can take, not
// counting self destinations that the calling flush goroutine takes itself.
func (b *Batcher[T]) wake(self int) {
	if b.readyLen-self > b.wakes && b.idleWorkers > b.wakes {
		b.wakes++
		b.work.Signal()
	}
}

// startLinger arms dest's linger timer.
func (b *Batcher[T]) startLinger(d *destination[T]) {
	d.lingering = true
	b.timers++
	if d.timer == nil {
		d.timer = time.AfterFunc(b.opt.linger, func() { b.lingerDone(d) })
	} else if d.timer.Reset(b.opt.linger) {
		// It replaced a firing that a stopped linger left pending.
		b.timers--
	}
}

// stopLinger disarms dest's linger timer. If the timer has fired already,
// its callback finds the destination no longer lingering and does nothing
// (or, if the destination lingers again by then, flushes it early, which
// is harmless).
func (b *Batcher[T]) stopLinger(d *destination[T]) {
	d.lingering = false
	if d.timer.Stop() {
		b.timers--
	}
}

// lingerDone runs when dest's linger timer fires.
func (b *Batcher[T]) lingerDone(d *destination[T]) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.timers--
	if d.lingering {
		d.lingering = false
		if d.flying == nil && !d.queued && d.hasItems() {
			b.enqueue(d)
			b.wake(0)
		}
	}
	b.checkExited()
}

// checkExited moves a closing Batcher to stateDone once its flush
// goroutines and timer callbacks have finished. Called with b.mu held.
func (b *Batcher[T]) checkExited() {
	if b.state == stateClosing && b.workers == 0 && b.timers == 0 {
		b.state = stateDone
		close(b.exited)
	}
}

// worker is a flush goroutine: it takes ready destinations in order and
// flushes each one's next batch.
func (b *Batcher[T]) worker() {
	defer b.wg.Done()
	var (
		done    *Ticket // the last batch's Ticket, completed outside b.mu
		doneErr error
		spare   *Ticket // a Ticket for the next batch buffer freed
		fctx    flushCtx
	)
	defer fctx.release()
	b.mu.Lock()
	for {
		d := b.readyHead
		if d == nil {
			if done != nil {
				b.mu.Unlock()
				done.complete(doneErr)
				done = nil
				b.mu.Lock()
				continue
			}
			if b.state != stateOpen {
				break
			}
			b.idleWorkers++
			b.work.Wait()
			b.idleWorkers--
			if b.wakes > 0 {
				b.wakes--
			}
			continue
		}
		b.readyHead = d.next
		if b.readyHead == nil {
			b.readyTail = nil
		}
		d.next = nil
		d.queued = false
		b.readyLen--
		bt := d.head
		if bt != nil {
			d.head = bt.next
			if d.head == nil {
				d.tail = nil
			}
			bt.next = nil
		} else {
			bt = d.open
			d.open = nil
		}
		d.flying = bt
		d.flyTicket = bt.ticket
		ticket, n, size := bt.ticket, len(bt.items), bt.bytes
		b.inFlight++
		b.mu.Unlock()

		if done != nil {
			done.complete(doneErr)
		}
		err := b.flush(fctx.get(b.ctx, b.opt.flushTimeout), d.name, bt.items)
		clear(bt.items)
		bt.items = bt.items[:0]
		done, doneErr = ticket, err
		if spare == nil {
			spare = new(Ticket)
		}

		b.mu.Lock()
		b.inFlight--
		b.stats.BatchesFlushed++
		b.stats.ItemsFlushed += uint64(n)
		b.stats.BytesFlushed += uint64(size)
		if err != nil {
			b.stats.FlushErrors++
			b.stats.ItemsFailed += uint64(n)
		}
		d.flying, d.flyTicket = nil, nil
		if len(b.freeBatches) < b.freeCap {
			b.freeBatch(bt, spare)
			spare = nil
		}
		switch {
		case d.hasItems():
			// Whatever came in during the flight goes next, at once.
			b.enqueue(d)
			b.wake(1)
		case !d.idle:
			b.makeIdle(d)
		}
		b.release(n, size)
	}
	b.workers--
	b.checkExited()
	b.mu.Unlock()
}

// flushCtx is the context a flush goroutine passes to the FlushFunc. Making
// a context.WithTimeout per batch (a context, a timer and a closure, and the
// parent's lock) was the largest cost of a small batch, so a flush goroutine
// keeps one as long as at least 63/64 of the flush timeout remains on it:
// every call gets a deadline between 63/64 and all of the timeout after its
// start. The context is a standard one, so contexts derived from it cost
// what they always do.
type flushCtx struct {
	ctx      context.Context
	cancel   context.CancelFunc
	deadline time.Time
}

// get returns a context with at least timeout - timeout/64 left, child of
// parent.
func (c *flushCtx) get(parent context.Context, timeout time.Duration) context.Context {
	now := time.Now()
	if c.ctx == nil || c.ctx.Err() != nil || c.deadline.Sub(now) < timeout-timeout/64 {
		c.release()
		c.deadline = now.Add(timeout)
		c.ctx, c.cancel = context.WithDeadline(parent, c.deadline)
	}
	return c.ctx
}

func (c *flushCtx) release() {
	if c.cancel != nil {
		c.cancel()
		c.ctx, c.cancel = nil, nil
	}
}

// Flush sends everything buffered now without waiting for any linger, and
// waits until those batches complete. It returns nil if all of them were
// delivered, an error wrapping one of the FlushFunc errors otherwise (the
// Tickets say which batches failed), or an error wrapping ctx's error if ctx ends first; the
// items are still delivered then. Items added during Flush may go out in the
// same batches, but Flush does not wait for more than what it found.
func (b *Batcher[T]) Flush(ctx context.Context) error {
	b.mu.Lock()
	tickets := b.pending()
	b.mu.Unlock()
	for _, t := range tickets {
		if t.completed.Load() {
			continue
		}
		select {
		case <-t.Done():
		case <-ctx.Done():
			return fmt.Errorf("batcher: flush: %w", ctx.Err())
		}
	}
	return summarize(tickets)
}

// pending stops every linger and returns the Tickets of every batch
// buffered or in flight. Called with b.mu held.
func (b *Batcher[T]) pending() []*Ticket {
	var ts []*Ticket
	for _, d := range b.dests {
		if d.idle {
			continue
		}
		if d.lingering {
			b.stopLinger(d)
			b.enqueue(d)
			b.wake(0)
		}
		if d.flyTicket != nil {
			ts = append(ts, d.flyTicket)
		}
		for bt := d.head; bt != nil; bt = bt.next {
			ts = append(ts, bt.ticket)
		}
		if d.open != nil {
			ts = append(ts, d.open.ticket)
		}
	}
	return ts
}

// summarize returns nil if every ticket completed without error, else an
// error that counts the failures and wraps one of them.
func summarize(tickets []*Ticket) error {
	var (
		first  error
		failed int
	)
	for _, t := range tickets {
		if err := t.Err(); err != nil {
			if first == nil {
				first = err
			}
			failed++
		}
	}
	if first == nil {
		return nil
	}
	return fmt.Errorf("batcher: %d of %d batches failed, one with: %w", failed, len(tickets), first)
}

// Close stops accepting items, delivers everything buffered, and waits for
// the flush goroutines to exit. It returns nil if everything was delivered,
// or an error wrapping one of the FlushFunc errors of the batches it waited
// for.
//
// If ctx ends first, Close gives up: the contexts of the running FlushFunc
// calls are cancelled, every Ticket not yet completed is completed with an
// error wrapping ErrClosed and ctx's error, and Close returns that error at
// once. The flush goroutines exit as soon as their FlushFunc calls return;
// a later Close call waits for that.
//
// Close is idempotent and safe to call concurrently: every call waits (each
// with its own ctx) and returns the same result.
func (b *Batcher[T]) Close(ctx context.Context) error {
	b.mu.Lock()
	if b.state == stateOpen {
		b.state = stateClosing
		for b.waiters.len() > 0 {
			w := b.waiters.pop()
			w.closed = true
			w.ch <- struct{}{}
		}
		b.closeTickets = b.pending()
		b.wakes = b.idleWorkers
		b.work.Broadcast()
		b.checkExited()
	}
	b.mu.Unlock()

	select {
	case <-b.exited:
		b.wg.Wait()
		return b.result()
	case <-ctx.Done():
		return b.abort(ctx.Err())
	}
}

// result returns Close's outcome once the Batcher is done.
func (b *Batcher[T]) result() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.closeDone {
		b.closeDone = true
		b.cancel()
		if b.aborted != nil {
			b.closeErr = b.aborted
		} else {
			b.closeErr = summarize(b.closeTickets)
		}
		b.closeTickets = nil
	}
	return b.closeErr
}

// abort gives up on the undelivered items: it completes their Tickets with
// an error wrapping ErrClosed and cause, and cancels the FlushFunc calls in
// flight.
func (b *Batcher[T]) abort(cause error) error {
	b.mu.Lock()
	if b.state == stateDone {
		b.mu.Unlock()
		return b.result()
	}
	if b.aborted != nil {
		err := b.aborted
		b.mu.Unlock()
		return err
	}
	b.aborted = fmt.Errorf("%w: %w", ErrClosed, cause)
	var (
		tickets     []*Ticket
		items, size int
	)
	drop := func(bt *batch[T]) {
		tickets = append(tickets, bt.ticket)
		items += len(bt.items)
		size += bt.bytes
		clear(bt.items)
		bt.items = bt.items[:0]
		b.freeBatch(bt, new(Ticket))
	}
	for _, d := range b.dests {
		if d.flyTicket != nil {
			tickets = append(tickets, d.flyTicket)
		}
		for bt := d.head; bt != nil; {
			next := bt.next
			bt.next = nil
			drop(bt)
			bt = next
		}
		if d.open != nil {
			drop(d.open)
		}
		d.open, d.head, d.tail = nil, nil, nil
		d.queued, d.next = false, nil
		if d.flying == nil && !d.idle {
			b.makeIdle(d)
		}
	}
	b.readyHead, b.readyTail, b.readyLen = nil, nil, 0
	b.stats.ItemsAborted += uint64(items)
	b.release(items, size)
	err := b.aborted
	b.mu.Unlock()

	// Complete the Tickets before cancelling, so that the batches in flight
	// report ErrClosed rather than the cancellation their FlushFunc sees.
	for _, t := range tickets {
		t.complete(err)
	}
	b.cancel()
	return err
}

// Stats returns a snapshot of the Batcher's gauges and counters.
func (b *Batcher[T]) Stats() Stats {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.stats
	s.Destinations = len(b.dests)
	s.BufferedItems = b.bufItems - b.grantItems
	s.BufferedBytes = b.bufBytes - b.grantBytes
	s.InFlightBatches = b.inFlight
	s.BlockedAdds = b.waiters.len()
	return s
}

// waitQueue is the FIFO of Adds waiting for buffer space.
type waitQueue struct {
	buf  []*waiter
	head int
}

func (q *waitQueue) len() int      { return len(q.buf) - q.head }
func (q *waitQueue) peek() *waiter { return q.buf[q.head] }

func (q *waitQueue) push(w *waiter) {
	if q.head > 0 && len(q.buf) == cap(q.buf) {
		// Reuse the room of the popped ones rather than grow.
		n := copy(q.buf, q.buf[q.head:])
		clear(q.buf[n:])
		q.buf, q.head = q.buf[:n], 0
	}
	q.buf = append(q.buf, w)
}

func (q *waitQueue) pop() *waiter {
	w := q.buf[q.head]
	q.buf[q.head] = nil
	q.head++
	if q.head == len(q.buf) {
		q.buf, q.head = q.buf[:0], 0
	}
	return w
}

func (q *waitQueue) remove(w *waiter) {
	for i := q.head; i < len(q.buf); i++ {
		if q.buf[i] == w {
			copy(q.buf[i:], q.buf[i+1:])
			q.buf[len(q.buf)-1] = nil
			q.buf = q.buf[:len(q.buf)-1]
			if q.head == len(q.buf) {
				q.buf, q.head = q.buf[:0], 0
			}
			return
		}
	}
}
