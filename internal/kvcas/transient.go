package kvcas

import (
	"context"
	"errors"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Transient reports whether err says a JetStream API request got no
// answer, or one a cluster gives while it elects its leaders or its
// servers start: worth asking again.
func Transient(err error) bool {
	var apiErr *jetstream.APIError
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrNoResponders),
		errors.Is(err, nats.ErrTimeout), errors.Is(err, jetstream.ErrJetStreamNotEnabled):
		return true
	case errors.As(err, &apiErr):
		// 10008: JetStream temporarily unavailable (no meta leader yet);
		// 10005: no suitable peers for placement (yet); 10023:
		// insufficient resources (a peer still starting).
		return apiErr.ErrorCode == 10008 || apiErr.ErrorCode == 10005 || apiErr.ErrorCode == 10023
	}
	return false
}
