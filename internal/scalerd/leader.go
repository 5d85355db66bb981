package scalerd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/a2abus/a2abus/agentbus"
	"github.com/a2abus/a2abus/internal/lease"
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

// elector holds or seeks the leadership of one scalerd with a lease on the
// leader key (package lease): Create wins the key, and the leader
// refreshes it with an Update at the revision it last wrote, so a refresh
// the server refuses means another scalerd holds the key now (ours
// expired) and this one stops acting at once. A scalerd leads while its
// lease is held: one whose refreshes go unanswered stops leading at the
// lease's deadline, before the server can let the key expire and a standby
// take it. Standbys try Create on every beat and whenever the key is
// deleted, so a resigning leader is replaced at once and a dead one a
// lease after its last refresh.
type elector struct {
	l   *lease.Lease
	kv  jetstream.KeyValue // watched for deletions
	id  string
	log *slog.Logger
	now func() time.Time // the times in the key's value
	// onChange is called with the new state whenever it changes, under mu.
	onChange func(leader bool)

	cmu   sync.Mutex // held by campaign, resign and abdicate, across their I/O
	since time.Time  // when this scalerd took the key; zero when it claims none
	// fence calls leader at the lease's deadline, so that a leader whose
	// refreshes go unanswered reports that it stopped leading then, even
	// while a refresh hangs.
	fence *time.Timer

	mu      sync.Mutex
	leading bool // the state last reported to onChange
}

// newElector opens (creating) the leader bucket with TTL ttl, replicated as
// the A2A stream is.
func newElector(ctx context.Context, js jetstream.JetStream, id string, ttl time.Duration, log *slog.Logger, now func() time.Time, onChange func(bool)) (*elector, error) {
	s, err := js.Stream(ctx, agentbus.StreamName)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", agentbus.StreamName, err)
	}
	kv, err := lease.Bucket(ctx, js, LeaderBucket, "a2abus: the scalerd that sets the consumer target", ttl, s.CachedInfo().Config.Replicas)
	if err != nil {
		return nil, err
	}
	return elect(kv, id, ttl, log, now, onChange)
}

// elect returns the elector of scalerd id on the leader key of kv, whose
// TTL is ttl.
func elect(kv jetstream.KeyValue, id string, ttl time.Duration, log *slog.Logger, now func() time.Time, onChange func(bool)) (*elector, error) {
	l, err := lease.New(kv, leaderKey, ttl)
	if err != nil {
		return nil, err
	}
	e := &elector{l: l, kv: kv, id: id, log: log, now: now, onChange: onChange}
	e.fence = time.AfterFunc(ttl, func() {
		if !e.leader() {
			e.log.Warn("stopped leading: no refresh of the leader key was answered before the lease's deadline", "id", e.id)
		}
	})
	e.fence.Stop()
	return e, nil
}

// leader reports whether this scalerd leads: whether its lease holds the
// key. It does not wait for a refresh in flight.
func (e *elector) leader() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	is := e.l.Held()
	if is != e.leading {
		e.leading = is
		if e.onChange != nil {
			e.onChange(is)
		}
	}
	return is
}

// campaign refreshes the key if this scalerd claims it, or tries to take it
// if not, and reports whether it leads now.
func (e *elector) campaign(ctx context.Context) bool {
	e.cmu.Lock()
	defer e.cmu.Unlock()
	now := e.now()
	if !e.since.IsZero() {
		err := e.l.Renew(ctx, e.value(e.since, now))
		switch {
		case err == nil:
			e.fence.Reset(time.Until(e.l.Deadline()))
		case errors.Is(err, lease.ErrLost):
			e.since = time.Time{}
			e.fence.Stop()
			e.log.Warn("leadership lost: another scalerd took the leader key, or it expired", "id", e.id, "err", err)
		case errors.Is(ctx.Err(), context.Canceled):
			// Stopping: resign decides, not a cancelled refresh.
		default:
			// Neither refreshed nor known lost: the lease's deadline decides
			// (the fence reports it), and the next refresh may still win.
			level := slog.LevelDebug
			if e.l.Held() {
				level = slog.LevelWarn
			}
			e.log.Log(ctx, level, "leader key not refreshed", "id", e.id, "leading_until", e.l.Deadline(), "err", err)
		}
		return e.leader()
	}
	if err := e.l.Acquire(ctx, e.value(now, now)); err != nil {
		return e.leader() // another scalerd leads, or the server did not answer
	}
	e.since = now
	e.fence.Reset(time.Until(e.l.Deadline()))
	e.log.Info("leading: this scalerd writes the consumer target", "id", e.id)
	return e.leader()
}

// value is the key's value for a leadership taken at since.
func (e *elector) value(since, at time.Time) []byte {
	val, _ := json.Marshal(leaderValue{ID: e.id, Since: since, At: at})
	return val
}

// resign deletes the leader key if this scalerd still claims it, so that a
// standby takes over at once instead of after the lease.
func (e *elector) resign(ctx context.Context) {
	e.cmu.Lock()
	defer e.cmu.Unlock()
	if e.since.IsZero() {
		return
	}
	e.since = time.Time{}
	e.fence.Stop()
	if err := e.l.Release(ctx); err != nil {
		e.log.Warn("resign: the leader key stays until its lease ends", "id", e.id, "err", err)
	} else {
		e.log.Info("resigned leadership", "id", e.id)
	}
	e.leader()
}

// abdicate forgets the leadership without touching the key, as a scalerd
// that died would: the key stays until its lease ends.
func (e *elector) abdicate() {
	e.cmu.Lock()
	defer e.cmu.Unlock()
	e.since = time.Time{}
	e.fence.Stop()
	e.l.Forget()
	e.leader()
}

// run campaigns every beat, and at once whenever the key is deleted (an
// expiry makes no event: standbys see it at their next beat), until ctx
// ends. Each campaign has a beat to get its answer.
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
		cctx, cancelCampaign := context.WithTimeout(ctx, beat)
		e.campaign(cctx)
		cancelCampaign()
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
