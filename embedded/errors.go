package embedded

import "errors"

// ErrNotReady is returned by Start when the server did not become ready
// (listening and JetStream enabled) before the context ended.
var ErrNotReady = errors.New("embedded: server not ready")
