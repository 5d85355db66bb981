package agentbus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/a2abus/a2abus/placement"
	"github.com/nats-io/nats.go/jetstream"
)

// Scale targets live in a KV bucket, one key per pool: the scaler writes
// each pool's target, and every agentd of a pool watches its pool's key.
// The bucket keeps each key's last decisions as its history:
//
//	nats kv history a2abus_scale pools.<pool>
const (
	ScaleBucket    = "a2abus_scale"
	scaleKeyPrefix = "pools."
	// scaleHistory is how many past targets the bucket keeps per pool.
	scaleHistory = 64
)

// ScaleTarget is the consumer count the scaler wants for a pool, and why.
type ScaleTarget struct {
	Consumers int       `json:"consumers"`
	Reason    string    `json:"reason"`
	At        time.Time `json:"at"`
	By        string    `json:"by,omitempty"` // the scaler that decided
}

// scaleKey returns the key of pool's target, or an error naming a bad
// pool name.
func scaleKey(pool string) (string, error) {
	if err := placement.ValidatePoolName(pool); err != nil {
		return "", fmt.Errorf("agentbus: scale target: %w", err)
	}
	return scaleKeyPrefix + pool, nil
}

// scaleBucket opens the scale bucket, creating it when create is set;
// without create it returns nil, nil when the bucket does not exist. The
// handle is kept once opened.
func (b *Bus) scaleBucket(ctx context.Context, create bool) (jetstream.KeyValue, error) {
	b.scaleMu.Lock()
	defer b.scaleMu.Unlock()
	if b.scaleKV != nil {
		return b.scaleKV, nil
	}
	var kv jetstream.KeyValue
	var err error
	if create {
		kv, err = b.js[0].CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket: ScaleBucket, Description: "a2abus: the consumer count the scaler wants for each pool",
			History: scaleHistory, Replicas: b.replicas,
		})
	} else {
		kv, err = b.js[0].KeyValue(ctx, ScaleBucket)
		if errors.Is(err, jetstream.ErrBucketNotFound) {
			return nil, nil
		}
	}
	if err != nil {
		return nil, fmt.Errorf("agentbus: bucket %s: %w", ScaleBucket, err)
	}
	b.scaleKV = kv
	return kv, nil
}

// SetScaleTarget stores t as the consumer count wanted for pool.
func (b *Bus) SetScaleTarget(ctx context.Context, pool string, t ScaleTarget) error {
	key, err := scaleKey(pool)
	if err != nil {
		return err
	}
	if t.Consumers < 0 {
		return fmt.Errorf("agentbus: scale target of %d consumers for pool %s", t.Consumers, pool)
	}
	kv, err := b.scaleBucket(ctx, true)
	if err != nil {
		return err
	}
	val, _ := json.Marshal(t)
	if _, err := kv.Put(ctx, key, val); err != nil {
		return fmt.Errorf("agentbus: set scale target of pool %s: %w", pool, err)
	}
	return nil
}

// ScaleTarget returns the consumer count wanted for pool; ok is false when
// no scaler has set one.
func (b *Bus) ScaleTarget(ctx context.Context, pool string) (t ScaleTarget, ok bool, err error) {
	key, err := scaleKey(pool)
	if err != nil {
		return t, false, err
	}
	kv, err := b.scaleBucket(ctx, false)
	if kv == nil || err != nil {
		return t, false, err
	}
	e, err := kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return t, false, nil
	}
	if err != nil {
		return t, false, fmt.Errorf("agentbus: scale target of pool %s: %w", pool, err)
	}
	if err := json.Unmarshal(e.Value(), &t); err != nil {
		return t, false, fmt.Errorf("agentbus: scale target of pool %s: %w", pool, err)
	}
	return t, true, nil
}

// WatchScaleTarget sends pool's current scale target, and every later
// one, until ctx ends; then it closes the channel. nil means there is no
// target (none was set, or an operator deleted it). The channel holds one
// value: a reader that falls behind gets the latest (older ones are
// dropped, which is all a reader that converges on the latest needs). The
// watch creates the bucket if it does not exist yet.
func (b *Bus) WatchScaleTarget(ctx context.Context, pool string) (<-chan *ScaleTarget, error) {
	key, err := scaleKey(pool)
	if err != nil {
		return nil, err
	}
	kv, err := b.scaleBucket(ctx, true)
	if err != nil {
		return nil, err
	}
	w, err := kv.Watch(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("agentbus: watch scale target of pool %s: %w", pool, err)
	}
	out := make(chan *ScaleTarget, 1) // the latest target; see above
	send := func(t *ScaleTarget) {
		select { // replace an unread target with this newer one
		case <-out:
		default:
		}
		out <- t // the only sender: never blocks after the drain
	}
	go func() {
		defer close(out)
		defer func() { _ = w.Stop() }()
		initial, seen := true, false // in the initial values; one was sent
		for {
			var e jetstream.KeyValueEntry
			var open bool
			select {
			case <-ctx.Done():
				return
			case e, open = <-w.Updates():
				if !open {
					return // the watcher stopped: the connection closed
				}
			}
			switch {
			case e == nil: // the end of the initial values
				if initial && !seen {
					send(nil) // no target stored
				}
				initial = false
			case e.Operation() != jetstream.KeyValuePut:
				seen = true
				send(nil) // deleted or purged
			default:
				seen = true
				var t ScaleTarget
				if err := json.Unmarshal(e.Value(), &t); err != nil {
					b.cfg.log.Warn("undecodable scale target ignored", "pool", pool, "err", err)
					continue
				}
				send(&t)
			}
		}
	}()
	return out, nil
}
