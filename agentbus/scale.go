package agentbus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// The scale target lives in a KV bucket: the scaler writes it, every agentd
// watches it. The bucket keeps the last decisions as the key's history.
const (
	ScaleBucket = "a2abus_scale"
	scaleKey    = "consumers"
	// scaleHistory is how many past targets the bucket keeps.
	scaleHistory = 64
)

// ScaleTarget is the consumer count the scaler wants and why.
type ScaleTarget struct {
	Consumers int       `json:"consumers"`
	Reason    string    `json:"reason"`
	At        time.Time `json:"at"`
	By        string    `json:"by,omitempty"` // the scaler that decided
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
			Bucket: ScaleBucket, Description: "a2abus: the consumer count the scaler wants",
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

// SetScaleTarget stores t as the wanted consumer count.
func (b *Bus) SetScaleTarget(ctx context.Context, t ScaleTarget) error {
	if t.Consumers < 0 {
		return fmt.Errorf("agentbus: scale target of %d consumers", t.Consumers)
	}
	kv, err := b.scaleBucket(ctx, true)
	if err != nil {
		return err
	}
	val, _ := json.Marshal(t)
	if _, err := kv.Put(ctx, scaleKey, val); err != nil {
		return fmt.Errorf("agentbus: set scale target: %w", err)
	}
	return nil
}

// ScaleTarget returns the wanted consumer count; ok is false when no
// scaler has set one.
func (b *Bus) ScaleTarget(ctx context.Context) (t ScaleTarget, ok bool, err error) {
	kv, err := b.scaleBucket(ctx, false)
	if kv == nil || err != nil {
		return t, false, err
	}
	e, err := kv.Get(ctx, scaleKey)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return t, false, nil
	}
	if err != nil {
		return t, false, fmt.Errorf("agentbus: scale target: %w", err)
	}
	if err := json.Unmarshal(e.Value(), &t); err != nil {
		return t, false, fmt.Errorf("agentbus: scale target: %w", err)
	}
	return t, true, nil
}

// WatchScaleTarget sends the current scale target, and every later one,
// until ctx ends; then it closes the channel. nil means there is no target
// (none was set, or an operator deleted it). The channel holds one value: a
// reader that falls behind gets the latest (older ones are dropped, which
// is all a reader that converges on the latest needs). The watch creates
// the bucket if it does not exist yet.
func (b *Bus) WatchScaleTarget(ctx context.Context) (<-chan *ScaleTarget, error) {
	kv, err := b.scaleBucket(ctx, true)
	if err != nil {
		return nil, err
	}
	w, err := kv.Watch(ctx, scaleKey)
	if err != nil {
		return nil, fmt.Errorf("agentbus: watch scale target: %w", err)
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
					b.cfg.log.Warn("undecodable scale target ignored", "err", err)
					continue
				}
				send(&t)
			}
		}
	}()
	return out, nil
}
