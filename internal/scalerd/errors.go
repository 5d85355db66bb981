package scalerd

import "errors"

// ErrStarted is returned by a second Daemon.Start.
var ErrStarted = errors.New("scalerd: daemon already started")
