package faults

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
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
		// The URLs given are the only way in: a server's gossiped client
		// URLs would let a client cut off at its proxies reconnect behind
		// their back.
		agentbus.WithNATSOptions(nats.DontRandomize(), nats.IgnoreDiscoveredServers(),
			nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond)),
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
	// Serve options beyond the member ID, pool and partitions (which they
	// may override).
	Serve []agentbus.ServeOption
	// Bus options beyond Connect's (which they may override).
	Bus []agentbus.Option
	// Link, when set, is the consumer's own way to the cluster (URLs are
	// its URLs): Kill cuts it before it closes the connection, so that
	// nothing written after the kill reaches a server.
	Link *Link
	// Work, when set, is how long a handler call works on env (beyond
	// SetDelay), say HandlerTime.
	Work func(env *codec.Envelope) time.Duration
}

// Consumer is a bus serving every agent of a run as one member, booking
// each handler call it makes in the ledger (Ledger.Begin). It can stop
// gracefully, or be killed: its connection closed at once, no ack or
// release sent for what it holds, its handlers doing nothing more, as a
// crashed process would.
type Consumer struct {
	name   string
	bus    *agentbus.Bus
	ledger *Ledger
	link   *Link
	work   func(*codec.Envelope) time.Duration
	cancel context.CancelFunc
	done   chan error // Serve's result, size one

	killed   atomic.Bool
	killedAt time.Time     // written before killed is set and dead closed
	dead     chan struct{} // closed by Kill
	delay    atomic.Int64  // per envelope, nanoseconds
	handled  atomic.Int64
	running  atomic.Int64

	pauseMu sync.Mutex
	pauseAt int64         // the handled count after which handlers block; 0 for never
	paused  chan struct{} // closed when a handler blocks
	hold    *Held         // taken by the next handler call
	stopped sync.Once
	stopErr error
}

// StartConsumer connects a consumer and starts serving.
func StartConsumer(ctx context.Context, cfg ConsumerConfig) (*Consumer, error) {
	bus, err := Connect(ctx, cfg.URLs, cfg.Name, cfg.Log, cfg.Bus...)
	if err != nil {
		return nil, err
	}
	c := &Consumer{name: cfg.Name, bus: bus, ledger: cfg.Ledger, link: cfg.Link, work: cfg.Work,
		done: make(chan error, 1), dead: make(chan struct{})}
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

// Link returns the consumer's link, nil if it has none.
func (c *Consumer) Link() *Link { return c.link }

// Handled returns how many envelopes the consumer handled.
func (c *Consumer) Handled() int64 { return c.handled.Load() }

// Running returns how many handler calls are running.
func (c *Consumer) Running() int64 { return c.running.Load() }

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

// Held is a handler call made to work for a given time (see HoldNext).
type Held struct {
	d       time.Duration
	started chan struct{}
	call    *Call
}

// Started is closed once a handler call has taken the hold.
func (h *Held) Started() <-chan struct{} { return h.started }

// Call returns the held call, once Started is closed.
func (h *Held) Call() *Call {
	<-h.started
	return h.call
}

// HoldNext makes the next handler call that starts work for d (instead of
// its usual time) unless its context ends first: a handler that runs for
// longer than the ack wait.
func (c *Consumer) HoldNext(d time.Duration) *Held {
	h := &Held{d: d, started: make(chan struct{})}
	c.pauseMu.Lock()
	c.hold = h
	c.pauseMu.Unlock()
	return h
}

func (c *Consumer) handle(ctx context.Context, env *codec.Envelope) error {
	if c.killed.Load() {
		// A dead process does nothing: wait for Serve's end.
		<-ctx.Done()
		return ctx.Err()
	}
	call := c.ledger.Begin(c.name, env)
	c.running.Add(1)
	defer c.running.Add(-1)
	d := time.Duration(c.delay.Load())
	if c.work != nil {
		d += c.work(env)
	}
	c.pauseMu.Lock()
	if h := c.hold; h != nil {
		c.hold = nil
		h.call, d = call, h.d
		close(h.started)
	}
	c.pauseMu.Unlock()
	if d > 0 {
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			call.Done(ctx, ctx.Err())
			return ctx.Err()
		case <-c.dead:
			t.Stop()
			return c.die(ctx, call)
		case <-t.C:
		}
	}
	if c.killed.Load() {
		return c.die(ctx, call)
	}
	n := c.handled.Add(1)
	call.Done(ctx, nil)
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

// die ends a call the kill interrupted, at the kill, and waits for Serve's
// end as a dead process would.
func (c *Consumer) die(ctx context.Context, call *Call) error {
	call.Killed(c.killedAt)
	<-ctx.Done()
	return ctx.Err()
}

// Stop leaves gracefully: Serve finishes the batches it is handling and
// releases the others, then the bus closes.
func (c *Consumer) Stop(ctx context.Context) error {
	c.stopped.Do(func() { c.stopErr = c.stop(ctx) })
	return c.stopErr
}

// Kill crashes the consumer: its link (if it has one) is cut and its
// connection closed at once, with whatever batches it holds (some half
// handled) neither acknowledged nor released, and its handlers book
// nothing more (a call running ends at the kill). JetStream redelivers
// those batches after their ack wait, to the member that takes the
// partitions over once the dead one's membership expires.
func (c *Consumer) Kill(ctx context.Context) error {
	c.stopped.Do(func() {
		c.killedAt = time.Now()
		c.killed.Store(true)
		close(c.dead)
		// Deliberately behind the bus's back: a crash does not drain.
		if c.link != nil {
			c.link.Cut()
		}
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
			envs[i] = &codec.Envelope{From: cfg.From, To: to, Kind: "message", Message: &codec.Message{Role: codec.RoleUser}}
			keys[i] = cfg.Ledger.Book(envs[i])
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

// ConversationsConfig describes a publisher of conversations: rounds of
// one message to each conversation of each agent.
type ConversationsConfig struct {
	Bus           *agentbus.Bus
	From          string
	Agents        []string
	Conversations int // per agent, each its own ordering key
	Ledger        *Ledger
	Rounds        int
	// Pause between rounds.
	Pause time.Duration
	// Timeout bounds each round's sends.
	Timeout time.Duration
}

// Converse sends cfg.Rounds rounds (or until ctx ends), each one message
// to every conversation of every agent (a context ID conv-<n> for each),
// waits for every ticket of a round before the next, and books every
// outcome. A failed Send is not sent again: it is booked as failed.
func Converse(ctx context.Context, cfg ConversationsConfig) {
	n := len(cfg.Agents) * cfg.Conversations
	envs := make([]*codec.Envelope, n)
	keys := make([]uint64, n)
	tickets := make([]*agentbus.Ticket, n)
	errs := make([]error, n)
	for round := 0; round < cfg.Rounds && ctx.Err() == nil; round++ {
		sctx, cancel := context.WithTimeout(context.Background(), cfg.Timeout)
		for i := range envs {
			a, conv := cfg.Agents[i/cfg.Conversations], i%cfg.Conversations
			envs[i] = &codec.Envelope{From: cfg.From, To: a, Kind: "message",
				Message: &codec.Message{Role: codec.RoleUser, ContextID: fmt.Sprintf("conv-%d", conv)}}
			keys[i] = cfg.Ledger.Book(envs[i])
			tickets[i], errs[i] = cfg.Bus.SendAsync(sctx, envs[i])
		}
		for i, t := range tickets {
			if errs[i] == nil {
				errs[i] = t.Wait(sctx)
			}
			cfg.Ledger.Sent(keys[i], envs[i].ID, errs[i])
		}
		cancel()
		if cfg.Pause > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(cfg.Pause):
			}
		}
	}
}

// HandlerTime is how long an LLM-like agent works on env: 50-300 ms for 70%
// of the messages, 1-4 s for 25%, 8-15 s for 5%, uniform within each band.
// It is drawn from env's ledger key (its message number), so a redelivery
// works as long as the first delivery did.
func HandlerTime(env *codec.Envelope) time.Duration {
	k, _ := parseKey(env)
	r := rand.New(rand.NewPCG(0xa2ab05, k))
	between := func(lo, hi time.Duration) time.Duration { return lo + time.Duration(r.Int64N(int64(hi-lo))) }
	switch p := r.Float64(); {
	case p < 0.70:
		return between(50*time.Millisecond, 300*time.Millisecond)
	case p < 0.95:
		return between(time.Second, 4*time.Second)
	default:
		return between(8*time.Second, 15*time.Second)
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
