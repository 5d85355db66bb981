package lazyfs

import "errors"

var (
	// ErrClosed is returned by the methods of a closed FS.
	ErrClosed = errors.New("lazyfs: closed")
	// ErrUnavailable is wrapped by Available's and Mount's errors when
	// this process cannot mount a FUSE filesystem.
	ErrUnavailable = errors.New("lazyfs: FUSE mounts unavailable")
)
