package faults

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/a2abus/a2abus/agentbus"
	"github.com/a2abus/a2abus/codec"
	"github.com/nats-io/nats.go"
)

// Partitions is the partition count of the pool of a run: few, since
// every partition is a replicated consumer the cluster must elect a leader
// for at set-up and after each restart.
const Partitions = 8

// Pool is the pool every consumer of a run serves in.
const Pool = "faults"

// StreamConfig is the stream the runs store in: file storage, three
// replicas.
var StreamConfig = agentbus.StreamConfig{Replicas: 3}

// Connect connects a bus to urls (see Cluster.ClientURLs), provisioning
// the streams, with the settings every bus of a run shares.
func Connect(ctx context.Context, urls, name string, log *slog.Logger, opts ...agentbus.Option) (*agentbus.Bus, error) {
	all := append([]agentbus.Option{
		agentbus.WithURL(urls),
		agentbus.WithNATSOptions(nats.DontRandomize(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond)),
		agentbus.WithEnsureStreams(StreamConfig),
		// Senders may start before the first consumer declares the
		// run's agents.
		agentbus.WithUnknownAgents(agentbus.WaitUnknown),
		agentbus.WithName(name),
		agentbus.WithLogger(log),
	}, opts...)
	bus, err := agentbus.Connect(ctx, all...)
	if err != nil {
		return nil, fmt.Errorf("faults: connect bus %s: %w", name, err)
	}
	return bus, nil
}

// ConsumerConfig describes a consumer: one bus serving as one member.
type ConsumerConfig struct {
	URLs   string
	Name   string
	Agents []string // the agents it has handlers for
	Ledger *Ledger
	Log    *slog.Logger
	// Serve options beyond the member ID.
	Serve []agentbus.ServeOption
}

// Consumer is a bus serving every agent of a run as one member, booking
// each envelope it handles in the ledger. It can stop gracefully, or be
// killed: its connection closed at once, no ack or release sent for what
// it holds, its handlers doing nothing more, as a crashed process would.
type Consumer struct {
	name   string
	bus    *agentbus.Bus
	ledger *Ledger
	cancel context.CancelFunc
	done   chan error // Serve's result, size one

	killed  atomic.Bool
	delay   atomic.Int64 // per envelope, nanoseconds
	handled atomic.Int64

	pauseMu sync.Mutex
	pauseAt int64         // the handled count after which handlers block; 0 for never
	paused  chan struct{} // closed when a handler blocks
	stopped sync.Once
	stopErr error
}

// StartConsumer connects a consumer and starts serving.
func StartConsumer(ctx context.Context, cfg ConsumerConfig) (*Consumer, error) {
	bus, err := Connect(ctx, cfg.URLs, cfg.Name, cfg.Log)
	if err != nil {
		return nil, err
	}
	c := &Consumer{name: cfg.Name, bus: bus, ledger: cfg.Ledger, done: make(chan error, 1)}
	for _, a := range cfg.Agents {
		if err := bus.Handle(a, c.handle); err != nil {
			_ = bus.Close(ctx)
			return nil, err
		}
	}
	sctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	opts := append([]agentbus.ServeOption{agentbus.ServeMemberID(cfg.Name), agentbus.ServePool(Pool), agentbus.ServePartitions(Partitions)}, cfg.Serve...)
	go func() { c.done <- bus.Serve(sctx, opts...) }()
	return c, nil
}

// Name returns the consumer's member ID.
func (c *Consumer) Name() string { return c.name }

// Bus returns the consumer's bus.
func (c *Consumer) Bus() *agentbus.Bus { return c.bus }

// Handled returns how many envelopes the consumer handled.
func (c *Consumer) Handled() int64 { return c.handled.Load() }

// SetDelay makes each handler call take d: a slow consumer.
func (c *Consumer) SetDelay(d time.Duration) { c.delay.Store(int64(d)) }

// PauseAfter makes the handler call that handles the consumer's n-th
// envelope block once it has booked it, in the middle of its batch, and
// until the consumer is killed or stopped. The channel closes when it
// blocks.
func (c *Consumer) PauseAfter(n int64) <-chan struct{} {
	c.pauseMu.Lock()
	defer c.pauseMu.Unlock()
	c.pauseAt = n
	c.paused = make(chan struct{})
	return c.paused
}

func (c *Consumer) handle(ctx context.Context, env *codec.Envelope) error {
	if d := time.Duration(c.delay.Load()); d > 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(d):
		}
	}
	if c.killed.Load() {
		// A dead process does nothing: wait for Serve's end.
		<-ctx.Done()
		return ctx.Err()
	}
	c.ledger.Handled(env)
	n := c.handled.Add(1)
	c.pauseMu.Lock()
	pause := c.pauseAt != 0 && n == c.pauseAt
	paused := c.paused
	c.pauseMu.Unlock()
	if pause {
		close(paused)
		<-ctx.Done()
		return ctx.Err()
	}
	return nil
}

// Stop leaves gracefully: Serve finishes the batches it is handling and
// releases the others, then the bus closes.
func (c *Consumer) Stop(ctx context.Context) error {
	c.stopped.Do(func() { c.stopErr = c.stop(ctx) })
	return c.stopErr
}

// Kill crashes the consumer: its connection closes at once, with whatever
// batches it holds (some half handled) neither acknowledged nor released,
// and its handlers book nothing more. JetStream redelivers those batches
// after their ack wait, to the member that takes the groups over once the
// dead one's membership expires.
func (c *Consumer) Kill(ctx context.Context) error {
	c.stopped.Do(func() {
		c.killed.Store(true)
		// Deliberately behind the bus's back: a crash does not drain.
		c.bus.Conn().Close()
		c.stopErr = c.stop(ctx)
	})
	return c.stopErr
}

func (c *Consumer) stop(ctx context.Context) error {
	c.cancel()
	var err error
	select {
	case err = <-c.done:
	case <-ctx.Done():
		err = fmt.Errorf("faults: consumer %s: Serve did not return: %w", c.name, ctx.Err())
	}
	return errors.Join(err, c.bus.Close(ctx))
}

// PublisherConfig describes a publisher: goroutines sending bursts through
// one bus.
type PublisherConfig struct {
	Bus    *agentbus.Bus
	From   string
	Agents []string
	Ledger *Ledger
	// Burst messages go to one agent at once (they batch), then the
	// publisher waits for their tickets and Pause; the next burst goes to
	// the next agent.
	Burst int
	Pause time.Duration
	// Timeout bounds each burst's sends.
	Timeout time.Duration
	// Max, when set, stops the publisher after that many messages.
	Max int
	// Retries is how often a failed Send is sent again, with the same
	// envelope (so the same ID), as an application retrying would.
	Retries int
}

// Publish sends bursts until ctx ends, books every outcome and returns
// once every Send it started has returned.
func Publish(ctx context.Context, cfg PublisherConfig) {
	envs := make([]*codec.Envelope, cfg.Burst)
	keys := make([]uint64, cfg.Burst)
	tickets := make([]*agentbus.Ticket, cfg.Burst)
	errs := make([]error, cfg.Burst)
	for round := 0; ctx.Err() == nil && (cfg.Max == 0 || round*cfg.Burst < cfg.Max); round++ {
		to := cfg.Agents[round%len(cfg.Agents)]
		sctx, cancel := context.WithTimeout(context.Background(), cfg.Timeout)
		for i := range envs {
			k, text := cfg.Ledger.Next()
			keys[i] = k
			envs[i] = &codec.Envelope{From: cfg.From, To: to, Kind: "message",
				Message: &codec.Message{Role: codec.RoleUser, Parts: []codec.Part{codec.TextPart(text)}}}
			tickets[i], errs[i] = cfg.Bus.SendAsync(sctx, envs[i])
		}
		for i, t := range tickets {
			if errs[i] == nil {
				errs[i] = t.Wait(sctx)
			}
			cfg.Ledger.Sent(keys[i], envs[i].ID, errs[i])
		}
		cancel()
		for i := range envs {
			for r := 0; errs[i] != nil && r < cfg.Retries && ctx.Err() == nil; r++ {
				rctx, rcancel := context.WithTimeout(context.Background(), cfg.Timeout)
				errs[i] = cfg.Bus.Send(rctx, envs[i])
				rcancel()
				cfg.Ledger.Sent(keys[i], envs[i].ID, errs[i])
			}
		}
		if cfg.Pause > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(cfg.Pause):
			}
		}
	}
}

// Agents returns n agent IDs.
func Agents(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("agent-%02d", i)
	}
	return out
}
