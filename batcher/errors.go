package batcher

import "errors"

// Sentinel errors. Errors returned by this package wrap one of them (and,
// where a context ended, the context's error too), so test with errors.Is.
var (
	// ErrClosed reports an Add after Close started, and completes the
	// Tickets of items that Close could not deliver before its context
	// ended. In the second case the error also wraps the context's error.
	ErrClosed = errors.New("batcher: closed")

	// ErrBackpressure reports an Add that could not get buffer space before
	// its context ended. The error also wraps the context's error, so both
	// errors.Is(err, ErrBackpressure) and errors.Is(err,
	// context.DeadlineExceeded) (or context.Canceled) hold.
	ErrBackpressure = errors.New("batcher: buffer full")

	// ErrInvalidOption reports a bad option passed to New, or a nil
	// FlushFunc.
	ErrInvalidOption = errors.New("batcher: invalid option")

	// ErrInvalidSize reports a negative item size passed to Add.
	ErrInvalidSize = errors.New("batcher: invalid item size")
)
