package agentbus

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/a2abus/a2abus/batcher"
	"github.com/a2abus/a2abus/codec"
	"github.com/a2abus/a2abus/placement"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Bus is a process's connection to the a2abus: it sends A2A envelopes in
// per-destination batches to the A2A stream. One Bus is meant to be shared
// by every agent in a process.
type Bus struct {
	cfg    config
	conns  []*nats.Conn
	owned  bool // the bus dialed conns and closes them
	js     []jetstream.JetStream
	codec  *codec.Codec
	groups *placement.Groups
	batch  *batcher.Batcher[*codec.Buffer]
	stats  sendStats
	recv   receiver

	writers sync.Pool // *codec.BatchWriter, one per flush in progress

	closeOnce sync.Once
	closeErr  error
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
	b := &Bus{cfg: cfg}
	var err error
	if b.codec, err = codec.New(codec.WithCompression(cfg.compression), codec.WithMaxSize(cfg.maxMsgSize)); err != nil {
		return nil, err
	}
	if b.groups, err = placement.NewGroups(cfg.groups); err != nil {
		return nil, err
	}
	if err := b.dial(ctx); err != nil {
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
	nopts, err := cc.natsOptions(ctx, hooks)
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

// Conn returns the bus's first NATS connection, for what the bus does not
// wrap. Do not close it; Close the bus.
func (b *Bus) Conn() *nats.Conn { return b.conns[0] }

// Groups returns the agent → group assignment the bus sends by.
func (b *Bus) Groups() *placement.Groups { return b.groups }

// Codec returns the codec the bus frames batches with.
func (b *Bus) Codec() *codec.Codec { return b.codec }

// Flush sends everything buffered now and waits until it is stored or has
// failed; the error summarizes the failures (each Send also gets its own).
func (b *Bus) Flush(ctx context.Context) error { return b.batch.Flush(ctx) }

// Close stops accepting sends, delivers everything buffered (or fails each
// message's send with the reason when ctx ends first), and drains and
// closes the connections the bus opened. It is idempotent.
func (b *Bus) Close(ctx context.Context) error {
	b.closeOnce.Do(func() {
		var errs []error
		if b.batch != nil {
			if err := b.batch.Close(ctx); err != nil {
				errs = append(errs, err)
			}
		}
		if err := b.drainConns(ctx); err != nil {
			errs = append(errs, err)
		}
		b.closeErr = errors.Join(errs...)
	})
	return b.closeErr
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
