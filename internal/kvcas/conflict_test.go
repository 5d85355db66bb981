package kvcas

import (
	"context"
	"fmt"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// TestConflict: a write refused over the key's revision is "moved" when
// the revision is not the expected one (10071, any stream) and "busy" when
// another write to the key was in process (10164, replicated streams),
// however nats.go wraps it; nothing else is either.
func TestConflict(t *testing.T) {
	tests := []struct {
		name        string
		err         error
		moved, busy bool
	}{
		{name: "nil", err: nil},
		{name: "wrong last sequence", err: &jetstream.APIError{Code: 400, ErrorCode: 10071}, moved: true},
		{name: "wrong last sequence, wrapped as Update does", err: fmt.Errorf("%w: %w", &jetstream.APIError{Code: 400, ErrorCode: 10071}, jetstream.ErrKeyRevisionMismatch), moved: true},
		{name: "in flight", err: &jetstream.APIError{Code: 400, ErrorCode: 10164}, busy: true},
		{name: "in flight, wrapped as Create does", err: fmt.Errorf("%w: %w", &jetstream.APIError{Code: 400, ErrorCode: 10164}, jetstream.ErrKeyExists), busy: true},
		{name: "in flight, wrapped as Update does", err: fmt.Errorf("%w: %w", &jetstream.APIError{Code: 400, ErrorCode: 10164}, jetstream.ErrKeyRevisionMismatch), busy: true},
		{name: "key exists", err: jetstream.ErrKeyExists, moved: true},
		{name: "revision mismatch", err: jetstream.ErrKeyRevisionMismatch, moved: true},
		{name: "other API error", err: &jetstream.APIError{Code: 503, ErrorCode: 10008}},
		{name: "timeout", err: context.DeadlineExceeded},
		{name: "no responders", err: nats.ErrNoResponders},
		{name: "no stream response", err: jetstream.ErrNoStreamResponse},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if moved, busy := Conflict(tt.err); moved != tt.moved || busy != tt.busy {
				t.Errorf("Conflict(%v) = moved %v, busy %v; want %v, %v", tt.err, moved, busy, tt.moved, tt.busy)
			}
		})
	}
}
