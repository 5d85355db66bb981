package agentd

import (
	"context"
	"time"

	"github.com/a2abus/a2abus/agentbus"
	"github.com/a2abus/a2abus/codec"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// startDemo hosts the demo agents on nc: echo replies with the text it got,
// worker replies after the configured delay. It returns a function that
// stops serving and waits, until its ctx ends, for the consumers to hand
// their groups over.
func (d *Daemon) startDemo(ctx context.Context, nc *nats.Conn) (stop func(context.Context), err error) {
	bus, err := agentbus.Connect(ctx, agentbus.WithConn(nc), agentbus.WithLogger(d.log), agentbus.WithRegisterer(d.reg))
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			_ = bus.Close(context.Background())
		}
	}()
	reply := func(ctx context.Context, req *codec.Envelope, text string) error {
		return bus.Reply(ctx, req, &codec.Envelope{Kind: "message", Message: &codec.Message{
			MessageID: "reply-" + req.ID, Role: codec.RoleAgent, Parts: []codec.Part{codec.TextPart(text)},
		}})
	}
	if err := bus.Handle("echo", func(ctx context.Context, env *codec.Envelope) error {
		return reply(ctx, env, textOf(env))
	}); err != nil {
		return nil, err
	}
	delay := d.cfg.DemoDelay
	if err := bus.Handle("worker", func(ctx context.Context, env *codec.Envelope) error {
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return ctx.Err()
		}
		return reply(ctx, env, "done: "+textOf(env))
	}); err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	pool, err := newConsumerPool(bus, js, d.log, d.reg, d.cfg.Consumers, agentbus.ServeMemberTTL(d.cfg.MemberTTL))
	if err != nil {
		return nil, err
	}
	sctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		pool.run(sctx)
	}()
	d.log.Info("hosting demo agents", "agents", "echo, worker", "worker_delay", delay, "host", pool.id)
	return func(ctx context.Context) {
		cancel()
		<-done
		if err := pool.wait(ctx); err != nil {
			d.log.Warn("stopping consumers", "err", err)
		}
		cctx, ccancel := context.WithTimeout(ctx, drainTimeout)
		defer ccancel()
		_ = bus.Close(cctx)
	}, nil
}

// textOf returns the text of env's A2A message, or "" when it has none.
func textOf(env *codec.Envelope) string {
	if env.Message == nil {
		return ""
	}
	return env.Message.Text()
}
