package a2anats

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// readOwn reads key from kv by direct get, which any replica may answer on
// R3, so that a process reads its own writes: a read older than floor, the
// last revision the process wrote or read of the key (0: none), is asked
// again until a replica that has caught up answers, within staleReads
// tries. Finding no key is stale too, so keys read so are never deleted
// (they expire). A read nobody answers is asked again as well. It returns
// jetstream.ErrKeyNotFound when the key is not there. A leader read would
// do without, but an agent's own credentials (agentbus.AgentPermissions)
// may only name its own keys in the subject of a direct get.
func readOwn(ctx context.Context, kv jetstream.KeyValue, key string, floor uint64) (jetstream.KeyValueEntry, error) {
	wait := staleWaitMin
	for try := 1; ; try++ {
		e, err := kv.Get(ctx, key)
		missing := errors.Is(err, jetstream.ErrKeyNotFound)
		stale := floor > 0 && (missing || err == nil && e.Revision() < floor)
		// Nobody answers direct gets while the stream's replicas set up
		// (a bucket just made, a replica restarted): asked again too.
		unanswered := errors.Is(err, nats.ErrNoResponders)
		if !stale && !unanswered {
			return e, err
		}
		if try == staleReads {
			if unanswered {
				return nil, err
			}
			return nil, fmt.Errorf("the replicas answer with revisions older than %d, which this store wrote or read", floor)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, staleWaitMax)
	}
}

// How often, and with what waits, a read older than what this store saw
// is asked again: a replica catches up within milliseconds.
const (
	staleReads   = 20
	staleWaitMin = 2 * time.Millisecond
	staleWaitMax = 100 * time.Millisecond
)
