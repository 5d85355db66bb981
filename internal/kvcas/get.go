package kvcas

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Entry is a key's last value as the leader has it.
type Entry struct {
	Key      string
	Value    []byte
	Revision uint64
	Created  time.Time
}

// JetStream API error codes of a message get that found nothing, and of
// one to a stream that does not exist.
const (
	errCodeNoMessage      = 10037
	errCodeStreamNotFound = 10059
)

// Get returns key's last value in bucket from the stream leader,
// jetstream.ErrKeyNotFound when the key does not exist or was deleted or
// purged, or jetstream.ErrBucketNotFound. While its stream has no leader
// it asks again until ctx ends (a minute when ctx has no deadline).
func Get(ctx context.Context, nc *nats.Conn, bucket, key string) (*Entry, error) {
	req, err := json.Marshal(struct {
		LastBySubject string `json:"last_by_subj"`
	}{"$KV." + bucket + "." + key})
	if err != nil {
		return nil, err
	}
	// Only the leader answers: while a new one is elected nobody does, so
	// each try is bounded and the request made again until ctx ends, or a
	// minute when it has no deadline.
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Minute)
		defer cancel()
	}
	for {
		actx, cancel := context.WithTimeout(ctx, getAttempt)
		msg, err := nc.RequestWithContext(actx, "$JS.API.STREAM.MSG.GET.KV_"+bucket, req)
		cancel()
		if err == nil {
			return decode(bucket, key, msg.Data)
		}
		unanswered := errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout)
		if !unanswered || ctx.Err() != nil {
			return nil, fmt.Errorf("kvcas: get %s in %s: %w", key, bucket, err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("kvcas: get %s in %s: %w", key, bucket, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// getAttempt bounds one try of Get: a leader answers in milliseconds.
const getAttempt = 2 * time.Second

// decode reads the JetStream API's answer to a message get of key.
func decode(bucket, key string, data []byte) (*Entry, error) {
	var resp struct {
		Error *struct {
			Code        int    `json:"code"`
			ErrCode     int    `json:"err_code"`
			Description string `json:"description"`
		} `json:"error"`
		Message *struct {
			Sequence uint64    `json:"seq"`
			Header   []byte    `json:"hdrs"`
			Data     []byte    `json:"data"`
			Time     time.Time `json:"time"`
		} `json:"message"`
	}
	if err := json.Unmarshal(data, &resp); err != nil {
		return nil, fmt.Errorf("kvcas: get %s in %s: undecodable answer: %w", key, bucket, err)
	}
	switch {
	case resp.Error != nil && resp.Error.ErrCode == errCodeNoMessage:
		return nil, jetstream.ErrKeyNotFound
	case resp.Error != nil && resp.Error.ErrCode == errCodeStreamNotFound:
		return nil, jetstream.ErrBucketNotFound
	case resp.Error != nil:
		return nil, fmt.Errorf("kvcas: get %s in %s: %s (%d)", key, bucket, resp.Error.Description, resp.Error.ErrCode)
	case resp.Message == nil:
		return nil, fmt.Errorf("kvcas: get %s in %s: an answer without a message", key, bucket)
	}
	m := resp.Message
	if len(m.Header) > 0 {
		h, err := nats.DecodeHeadersMsg(m.Header)
		if err != nil {
			return nil, fmt.Errorf("kvcas: get %s in %s: undecodable headers: %w", key, bucket, err)
		}
		if op := h.Get("KV-Operation"); op == "DEL" || op == "PURGE" {
			return nil, jetstream.ErrKeyNotFound
		}
	}
	return &Entry{Key: key, Value: m.Data, Revision: m.Sequence, Created: m.Time}, nil
}
