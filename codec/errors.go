package codec

import (
	"errors"
	"fmt"
)

// Sentinel errors. Errors returned by this package wrap one of them, so test
// with errors.Is.
var (
	// ErrTooLarge reports a message, batch or decompressed body over the
	// configured maximum size (10 MiB by default).
	ErrTooLarge = errors.New("codec: message exceeds max size")

	// ErrCorrupt reports input that is not a valid frame, compressed body or
	// msgpack value: truncated data, a bad checksum, a malformed header, bad
	// msgpack, or a field of the wrong type.
	ErrCorrupt = errors.New("codec: corrupt input")

	// ErrUnknownTag reports a frame whose 3-byte tag is none of RAW, LZ4, S2B
	// or ZST.
	ErrUnknownTag = errors.New("codec: unknown frame tag")

	// ErrInvalidValue reports a Go value that cannot be encoded: an
	// unsupported type, a cycle, or nesting deeper than the decoder accepts.
	ErrInvalidValue = errors.New("codec: value cannot be encoded")

	// ErrInvalidOption reports a bad option value passed to New or a bad
	// compression name passed to ParseCompression.
	ErrInvalidOption = errors.New("codec: invalid option")
)

// Pre-built errors for the hot decode paths, so that reporting the common
// failures does not allocate.
var (
	errTruncated = fmt.Errorf("%w: truncated data", ErrCorrupt)
	errTooDeep   = fmt.Errorf("%w: nesting deeper than %d levels", ErrCorrupt, maxDepth)
)

// corruptf returns an error wrapping ErrCorrupt.
func corruptf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrCorrupt}, args...)...)
}

// tooLarge returns an error wrapping ErrTooLarge that names both sizes.
func tooLarge(what string, size, limit int) error {
	return fmt.Errorf("%w: %s of %d bytes, limit %d", ErrTooLarge, what, size, limit)
}
