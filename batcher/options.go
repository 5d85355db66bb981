package batcher

import (
	"fmt"
	"runtime"
	"time"
)

// Defaults.
const (
	// DefaultMaxBatchItems is the most items in one batch: the seed's
	// message_batch_size.
	DefaultMaxBatchItems = 500
	// DefaultMaxBatchBytes is the most bytes in one batch, counted with the
	// sizes given to Add: 1 MiB. A bigger item goes alone in its own batch.
	DefaultMaxBatchBytes = 1 << 20
	// DefaultMaxBufferedItems bounds the items accepted and not yet
	// delivered (waiting or in flight).
	DefaultMaxBufferedItems = 100_000
	// DefaultMaxBufferedBytes bounds the bytes accepted and not yet
	// delivered (waiting or in flight): 64 MiB.
	DefaultMaxBufferedBytes = 64 << 20
	// DefaultFlushTimeout is the deadline of the context each FlushFunc
	// call gets.
	DefaultFlushTimeout = 30 * time.Second
	// MaxLinger is the longest linger WithLinger accepts.
	MaxLinger = 10 * time.Millisecond
)

// DefaultMaxInFlight returns the default flush concurrency: 4 ×
// GOMAXPROCS, read when New runs. A FlushFunc spends most of its time
// waiting for the server's acknowledgement, so more flushes than cores keep
// the connection busy.
func DefaultMaxInFlight() int { return 4 * runtime.GOMAXPROCS(0) }

// Option configures New.
type Option func(*options) error

type options struct {
	maxBatchItems    int
	maxBatchBytes    int
	linger           time.Duration
	maxInFlight      int
	maxBufferedItems int
	maxBufferedBytes int
	flushTimeout     time.Duration
}

func defaultOptions() options {
	return options{
		maxBatchItems:    DefaultMaxBatchItems,
		maxBatchBytes:    DefaultMaxBatchBytes,
		maxInFlight:      DefaultMaxInFlight(),
		maxBufferedItems: DefaultMaxBufferedItems,
		maxBufferedBytes: DefaultMaxBufferedBytes,
		flushTimeout:     DefaultFlushTimeout,
	}
}

// WithMaxBatchItems sets the most items in one batch (default
// DefaultMaxBatchItems). A batch that reaches it is flushed without waiting
// for the linger.
func WithMaxBatchItems(n int) Option {
	return func(o *options) error {
		if n < 1 {
			return fmt.Errorf("%w: max batch items %d, want at least 1", ErrInvalidOption, n)
		}
		o.maxBatchItems = n
		return nil
	}
}

// WithMaxBatchBytes sets the most bytes in one batch, counted with the sizes
// given to Add (default DefaultMaxBatchBytes). An item that would take a
// batch over it starts the next batch; an item bigger than n goes alone in
// its own batch.
func WithMaxBatchBytes(n int) Option {
	return func(o *options) error {
		if n < 1 {
			return fmt.Errorf("%w: max batch bytes %d, want at least 1", ErrInvalidOption, n)
		}
		o.maxBatchBytes = n
		return nil
	}
}

// WithLinger sets how long an idle destination (one with no batch in flight)
// waits for more items before it flushes its first one: 0 (the default)
// flushes a lone item at once, so batching adds no latency at low load, and
// at most MaxLinger. Whatever the linger, items that arrive while a
// destination's batch is in flight go out as its next batch as soon as that
// one completes.
func WithLinger(d time.Duration) Option {
	return func(o *options) error {
		if d < 0 || d > MaxLinger {
			return fmt.Errorf("%w: linger %v, want 0 to %v", ErrInvalidOption, d, MaxLinger)
		}
		o.linger = d
		return nil
	}
}

// WithMaxInFlight sets the flush concurrency: the most FlushFunc calls
// running at once, across destinations (default DefaultMaxInFlight(), 4 ×
// GOMAXPROCS). It is also the number of flush goroutines the Batcher runs.
// A destination never has more than one batch in flight.
func WithMaxInFlight(n int) Option {
	return func(o *options) error {
		if n < 1 {
			return fmt.Errorf("%w: max in flight %d, want at least 1", ErrInvalidOption, n)
		}
		o.maxInFlight = n
		return nil
	}
}

// WithMaxBufferedItems bounds the items accepted and not yet delivered,
// waiting or in flight (default DefaultMaxBufferedItems). Add blocks while
// the bound would be exceeded.
func WithMaxBufferedItems(n int) Option {
	return func(o *options) error {
		if n < 1 {
			return fmt.Errorf("%w: max buffered items %d, want at least 1", ErrInvalidOption, n)
		}
		o.maxBufferedItems = n
		return nil
	}
}

// WithMaxBufferedBytes bounds the bytes accepted and not yet delivered,
// waiting or in flight, counted with the sizes given to Add (default
// DefaultMaxBufferedBytes). Add blocks while the bound would be exceeded,
// except that an item bigger than the bound is accepted when nothing else
// is buffered, so that it cannot block forever.
func WithMaxBufferedBytes(n int) Option {
	return func(o *options) error {
		if n < 1 {
			return fmt.Errorf("%w: max buffered bytes %d, want at least 1", ErrInvalidOption, n)
		}
		o.maxBufferedBytes = n
		return nil
	}
}

// WithFlushTimeout sets the deadline of the context each FlushFunc call
// gets (default DefaultFlushTimeout). The FlushFunc retries within it. The
// deadline falls between d - d/64 and d after the call starts: a flush
// goroutine reuses its context for consecutive calls while that much time
// remains on it, which saves a timer per batch.
func WithFlushTimeout(d time.Duration) Option {
	return func(o *options) error {
		if d <= 0 {
			return fmt.Errorf("%w: flush timeout %v, want more than 0", ErrInvalidOption, d)
		}
		o.flushTimeout = d
		return nil
	}
}
