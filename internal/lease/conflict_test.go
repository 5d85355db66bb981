package lease

import (
	"context"
	"fmt"
	"testing"
	"time"

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
			if moved, busy := conflict(tt.err); moved != tt.moved || busy != tt.busy {
				t.Errorf("conflict(%v) = moved %v, busy %v; want %v, %v", tt.err, moved, busy, tt.moved, tt.busy)
			}
		})
	}
}

// TestNewRejectsBadInput: every bad argument is an error, not a panic or a
// lease that can never hold its key.
func TestNewRejectsBadInput(t *testing.T) {
	var kv jetstream.KeyValue = struct{ jetstream.KeyValue }{}
	tests := []struct {
		name    string
		kv      jetstream.KeyValue
		key     string
		ttl     time.Duration
		opts    []Option
		wantErr bool
	}{
		{name: "valid", kv: kv, key: "k", ttl: time.Second},
		{name: "valid, no margin", kv: kv, key: "k", ttl: time.Second, opts: []Option{WithMargin(0)}},
		{name: "no bucket", key: "k", ttl: time.Second, wantErr: true},
		{name: "empty key", kv: kv, ttl: time.Second, wantErr: true},
		{name: "no TTL", kv: kv, key: "k", wantErr: true},
		{name: "negative TTL", kv: kv, key: "k", ttl: -time.Second, wantErr: true},
		{name: "negative margin", kv: kv, key: "k", ttl: time.Second, opts: []Option{WithMargin(-time.Nanosecond)}, wantErr: true},
		{name: "margin the TTL", kv: kv, key: "k", ttl: time.Second, opts: []Option{WithMargin(time.Second)}, wantErr: true},
		{name: "nil clock", kv: kv, key: "k", ttl: time.Second, opts: []Option{WithClock(nil)}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := New(tt.kv, tt.key, tt.ttl, tt.opts...)
			if (err != nil) != tt.wantErr || (err == nil) != (l != nil) {
				t.Errorf("New: %v, %v; want an error %v", l, err, tt.wantErr)
			}
		})
	}
	if _, err := Bucket(context.Background(), nil, "b", "", 0, 1); err == nil {
		t.Error("Bucket with no TTL: no error")
	}
}
