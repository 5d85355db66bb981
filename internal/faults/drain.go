package faults

import (
	"context"
	"fmt"
	"time"

	"github.com/a2abus/a2abus/agentbus"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// StreamMsgs returns the messages in a stream, asking whoever leads it
// now; ok is false while that fails (during an election, say).
func StreamMsgs(ctx context.Context, nc *nats.Conn, stream string) (n uint64, ok bool) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	js, err := jetstream.New(nc)
	if err != nil {
		return 0, false
	}
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return 0, false
	}
	info, err := s.Info(ctx)
	if err != nil {
		return 0, false
	}
	return info.State.Msgs, true
}

// WaitDrained waits until every acknowledged key is handled and the A2A
// stream is empty: the stream is a work queue, so then every batch has
// been acknowledged and nothing more can be redelivered. Stop the
// publishers (and close their buses, which flushes them) first. The error
// says what is still missing when ctx ends first.
func WaitDrained(ctx context.Context, nc *nats.Conn, l *Ledger) error {
	for {
		c := l.Counts()
		n, ok := StreamMsgs(ctx, nc, agentbus.StreamName)
		if c.Lost == 0 && ok && n == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("faults: not drained: %d acknowledged keys not handled (e.g. %v), A2A stream holds %d messages (known %v): %w",
				c.Lost, l.LostKeys(5), n, ok, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}
