package agentbus

import (
	"errors"

	"github.com/a2abus/a2abus/batcher"
	"github.com/a2abus/a2abus/codec"
	"github.com/a2abus/a2abus/placement"
)

var (
	// ErrStreamConflict is returned by EnsureStreams when a stream exists
	// with settings that cannot be changed to the wanted ones (subjects,
	// retention, storage, discard policy). The wrapping error names the
	// stream and the settings.
	ErrStreamConflict = errors.New("agentbus: existing stream conflicts with the wanted settings")

	// ErrBackpressure is wrapped by a send error when the send buffer or
	// the stream stayed full until the send's context ended. The error
	// also wraps the context's error.
	ErrBackpressure = batcher.ErrBackpressure

	// ErrClosed is wrapped by a send error after Close started, or for a
	// message Close could not deliver before its context ended.
	ErrClosed = batcher.ErrClosed

	// ErrTooLarge is wrapped by a send error for a message over the max
	// message size; nothing was sent.
	ErrTooLarge = codec.ErrTooLarge

	// ErrInvalidAgentID is wrapped by a send error for an invalid agent ID;
	// nothing was sent.
	ErrInvalidAgentID = placement.ErrInvalidAgentID

	// ErrUnknownAgent is wrapped by a send error for an agent that no pool
	// has declared (see Declare and WithUnknownAgents); nothing was sent.
	ErrUnknownAgent = errors.New("agentbus: unknown agent")

	// ErrPoolMismatch is wrapped by Declare's and Serve's error when the
	// registry holds the pool with another partitioning, an agent is
	// served by another pool, or the pool's live members serve other
	// agents than this member: the message names both sides.
	ErrPoolMismatch = errors.New("agentbus: pool mismatch")

	// ErrFenced is the cause of a handler context that ended because its
	// member could no longer confirm that it holds the envelope's batch
	// (its progress acknowledgements went unconfirmed until the ack wait
	// was about to pass): the batch may be redelivered to another member,
	// and this member neither acknowledges nor releases it.
	ErrFenced = errors.New("agentbus: batch fenced: this member no longer holds it")
)
