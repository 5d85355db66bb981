package scalerd

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/a2abus/a2abus/agentbus"
	"github.com/nats-io/nats.go/jetstream"
)

// LeaderBucket is the KV bucket of the scaler's leader election: its key
// "leader" names the scalerd that writes the consumer target. The bucket's
// TTL is the lease: a leader that stops refreshing its key loses it that
// long after the last refresh.
const (
	LeaderBucket = "a2abus_scaler"
	leaderKey    = "leader"
)

// leaderValue is the leader key's value.
type leaderValue struct {
	ID    string    `json:"id"`
	Since time.Time `json:"since"`
	At    time.Time `json:"at"`
}

// elector holds or seeks the leadership of one scalerd. Create wins the key;
// the leader refreshes it with Update at the revision it last wrote, so a
// failed refresh means another scalerd holds the key now (ours expired) and
// this one stops acting at once. Standbys try Create on every beat and
// whenever the key is deleted, so a resigning leader is replaced at once
// and a dead one a lease after its last refresh.
type elector struct {
	kv  jetstream.KeyValue
	id  string
	log *slog.Logger
	now func() time.Time
	// onChange is called with the new state whenever it changes, under mu.
	onChange func(leader bool)

	mu    sync.Mutex
	rev   uint64 // our key's revision; 0 when not the leader
	since time.Time
}

// newElector opens (creating) the leader bucket with TTL lease, replicated
// as the A2A stream is.
func newElector(ctx context.Context, js jetstream.JetStream, id string, lease time.Duration, log *slog.Logger, now func() time.Time, onChange func(bool)) (*elector, error) {
	s, err := js.Stream(ctx, agentbus.StreamName)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", agentbus.StreamName, err)
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: LeaderBucket, Description: "a2abus: the scalerd that sets the consumer target",
		TTL: lease, History: 1, Replicas: s.CachedInfo().Config.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("bucket %s: %w", LeaderBucket, err)
	}
	return &elector{kv: kv, id: id, log: log, now: now, onChange: onChange}, nil
}

// leader reports whether this scalerd held the key at its last refresh.
func (e *elector) leader() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.rev != 0
}

// campaign refreshes the key if this scalerd leads, or tries to take it if
// not, and reports whether it leads now.
func (e *elector) campaign(ctx context.Context) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.now()
	if e.rev != 0 {
		val, _ := json.Marshal(leaderValue{ID: e.id, Since: e.since, At: now})
		rev, err := e.kv.Update(ctx, leaderKey, val, e.rev)
		if err != nil {
			if ctx.Err() != nil {
				return true // stopping: resign decides, not a cancelled refresh
			}
			e.set(0)
			e.log.Warn("leadership lost: the leader key could not be refreshed", "id", e.id, "err", err)
			return false
		}
		e.rev = rev
		return true
	}
	val, _ := json.Marshal(leaderValue{ID: e.id, Since: now, At: now})
	rev, err := e.kv.Create(ctx, leaderKey, val)
	if err != nil {
		return false // another scalerd leads, or the server did not answer
	}
	e.since = now
	e.set(rev)
	e.log.Info("leading: this scalerd writes the consumer target", "id", e.id)
	return true
}

// set changes the revision and reports a change of state; e.mu is held.
func (e *elector) set(rev uint64) {
	was := e.rev != 0
	e.rev = rev
	if is := rev != 0; is != was && e.onChange != nil {
		e.onChange(is)
	}
}

// resign deletes the leader key if this scalerd still holds it, so that a
// standby takes over at once instead of after the lease.
func (e *elector) resign(ctx context.Context) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.rev == 0 {
		return
	}
	if err := e.kv.Delete(ctx, leaderKey, jetstream.LastRevision(e.rev)); err != nil {
		e.log.Warn("resign: the leader key stays until its lease ends", "id", e.id, "err", err)
	} else {
		e.log.Info("resigned leadership", "id", e.id)
	}
	e.set(0)
}

// abdicate forgets the leadership without touching the key, as a scalerd
// that died would: the key stays until its lease ends.
func (e *elector) abdicate() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.set(0)
}

// run campaigns every beat, and at once whenever the key is deleted (an
// expiry makes no event: standbys see it at their next beat), until ctx
// ends.
func (e *elector) run(ctx context.Context, beat time.Duration) {
	gone := make(chan struct{}, 1) // a pending "the key went away"
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var watchDone chan struct{}
	if w, err := e.kv.Watch(wctx, leaderKey, jetstream.UpdatesOnly()); err != nil {
		e.log.Warn("watch leader key; standbys retry each beat only", "err", err)
	} else {
		watchDone = make(chan struct{})
		go func() {
			defer close(watchDone)
			defer func() { _ = w.Stop() }()
			for {
				select {
				case <-wctx.Done():
					return
				case ent, ok := <-w.Updates():
					if !ok {
						return
					}
					if ent != nil && ent.Operation() != jetstream.KeyValuePut {
						select {
						case gone <- struct{}{}:
						default:
						}
					}
				}
			}
		}()
	}
	tick := time.NewTicker(beat)
	defer tick.Stop()
	for {
		e.campaign(ctx)
		select {
		case <-ctx.Done():
			cancel()
			if watchDone != nil {
				<-watchDone
			}
			return
		case <-tick.C:
		case <-gone:
		}
	}
}
