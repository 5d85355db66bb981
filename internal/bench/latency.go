package bench

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/a2abus/a2abus/agentbus"
	"github.com/a2abus/a2abus/codec"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// LatencyConfig sizes the latency scenario.
type LatencyConfig struct {
	Requests int // sequential round trips per party (default 2000)
	MsgSize  int // bytes of text per request (default 256)
}

// LatencyResult holds the round-trip percentiles of core NATS
// request/reply, of the same round trip through a JetStream stream with
// plain nats.go, and of the bus's Request in its two modes, in µs.
type LatencyResult struct {
	Requests       int     `json:"requests"`
	MsgSize        int     `json:"msg_size"`
	CoreP50us      float64 `json:"core_p50_us"`
	CoreP99us      float64 `json:"core_p99_us"`
	RawJSP50us     float64 `json:"raw_js_p50_us"`
	RawJSP99us     float64 `json:"raw_js_p99_us"`
	DirectP50us    float64 `json:"direct_p50_us"`
	DirectP99us    float64 `json:"direct_p99_us"`
	DurableP50us   float64 `json:"durable_p50_us"`
	DurableP99us   float64 `json:"durable_p99_us"`
	DirectVsCore   float64 `json:"direct_p50_vs_core"`
	DurableVsCore  float64 `json:"durable_p50_vs_core"`
	DurableVsRawJS float64 `json:"durable_p50_vs_raw_js"`
}

// Latency measures one requester's round trips to an echo responder:
// nats.go request/reply to a plain subscriber; nats.go JetStream, a request
// stored in a work-queue stream and answered over core NATS by a pull
// consumer that acks it (the floor of a durable request); then bus Request
// to an echo agent, direct and durable; all on env's server.
func Latency(ctx context.Context, env Env, c LatencyConfig) (LatencyResult, error) {
	if c.Requests == 0 {
		c.Requests = 2000
	}
	if c.MsgSize == 0 {
		c.MsgSize = 256
	}
	if c.Requests < 10 || c.MsgSize < 1 || c.MsgSize > 1<<20 {
		return LatencyResult{}, fmt.Errorf("bench: %d requests of %d bytes: want at least 10 requests of 1 B..1 MiB", c.Requests, c.MsgSize)
	}
	res := LatencyResult{Requests: c.Requests, MsgSize: c.MsgSize}
	_, bodies := payloads(ThroughputConfig{MsgSize: c.MsgSize, Destinations: 1})

	// Core NATS: a plain subscriber that echoes.
	rnc, err := env.connect("bench-core-responder")
	if err != nil {
		return res, err
	}
	defer rnc.Close()
	sub, err := rnc.Subscribe("bench.echo", func(m *nats.Msg) { _ = m.Respond(m.Data) })
	if err != nil {
		return res, err
	}
	defer sub.Unsubscribe()
	if err := rnc.Flush(); err != nil {
		return res, err
	}
	qnc, err := env.connect("bench-core-requester")
	if err != nil {
		return res, err
	}
	defer qnc.Close()
	env.progress("latency: core request/reply, %d requests...", c.Requests)
	core, err := timeEach(c.Requests, func(i int) error {
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		_, err := qnc.RequestWithContext(rctx, "bench.echo", bodies[i%bodyCount])
		return err
	})
	if err != nil {
		return res, fmt.Errorf("bench: core request: %w", err)
	}

	env.progress("latency: raw JetStream request, %d requests...", c.Requests)
	rawJS, err := rawJSRoundTrips(ctx, env, c.Requests, bodies)
	if err != nil {
		return res, fmt.Errorf("bench: raw JetStream request: %w", err)
	}

	// The bus: an echo agent served by one bus, requests from another.
	snc, err := env.connect("bench-bus-server")
	if err != nil {
		return res, err
	}
	defer snc.Close()
	server, err := agentbus.Connect(ctx, agentbus.WithConn(snc), agentbus.WithEnsureStreams(agentbus.StreamConfig{}))
	if err != nil {
		return res, err
	}
	js, err := jetstream.New(snc)
	if err != nil {
		return res, err
	}
	stream, err := js.Stream(ctx, agentbus.StreamName)
	if err != nil {
		return res, err
	}
	if err := checkIdle(stream); err != nil {
		_ = server.Close(context.Background())
		return res, err
	}
	defer func() { _ = server.Close(context.Background()) }()
	err = server.Handle("bench-echo", func(ctx context.Context, e *codec.Envelope) error {
		return server.Reply(ctx, e, &codec.Envelope{Kind: "message", Payload: e.Payload})
	})
	if err != nil {
		return res, err
	}
	group := server.Groups().Group("bench-echo")
	sctx, stop := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- server.Serve(sctx, agentbus.ServeGroups(group)) }()
	defer func() { stop(); <-served; deleteConsumers(js, server, []int{group}) }()

	cnc, err := env.connect("bench-bus-client")
	if err != nil {
		return res, err
	}
	defer cnc.Close()
	client, err := agentbus.Connect(ctx, agentbus.WithConn(cnc))
	if err != nil {
		return res, err
	}
	defer func() { _ = client.Close(context.Background()) }()
	request := func(mode agentbus.RequestMode) func(int) error {
		return func(i int) error {
			rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			_, err := client.Request(rctx, &codec.Envelope{From: "bench", To: "bench-echo", Payload: bodies[i%bodyCount]}, mode)
			return err
		}
	}
	// Wait until the server's consumer answers.
	deadline := time.Now().Add(30 * time.Second)
	for request(agentbus.Direct)(0) != nil {
		if time.Now().After(deadline) {
			return res, fmt.Errorf("bench: the echo agent did not start answering")
		}
		time.Sleep(20 * time.Millisecond)
	}
	env.progress("latency: bus direct request, %d requests...", c.Requests)
	direct, err := timeEach(c.Requests, request(agentbus.Direct))
	if err != nil {
		return res, fmt.Errorf("bench: direct request: %w", err)
	}
	env.progress("latency: bus durable request, %d requests...", c.Requests)
	durable, err := timeEach(c.Requests, request(agentbus.Durable))
	if err != nil {
		return res, fmt.Errorf("bench: durable request: %w", err)
	}

	res.CoreP50us, res.CoreP99us = pct(core, 50), pct(core, 99)
	res.RawJSP50us, res.RawJSP99us = pct(rawJS, 50), pct(rawJS, 99)
	res.DirectP50us, res.DirectP99us = pct(direct, 50), pct(direct, 99)
	res.DurableP50us, res.DurableP99us = pct(durable, 50), pct(durable, 99)
	res.DirectVsCore = ratio(res.DirectP50us, res.CoreP50us)
	res.DurableVsCore = ratio(res.DurableP50us, res.CoreP50us)
	res.DurableVsRawJS = ratio(res.DurableP50us, res.RawJSP50us)
	return res, nil
}

// rawJSRoundTrips times n durable round trips made with plain nats.go: the
// requester publishes to a work-queue stream (file storage, like the bus's)
// and waits for the publish ack and the reply; a pull consumer on another
// connection answers each message over core NATS and acks it.
func rawJSRoundTrips(ctx context.Context, env Env, n int, bodies [][]byte) ([]time.Duration, error) {
	const stream, replyHeader = "BENCH_LATENCY", "Bench-Reply"
	snc, err := env.connect("bench-raw-js-responder")
	if err != nil {
		return nil, err
	}
	defer snc.Close()
	js, err := jetstream.New(snc)
	if err != nil {
		return nil, err
	}
	_ = js.DeleteStream(ctx, stream)
	s, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: stream, Subjects: []string{"bench.latency.>"},
		Retention: jetstream.WorkQueuePolicy, Storage: jetstream.FileStorage})
	if err != nil {
		return nil, err
	}
	defer func() { _ = js.DeleteStream(context.Background(), stream) }()
	cons, err := s.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{Durable: "echo", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		return nil, err
	}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		_ = snc.Publish(m.Headers().Get(replyHeader), m.Data())
		_ = m.Ack()
	}, jetstream.PullMaxMessages(32)) // as the bus pulls
	if err != nil {
		return nil, err
	}
	defer cc.Stop()

	cnc, err := env.connect("bench-raw-js-requester")
	if err != nil {
		return nil, err
	}
	defer cnc.Close()
	cjs, err := jetstream.New(cnc)
	if err != nil {
		return nil, err
	}
	inbox := cnc.NewInbox()
	replies := make(chan *nats.Msg, 1)
	sub, err := cnc.ChanSubscribe(inbox, replies)
	if err != nil {
		return nil, err
	}
	defer sub.Unsubscribe()
	return timeEach(n, func(i int) error {
		m := &nats.Msg{Subject: "bench.latency.echo", Data: bodies[i%bodyCount], Header: nats.Header{replyHeader: []string{inbox}}}
		ack, err := cjs.PublishMsgAsync(m)
		if err != nil {
			return err
		}
		timeout := time.After(5 * time.Second)
		for acked, replied := false, false; !acked || !replied; {
			select {
			case <-ack.Ok():
				acked = true
			case err := <-ack.Err():
				return err
			case <-replies:
				replied = true
			case <-timeout:
				return fmt.Errorf("no reply within 5 s (acked %v, replied %v)", acked, replied)
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	})
}

// timeEach runs f n times after a tenth as many warm-up runs and returns
// each run's duration, sorted.
func timeEach(n int, f func(int) error) ([]time.Duration, error) {
	for i := range n / 10 {
		if err := f(i); err != nil {
			return nil, err
		}
	}
	out := make([]time.Duration, n)
	for i := range n {
		start := time.Now()
		if err := f(i); err != nil {
			return nil, err
		}
		out[i] = time.Since(start)
	}
	slices.Sort(out)
	return out, nil
}

// pct returns the p-th percentile of sorted durations in µs.
func pct(sorted []time.Duration, p int) float64 {
	i := (len(sorted)*p + 99) / 100
	i = min(max(i-1, 0), len(sorted)-1)
	return float64(sorted[i].Nanoseconds()) / 1e3
}
