package bench

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/a2abus/a2abus/agentbus"
	"github.com/a2abus/a2abus/codec"
	"github.com/a2abus/a2abus/placement"
	"github.com/nats-io/nats.go/jetstream"
)

// E2EResult is the end-to-end scenario's report: messages per second from
// the first send until every message was handled and acknowledged.
type E2EResult struct {
	MsgSize       int     `json:"msg_size"`
	Msgs          int     `json:"msgs"`
	Destinations  int     `json:"destinations"`
	BusMsgsPerS   float64 `json:"bus_e2e_msgs_per_s"`
	RawJSMsgsPerS float64 `json:"raw_js_e2e_msgs_per_s"`
	RatioVsRawJS  float64 `json:"ratio_vs_raw_js"`
}

// E2E measures send → handler → ack: the bus (one sender, SendAsync, and a
// Serve-ing bus whose handlers count) against raw JetStream (PublishAsync of
// one message per agent message, and a pull consumer acking each), on
// env's server, with c's message size, count and destinations.
func E2E(ctx context.Context, env Env, c ThroughputConfig) (E2EResult, error) {
	if err := c.Validate(); err != nil {
		return E2EResult{}, err
	}
	c = c.withDefaults()
	res := E2EResult{MsgSize: c.MsgSize, Msgs: c.Msgs, Destinations: c.Destinations}
	dests, bodies := payloads(c)

	env.progress("e2e: raw JetStream, %d messages...", c.Msgs)
	raw, err := rawE2E(ctx, env, c, bodies)
	if err != nil {
		return res, fmt.Errorf("raw_js: %w", err)
	}
	res.RawJSMsgsPerS = raw
	env.progress("e2e: bus, %d messages...", c.Msgs)
	bus, err := busE2E(ctx, env, c, dests, bodies)
	if err != nil {
		return res, fmt.Errorf("bus: %w", err)
	}
	res.BusMsgsPerS = bus
	res.RatioVsRawJS = ratio(bus, raw)
	return res, nil
}

func rawE2E(ctx context.Context, env Env, c ThroughputConfig, bodies [][]byte) (float64, error) {
	nc, err := env.connect("bench-e2e-raw")
	if err != nil {
		return 0, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		return 0, err
	}
	const stream = "BENCH_E2E"
	_ = js.DeleteStream(ctx, stream)
	s, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: stream, Subjects: []string{"bench.e2e.>"},
		Retention: jetstream.WorkQueuePolicy, Storage: jetstream.FileStorage})
	if err != nil {
		return 0, err
	}
	defer func() { _ = js.DeleteStream(context.Background(), stream) }()
	cons, err := s.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{Durable: "bench", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		return 0, err
	}
	cnc, err := env.connect("bench-e2e-raw-consumer")
	if err != nil {
		return 0, err
	}
	defer cnc.Close()
	cjs, _ := jetstream.New(cnc)
	ccons, err := cjs.Consumer(ctx, stream, "bench")
	if err != nil {
		return 0, err
	}
	_ = cons
	var acked atomic.Int64
	done := make(chan struct{})
	cc, err := ccons.Consume(func(m jetstream.Msg) {
		if m.Ack() == nil && acked.Add(1) == int64(c.Msgs) {
			close(done)
		}
	}, jetstream.PullMaxMessages(1024))
	if err != nil {
		return 0, err
	}
	defer cc.Stop()
	start := time.Now()
	for i := range c.Msgs {
		if _, err := js.PublishAsync(fmt.Sprintf("bench.e2e.agent-%d", i%c.Destinations), bodies[i%bodyCount], jetstream.WithStallWait(time.Minute)); err != nil {
			return 0, err
		}
	}
	select {
	case <-done:
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-time.After(5 * time.Minute):
		return 0, fmt.Errorf("only %d of %d messages consumed", acked.Load(), c.Msgs)
	}
	return rate(c.Msgs, time.Since(start)), nil
}

func busE2E(ctx context.Context, env Env, c ThroughputConfig, dests []string, bodies [][]byte) (float64, error) {
	snc, err := env.connect("bench-e2e-server")
	if err != nil {
		return 0, err
	}
	defer snc.Close()
	server, err := agentbus.Connect(ctx, env.logger(), agentbus.WithConn(snc), agentbus.WithEnsureStreams(agentbus.StreamConfig{}))
	if err != nil {
		return 0, err
	}
	defer func() { _ = server.Close(context.Background()) }()
	js, _ := jetstream.New(snc)
	stream, err := js.Stream(ctx, agentbus.StreamName)
	if err != nil {
		return 0, err
	}
	if err := checkIdle(stream); err != nil {
		return 0, err
	}
	var handled atomic.Int64
	done := make(chan struct{})
	for _, d := range dests {
		if err := server.Handle(d, func(context.Context, *codec.Envelope) error {
			if handled.Add(1) == int64(c.Msgs) {
				close(done)
			}
			return nil
		}); err != nil {
			return 0, err
		}
	}
	pool := benchPool("bench-e2e", min(len(dests), agentbus.DefaultPartitions))
	if _, err := server.Declare(ctx, poolConfig(pool), dests...); err != nil {
		return 0, err
	}
	sctx, stop := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- server.Serve(sctx, serveIn(pool)...) }()
	defer func() { stop(); <-served; deletePool(js, pool, dests) }()
	defer func() { _ = stream.Purge(context.Background()) }()

	cnc, err := env.connect("bench-e2e-client")
	if err != nil {
		return 0, err
	}
	defer cnc.Close()
	client, err := agentbus.Connect(ctx, env.logger(), agentbus.WithConn(cnc))
	if err != nil {
		return 0, err
	}
	defer func() { _ = client.Close(context.Background()) }()
	anyBodies := make([]any, len(bodies))
	for i, b := range bodies {
		anyBodies[i] = b
	}
	// Start the clock once every partition's consumer exists and pulls.
	for deadline := time.Now().Add(time.Minute); ; {
		info, err := stream.Info(ctx)
		if err != nil {
			return 0, err
		}
		if info.State.Consumers >= pool.Partitions() {
			break
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("only %d of %d partition consumers started", info.State.Consumers, pool.Partitions())
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // their first pull requests
	start := time.Now()
	envl := codec.Envelope{From: "bench", Kind: "bench"}
	for i := range c.Msgs {
		envl.To, envl.Payload, envl.ID = dests[i%len(dests)], anyBodies[i%bodyCount], ""
		if _, err := client.SendAsync(ctx, &envl); err != nil {
			return 0, err
		}
	}
	select {
	case <-done:
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-time.After(5 * time.Minute):
		return 0, fmt.Errorf("only %d of %d messages handled", handled.Load(), c.Msgs)
	}
	handledAt := time.Since(start)
	// Handled is not yet acknowledged: wait for the stream to empty.
	defer func() {
		env.progress("e2e: bus: all handled after %v, acknowledged after %v", handledAt, time.Since(start))
	}()
	for {
		info, err := stream.Info(ctx)
		if err != nil {
			return 0, err
		}
		if info.State.Msgs == 0 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	return rate(c.Msgs, time.Since(start)), nil
}

// benchPool is the pool a scenario serves its agents in.
func benchPool(name string, partitions int) *placement.Pool {
	p, err := placement.NewPool(name, partitions, placement.OrderConversation)
	if err != nil {
		panic(err) // the names and counts here are valid
	}
	return p
}

func poolConfig(p *placement.Pool) agentbus.PoolConfig {
	return agentbus.PoolConfig{Name: p.Name(), Partitions: p.Partitions(), Order: p.Order().String()}
}

// serveIn returns the Serve options of a member of p.
func serveIn(p *placement.Pool, opts ...agentbus.ServeOption) []agentbus.ServeOption {
	return append([]agentbus.ServeOption{agentbus.ServePool(p.Name()), agentbus.ServePartitions(p.Partitions())}, opts...)
}

// deletePool removes the consumers and the registry entries of a
// scenario's pool, leaving the stream and the registry as they were.
func deletePool(js jetstream.JetStream, p *placement.Pool, agents []string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for n := range p.Partitions() {
		if name, err := p.ConsumerName(n); err == nil {
			_ = js.DeleteConsumer(ctx, agentbus.StreamName, name)
		}
	}
	kv, err := js.KeyValue(ctx, agentbus.PoolsBucket)
	if err != nil {
		return
	}
	_ = kv.Purge(ctx, "pools."+p.Name())
	for _, a := range agents {
		_ = kv.Purge(ctx, "agents."+a)
	}
}
