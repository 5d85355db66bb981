package agentbus

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/a2abus/a2abus/batcher"
	"github.com/a2abus/a2abus/codec"
	"github.com/a2abus/a2abus/internal/recent"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// Bus is a process's connection to the a2abus: it sends A2A envelopes in
// per-destination batches to the A2A stream. One Bus is meant to be shared
// by every agent in a process.
type Bus struct {
	cfg     config
	conns   []*nats.Conn
	owned   bool // the bus dialed conns and closes them
	js      []jetstream.JetStream
	codec   *codec.Codec
	batch   *batcher.Batcher[sendItem]
	stats   sendStats
	recv    receiver
	replies replies
	// replyInterest are the reply prefixes known to have a subscriber
	// (Reply).
	replyInterest *recent.Map[string, struct{}]
	routes        routes
	scaleMu       sync.Mutex
	scaleKV       jetstream.KeyValue // the scale bucket, once opened
	// replicas is the A2A stream's replica count, read by Connect; Serve's
	// KV buckets follow it.
	replicas int

	writers sync.Pool // *codec.BatchWriter, one per flush in progress

	registerer prometheus.Registerer
	registered []prometheus.Collector

	closeOnce sync.Once
	closed    chan struct{} // closed when the close has finished
	closeErr  error         // set before closed is closed
}

// Connect dials NATS (or uses WithConn's connection), provisions the
// streams if WithEnsureStreams asks, and returns a Bus ready to send.
func Connect(ctx context.Context, opts ...Option) (*Bus, error) {
	cfg := defaultConfig()
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if cfg.batchItems > codec.MaxBatchLen {
		return nil, fmt.Errorf("agentbus: batch of %d messages over the codec's %d", cfg.batchItems, codec.MaxBatchLen)
	}
	b := &Bus{cfg: cfg, replyInterest: recent.New[string, struct{}](replyPrefixesKept)}
	var err error
	if err := b.dial(ctx); err != nil {
		return nil, err
	}
	b.fitToServer()
	// A batch body holds up to batchBytes of messages, or one message of up
	// to maxMsgSize, plus its array header.
	bodyMax := max(b.cfg.maxMsgSize, b.cfg.batchBytes) + batchHeaderRoom
	if b.codec, err = codec.New(codec.WithCompression(cfg.compression), codec.WithMaxSize(bodyMax)); err != nil {
		b.closeConns()
		return nil, err
	}
	for _, nc := range b.conns {
		js, err := jetstream.New(nc)
		if err != nil {
			b.closeConns()
			return nil, fmt.Errorf("agentbus: %w", err)
		}
		b.js = append(b.js, js)
	}
	if cfg.ensure {
		if err := EnsureStreams(ctx, b.js[0], cfg.stream); err != nil {
			b.closeConns()
			return nil, err
		}
	}
	if err := b.checkStream(ctx); err != nil {
		b.closeConns()
		return nil, err
	}
	bopts := []batcher.Option{
		batcher.WithMaxBatchItems(cfg.batchItems),
		batcher.WithMaxBatchBytes(cfg.batchBytes),
		batcher.WithFlushTimeout(cfg.sendTimeout),
	}
	if cfg.linger > 0 {
		bopts = append(bopts, batcher.WithLinger(cfg.linger))
	}
	if cfg.maxInFlight > 0 {
		bopts = append(bopts, batcher.WithMaxInFlight(cfg.maxInFlight))
	}
	bopts = append(bopts,
		batcher.WithMaxBufferedItems(cfg.bufferItems),
		batcher.WithMaxBufferedBytes(cfg.bufferBytes))
	if b.batch, err = batcher.New(b.flush, bopts...); err != nil {
		b.closeConns()
		return nil, fmt.Errorf("agentbus: %w", err)
	}
	if cfg.registerer != nil {
		if err := b.register(cfg.registerer); err != nil {
			_ = b.Close(context.Background())
			return nil, err
		}
	}
	return b, nil
}

// batchHeaderRoom is the most a msgpack array header adds to a batch body;
// frameRoom is what a frame adds to its body at most (tag and compression
// overhead of an incompressible body, which is then sent raw).
const (
	batchHeaderRoom = 5
	frameRoom       = 1 << 10
)

// fitToServer lowers the max message and batch sizes to what the server's
// max_payload takes, with a warning, so that a server left at NATS's 1 MB
// default refuses big messages with ErrTooLarge before they are sent rather
// than failing whole batches.
func (b *Bus) fitToServer() {
	limit := int(b.conns[0].MaxPayload()) - batchHeaderRoom - frameRoom
	if limit <= 0 || (b.cfg.maxMsgSize <= limit && b.cfg.batchBytes <= limit) {
		return
	}
	b.cfg.log.Warn("the server's max_payload is below the bus's max message size; lowering it (set max_payload in nats.conf)",
		"max_payload", b.conns[0].MaxPayload(), "max_message_size", b.cfg.maxMsgSize, "now", limit)
	b.cfg.maxMsgSize = min(b.cfg.maxMsgSize, limit)
	b.cfg.batchBytes = min(b.cfg.batchBytes, limit)
}

func (b *Bus) dial(ctx context.Context) error {
	cc := &b.cfg.conn
	if cc.conn != nil {
		b.conns = []*nats.Conn{cc.conn}
		return nil
	}
	log := b.cfg.log
	hooks := nats.Options{
		DisconnectedErrCB: func(nc *nats.Conn, err error) {
			if err != nil {
				log.Warn("NATS disconnected", "conn", nc.Opts.Name, "err", err)
			}
		},
		ReconnectedCB: func(nc *nats.Conn) {
			log.Info("NATS reconnected", "conn", nc.Opts.Name, "url", nc.ConnectedUrlRedacted())
		},
		AsyncErrorCB: func(nc *nats.Conn, sub *nats.Subscription, err error) {
			subj := ""
			if sub != nil {
				subj = sub.Subject
			}
			log.Error("NATS async error", "conn", nc.Opts.Name, "subject", subj, "err", err)
		},
	}
	nopts, err := cc.natsOptions(hooks)
	if err != nil {
		return err
	}
	b.owned = true
	for i := range cc.poolSize {
		name := cc.name
		if cc.poolSize > 1 {
			name = fmt.Sprintf("%s-%d", cc.name, i)
		}
		nc, err := nats.Connect(cc.urls, append(nopts, nats.Name(name))...)
		if err != nil {
			b.closeConns()
			return fmt.Errorf("agentbus: connect to %s: %w", cc.urls, err)
		}
		b.conns = append(b.conns, nc)
	}
	return nil
}

// checkStream makes sure the A2A stream exists, so that a missing stream is
// an error now rather than sends that time out, and that a retried batch
// stays inside the stream's duplicate window.
func (b *Bus) checkStream(ctx context.Context) error {
	s, err := b.lookupStream(ctx)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("agentbus: stream %s not found: start agentd, or connect with WithEnsureStreams", StreamName)
	}
	if err != nil {
		return fmt.Errorf("agentbus: look up stream %s: %w", StreamName, err)
	}
	b.replicas = s.CachedInfo().Config.Replicas // the KV buckets of Serve follow the stream
	if dup := s.CachedInfo().Config.Duplicates; dup > 0 && b.cfg.sendTimeout >= dup {
		return fmt.Errorf("agentbus: send timeout %v is not under stream %s's duplicate window %v: a batch retried after the window could be stored twice",
			b.cfg.sendTimeout, StreamName, dup)
	}
	return nil
}

// lookupStream reads the A2A stream's info, each try bounded by
// lookupAttempt and tried again while the answer is one a cluster gives
// while it elects a leader (none at all, no responders), until ctx ends:
// a connect made as the stream leader dies follows the cluster to the
// new leader instead of waiting for ctx.
func (b *Bus) lookupStream(ctx context.Context) (jetstream.Stream, error) {
	ctx, cancel := withLookupWait(ctx)
	defer cancel()
	for {
		actx, cancel := context.WithTimeout(ctx, lookupAttempt)
		s, err := b.js[0].Stream(actx, StreamName)
		cancel()
		if err == nil || ctx.Err() != nil || !unanswered(err) {
			return s, err
		}
		b.cfg.log.Debug("stream lookup unanswered; trying again", "stream", StreamName, "err", err)
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// lookupAttempt bounds one try of a stream lookup: the server answers in
// milliseconds, or not at all while its cluster elects a leader.
// lookupWait bounds all the tries when the caller's context has no
// deadline.
const (
	lookupAttempt = 2 * time.Second
	lookupWait    = time.Minute
)

// withLookupWait bounds ctx by lookupWait when it has no deadline, so that
// a lookup asked again while nobody answers ends.
func withLookupWait(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, lookupWait)
}

// unanswered reports whether err says a JetStream API request got no
// answer in time, or an answer that a cluster electing its leaders gives
// (10008): worth asking again. A server without JetStream (no responders)
// is not.
func unanswered(err error) bool {
	var apiErr *jetstream.APIError
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout):
		return true
	case errors.As(err, &apiErr):
		return apiErr.ErrorCode == 10008
	}
	return false
}

// Conn returns the bus's first NATS connection, for what the bus does not
// wrap. Do not close it; Close the bus.
func (b *Bus) Conn() *nats.Conn { return b.conns[0] }

// KeyValue opens the KV bucket cfg describes, creating it as cfg says when
// it does not exist, for state kept beside the A2A stream (agent cards,
// tasks): with cfg.Replicas 0 the bucket has as many replicas as the
// stream. An existing bucket is used as it is, so that a connection that
// may read and write a bucket but not create one (an agent's role) can
// open it. While the cluster elects the bucket's leader (its requests get
// no answer), it asks again, each try bounded, until ctx ends (a minute
// when ctx has no deadline).
func (b *Bus) KeyValue(ctx context.Context, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	ctx, cancel := withLookupWait(ctx)
	defer cancel()
	for {
		actx, cancel := context.WithTimeout(ctx, lookupAttempt)
		kv, err := b.keyValue(actx, cfg)
		cancel()
		if err == nil || ctx.Err() != nil || !transient(err) {
			return kv, err
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (b *Bus) keyValue(ctx context.Context, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	js := b.js[0]
	kv, err := js.KeyValue(ctx, cfg.Bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		if cfg.Replicas == 0 {
			cfg.Replicas = b.replicas
		}
		kv, err = js.CreateKeyValue(ctx, cfg)
		if errors.Is(err, jetstream.ErrBucketExists) {
			kv, err = js.KeyValue(ctx, cfg.Bucket) // another process made it first
		}
	}
	if err != nil {
		return nil, fmt.Errorf("agentbus: bucket %s: %w", cfg.Bucket, err)
	}
	return kv, nil
}

// Codec returns the codec the bus frames batches with.
func (b *Bus) Codec() *codec.Codec { return b.codec }

// Flush sends everything buffered now and waits until it is stored or has
// failed; the error summarizes the failures (each Send also gets its own).
func (b *Bus) Flush(ctx context.Context) error { return b.batch.Flush(ctx) }

// Close stops accepting sends, delivers everything buffered (or fails each
// message's send with the reason when ctx ends first), and drains and
// closes the connections the bus opened. It is idempotent: the first call's
// context bounds the close, and every call waits for it or for its own
// context, whichever ends first.
func (b *Bus) Close(ctx context.Context) error {
	b.closeOnce.Do(func() {
		b.closed = make(chan struct{})
		go func() {
			defer close(b.closed)
			b.closeErr = b.close(ctx)
		}()
	})
	select {
	case <-b.closed:
		return b.closeErr
	case <-ctx.Done():
		return fmt.Errorf("agentbus: close: %w", ctx.Err())
	}
}

func (b *Bus) close(ctx context.Context) error {
	var errs []error
	if b.batch != nil {
		if err := b.batch.Close(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	b.routes.close()
	if err := b.drainConns(ctx); err != nil {
		errs = append(errs, err)
	}
	if b.registerer != nil {
		b.unregister()
	}
	return errors.Join(errs...)
}

func (b *Bus) drainConns(ctx context.Context) error {
	if !b.owned {
		return nil
	}
	var errs []error
	for _, nc := range b.conns {
		if err := Drain(ctx, nc); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (b *Bus) closeConns() {
	if !b.owned {
		return
	}
	for _, nc := range b.conns {
		nc.Close()
	}
}
