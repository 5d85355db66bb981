package agentbus

import "errors"

// ErrStreamConflict is returned by EnsureStreams when a stream exists with
// settings that cannot be changed to the wanted ones (subjects, retention,
// storage, discard policy). The wrapping error names the stream and the
// settings.
var ErrStreamConflict = errors.New("agentbus: existing stream conflicts with the wanted settings")
