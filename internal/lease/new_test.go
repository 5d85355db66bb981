package lease

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

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
