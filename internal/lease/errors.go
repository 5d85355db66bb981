package lease

import "errors"

var (
	// ErrHeld is returned by Acquire when the key is held: another holder
	// wrote it and it has not expired, or this lease claims it already
	// (renew it instead).
	ErrHeld = errors.New("lease: key held")
	// ErrLost is returned by Renew and Release when the key's revision is no
	// longer ours: the key expired (and may have been created again), or
	// another holder wrote it. Renew returns it too when the lease claims
	// nothing: never acquired, released, forgotten or lost before.
	ErrLost = errors.New("lease: key lost")
)
