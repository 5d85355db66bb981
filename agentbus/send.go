package agentbus

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/a2abus/a2abus/batcher"
	"github.com/a2abus/a2abus/codec"
	"github.com/a2abus/a2abus/internal/tracing"
	"github.com/a2abus/a2abus/placement"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// Ticket is the outcome of a SendAsync: every message of one batch shares
// its batch's Ticket. Wait for it, or select on Done and read Err.
type Ticket = batcher.Ticket

// Retry back-off of a batch publish, and how long one attempt waits for
// its ack before it is retried (a lost ack, for example after a reconnect,
// must not hold a batch until its deadline).
const (
	retryMin       = 20 * time.Millisecond
	retryMax       = time.Second
	attemptTimeout = 2 * time.Second
	attemptPerMiB  = 100 * time.Millisecond // added per MiB of frame for slow links
)

// sendStats counts what the send path did, for metrics.
type sendStats struct {
	retries   atomic.Uint64 // publish attempts after the first
	duplicate atomic.Uint64 // batches the stream had already stored (a retry after a lost ack)
	full      atomic.Uint64 // publish attempts refused because the stream was full
	tooLarge  atomic.Uint64 // messages refused before sending: over the max size
	invalid   atomic.Uint64 // messages refused before sending: bad agent ID
}

// Send sends env to the agent env.To and returns once the batch holding it
// is stored in the A2A stream, or with the reason it is not: an invalid
// agent ID, an agent no pool serves (ErrUnknownAgent) or an oversize
// message (before anything is sent), backpressure
// (the buffer or the stream stayed full until ctx ended), or the publish
// error after retries. When ctx ends while the batch is in flight, Send
// returns ctx's error and the message may still be stored.
//
// Send fills in env.ID (a unique ID, stable across retries) and
// env.CreatedAt when they are empty, and writes the trace context of ctx
// (of its send span when tracing is on) into env's headers, replacing the
// one they held. env may be reused once Send returns.
func (b *Bus) Send(ctx context.Context, env *codec.Envelope) error {
	t, err := b.SendAsync(ctx, env)
	if err != nil {
		return err
	}
	return t.Wait(ctx)
}

// SendAsync encodes env and queues it for its destination's next batch,
// blocking only while the send buffer is full (then, when ctx ends, it
// returns an error wrapping ErrBackpressure). The Ticket completes when the
// batch is stored or has failed. env may be reused once SendAsync returns.
func (b *Bus) SendAsync(ctx context.Context, env *codec.Envelope) (*Ticket, error) {
	if err := b.validate(env); err != nil {
		return nil, err
	}
	_, _, subject, err := b.destination(ctx, env)
	if err != nil {
		return nil, err
	}
	span := b.startSend(ctx, env, subject, false)
	buf := b.codec.Pool().Get(1 << 10)
	if buf.B, err = env.AppendMsgpack(buf.B); err != nil {
		b.codec.Pool().Put(buf)
		err = fmt.Errorf("agentbus: encode message %s: %w", env.ID, err)
		endSpan(span, err)
		return nil, err
	}
	if n := len(buf.B); n > b.cfg.maxMsgSize {
		b.codec.Pool().Put(buf)
		b.stats.tooLarge.Add(1)
		err = fmt.Errorf("agentbus: message %s to %s is %d bytes: %w (%d bytes)", env.ID, env.To, n, codec.ErrTooLarge, b.cfg.maxMsgSize)
		endSpan(span, err)
		return nil, err
	}
	if span != nil {
		span.SetAttributes(tracing.BodySize.Int(len(buf.B)))
	}
	// The buffer's capacity, not the message's length, is what it holds
	// in memory, so the send buffer's byte limit bounds real memory.
	// Batches form per subject: per agent and partition, so that a batch
	// is one partition's and its envelopes keep their keys' order.
	t, err := b.batch.Add(ctx, subject, sendItem{buf, span}, cap(buf.B))
	if err != nil {
		b.codec.Pool().Put(buf)
		err = fmt.Errorf("agentbus: send to %s: %w", env.To, err)
		endSpan(span, err)
		return nil, err
	}
	return t, nil
}

// validate checks env's agent IDs and fills in its ID and creation time.
func (b *Bus) validate(env *codec.Envelope) error {
	if err := placement.ValidateAgentID(env.To); err != nil {
		b.stats.invalid.Add(1)
		return fmt.Errorf("agentbus: send to: %w", err)
	}
	if env.From != "" {
		if err := placement.ValidateAgentID(env.From); err != nil {
			b.stats.invalid.Add(1)
			return fmt.Errorf("agentbus: send from: %w", err)
		}
	}
	if env.ID == "" {
		env.ID = newID()
	}
	if env.CreatedAt == 0 {
		env.CreatedAt = time.Now().UnixMilli()
	}
	return nil
}

// newID returns a unique message ID.
func newID() string { return nuid.Next() }

// flush publishes one batch of encoded envelopes for subject (one agent's
// in one partition) as one frame, retrying with the same Nats-Msg-Id until
// stored or ctx ends.
func (b *Bus) flush(ctx context.Context, subject string, items []sendItem) (err error) {
	ctx, span := b.startPublish(ctx, subject, items)
	if span != nil { // there is one when, and only when, an item's send span records
		defer func() {
			endSpan(span, err)
			for _, it := range items {
				endSpan(it.span, err)
			}
		}()
	}
	pool := b.codec.Pool()
	w, _ := b.writers.Get().(*codec.BatchWriter)
	if w == nil {
		w = b.codec.NewBatchWriter()
	}
	w.Reset()
	for _, it := range items {
		if err == nil {
			err = w.AddEncoded(it.buf.B)
		}
		pool.Put(it.buf)
	}
	frame := pool.Get(w.Size() + 64)
	defer pool.Put(frame)
	if err == nil {
		frame.B, err = w.AppendFrame(frame.B)
	}
	b.writers.Put(w)
	if err != nil {
		return fmt.Errorf("agentbus: frame batch of %d for %s: %w", len(items), subject, err)
	}

	msg := &nats.Msg{Subject: subject, Data: frame.B, Header: nats.Header{}}
	id := nuid.Next()
	js := b.js[0]
	if n := len(b.js); n > 1 {
		js = b.js[placement.JumpHashString(subject, n)]
	}
	return b.publish(ctx, js, msg, id, len(items))
}

// publish stores msg, retrying transient failures (timeouts, no responders
// during a leader election, a disconnect, a full stream) with back-off and
// the same message ID, so the stream stores it once.
func (b *Bus) publish(ctx context.Context, js jetstream.JetStream, msg *nats.Msg, id string, n int) error {
	nc := js.Conn()
	var last error // the last failure that was not ctx ending
	full := false  // the last attempt found the stream full
	wait := retryMin
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, attemptTimeout+time.Duration(len(msg.Data)>>20)*attemptPerMiB)
		ack, err := js.PublishMsg(actx, msg, jetstream.WithMsgID(id))
		cancel()
		if err == nil {
			if ack.Duplicate {
				b.stats.duplicate.Add(1)
				trace.SpanFromContext(ctx).SetAttributes(attribute.Bool("a2abus.duplicate", true))
			}
			return nil
		}
		if ctx.Err() == nil {
			noteRetry(ctx, attempt, err)
			last, full = err, isStreamFull(err)
			if full {
				b.stats.full.Add(1)
			}
			if isPermanent(err) {
				return fmt.Errorf("agentbus: publish batch %s (%d messages) to %s: %w", id, n, msg.Subject, err)
			}
			d := wait/2 + rand.N(wait/2+1)
			select {
			case <-ctx.Done():
			case <-time.After(d):
				// While disconnected, a publish would only add another copy
				// of the batch to the bounded reconnect buffer: wait for the
				// reconnect instead.
				for !nc.IsConnected() && !nc.IsClosed() && ctx.Err() == nil {
					select {
					case <-ctx.Done():
					case <-time.After(retryMin):
					}
				}
				if ctx.Err() == nil {
					b.stats.retries.Add(1)
					wait = min(2*wait, retryMax)
					continue
				}
			}
		}
		switch {
		case full:
			return fmt.Errorf("agentbus: %w: stream %s stayed full (%w) for batch %s of %d messages over %d attempts: %w",
				ErrBackpressure, StreamName, last, id, n, attempt, context.Cause(ctx))
		case last != nil:
			return fmt.Errorf("agentbus: publish batch %s (%d messages) to %s failed %d times, last: %w: %w",
				id, n, msg.Subject, attempt, last, context.Cause(ctx))
		default:
			return fmt.Errorf("agentbus: publish batch %s (%d messages) to %s: %w", id, n, msg.Subject, context.Cause(ctx))
		}
	}
}

// JetStream error codes the publish path tells apart.
const (
	codeAccountResourcesExceeded = 10002
	codeInsufficientResources    = 10023
	codeStorageResourcesExceeded = 10047
	codeStoreFailed              = 10077 // maximum bytes or messages exceeded
	codeMessageTooLarge          = 10054
	codeStreamNotMatch           = 10060
	codeWrongLastSequence        = 10071
	codeWrongLastSequenceConst   = 10164
)

// isStreamFull reports a publish refused because the stream, the account
// or the server's storage is at its limit (discard new): backpressure.
func isStreamFull(err error) bool {
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) {
		return false
	}
	switch apiErr.ErrorCode {
	case codeStoreFailed, codeStorageResourcesExceeded, codeInsufficientResources, codeAccountResourcesExceeded:
		return true
	}
	return false
}

// isPermanent reports a publish error that retrying cannot fix. Everything
// else (timeouts, no responders during a leader election, a cluster
// briefly unavailable, a full stream) is retried until the send timeout.
func isPermanent(err error) bool {
	if errors.Is(err, nats.ErrConnectionClosed) || errors.Is(err, nats.ErrMaxPayload) || errors.Is(err, nats.ErrBadSubject) {
		return true
	}
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) {
		return false
	}
	switch apiErr.ErrorCode {
	case codeMessageTooLarge, codeStreamNotMatch, codeWrongLastSequence, codeWrongLastSequenceConst:
		return true
	}
	return false
}
