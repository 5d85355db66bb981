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
// consumer that acks it (the floor of a durable request); bus Request to an
// echo agent, direct and durable; all on env's server. The four take turns,
// one round trip each, so that they share whatever else the machine does.
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

	core, closeCore, err := coreRequester(ctx, env, bodies)
	if err != nil {
		return res, fmt.Errorf("bench: core request: %w", err)
	}
	defer closeCore()
	rawJS, closeRaw, err := rawJSRequester(ctx, env, bodies)
	if err != nil {
		return res, fmt.Errorf("bench: raw JetStream request: %w", err)
	}
	defer closeRaw()
	direct, durable, closeBus, err := busRequesters(ctx, env, bodies)
	if err != nil {
		return res, err
	}
	defer closeBus()

	env.progress("latency: core, raw JetStream, bus direct and bus durable round trips in turn, %d each...", c.Requests)
	times, err := timeEach(c.Requests, core, rawJS, direct, durable)
	if err != nil {
		return res, err
	}
	res.CoreP50us, res.CoreP99us = pct(times[0], 50), pct(times[0], 99)
	res.RawJSP50us, res.RawJSP99us = pct(times[1], 50), pct(times[1], 99)
	res.DirectP50us, res.DirectP99us = pct(times[2], 50), pct(times[2], 99)
	res.DurableP50us, res.DurableP99us = pct(times[3], 50), pct(times[3], 99)
	res.DirectVsCore = ratio(res.DirectP50us, res.CoreP50us)
	res.DurableVsCore = ratio(res.DurableP50us, res.CoreP50us)
	res.DurableVsRawJS = ratio(res.DurableP50us, res.RawJSP50us)
	return res, nil
}

// coreRequester returns a round trip of core NATS request/reply to a plain
// subscriber that echoes.
func coreRequester(ctx context.Context, env Env, bodies [][]byte) (f func(int) error, closeAll func(), err error) {
	var closers cleanups
	defer closers.onError(&err)
	rnc, err := env.connect("bench-core-responder")
	if err != nil {
		return nil, nil, err
	}
	closers = append(closers, rnc.Close)
	if _, err := rnc.Subscribe("bench.echo", func(m *nats.Msg) { _ = m.Respond(m.Data) }); err != nil {
		return nil, nil, err
	}
	if err := rnc.Flush(); err != nil {
		return nil, nil, err
	}
	qnc, err := env.connect("bench-core-requester")
	if err != nil {
		return nil, nil, err
	}
	closers = append(closers, qnc.Close)
	f = func(i int) error {
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if _, err := qnc.RequestWithContext(rctx, "bench.echo", bodies[i%bodyCount]); err != nil {
			return fmt.Errorf("core request: %w", err)
		}
		return nil
	}
	return f, closers.run, nil
}

// busRequesters serves an echo agent on one bus and returns round trips of
// Request from another bus, direct and durable.
func busRequesters(ctx context.Context, env Env, bodies [][]byte) (direct, durable func(int) error, closeAll func(), err error) {
	var closers cleanups
	defer closers.onError(&err)
	snc, err := env.connect("bench-bus-server")
	if err != nil {
		return nil, nil, nil, err
	}
	closers = append(closers, snc.Close)
	server, err := agentbus.Connect(ctx, env.logger(), agentbus.WithConn(snc), agentbus.WithEnsureStreams(agentbus.StreamConfig{}))
	if err != nil {
		return nil, nil, nil, err
	}
	closers = append(closers, func() { _ = server.Close(context.Background()) })
	js, err := jetstream.New(snc)
	if err != nil {
		return nil, nil, nil, err
	}
	stream, err := js.Stream(ctx, agentbus.StreamName)
	if err != nil {
		return nil, nil, nil, err
	}
	if err := checkIdle(stream); err != nil {
		return nil, nil, nil, err
	}
	err = server.Handle("bench-echo", func(ctx context.Context, e *codec.Envelope) error {
		return server.Reply(ctx, e, &codec.Envelope{Kind: "message", Payload: e.Payload})
	})
	if err != nil {
		return nil, nil, nil, err
	}
	pool := benchPool("bench-latency", 1)
	if _, err := server.Declare(ctx, poolConfig(pool), "bench-echo"); err != nil {
		return nil, nil, nil, err
	}
	sctx, stop := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- server.Serve(sctx, serveIn(pool)...) }()
	closers = append(closers, func() { stop(); <-served; deletePool(js, pool, []string{"bench-echo"}) })

	cnc, err := env.connect("bench-bus-client")
	if err != nil {
		return nil, nil, nil, err
	}
	closers = append(closers, cnc.Close)
	client, err := agentbus.Connect(ctx, env.logger(), agentbus.WithConn(cnc))
	if err != nil {
		return nil, nil, nil, err
	}
	closers = append(closers, func() { _ = client.Close(context.Background()) })
	request := func(mode agentbus.RequestMode, name string) func(int) error {
		return func(i int) error {
			rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			_, err := client.Request(rctx, &codec.Envelope{From: "bench", To: "bench-echo", Payload: bodies[i%bodyCount]}, mode)
			if err != nil {
				return fmt.Errorf("bench: %s request: %w", name, err)
			}
			return nil
		}
	}
	direct, durable = request(agentbus.Direct, "direct"), request(agentbus.Durable, "durable")
	// Wait until the server's consumer answers.
	deadline := time.Now().Add(30 * time.Second)
	for direct(0) != nil {
		if time.Now().After(deadline) {
			return nil, nil, nil, fmt.Errorf("bench: the echo agent did not start answering")
		}
		time.Sleep(20 * time.Millisecond)
	}
	return direct, durable, closers.run, nil
}

// rawJSRequester returns a durable round trip made with plain nats.go: the
// requester publishes to a work-queue stream (file storage, like the bus's)
// and waits for the publish ack and the reply; a pull consumer on another
// connection answers each message over core NATS and acks it.
func rawJSRequester(ctx context.Context, env Env, bodies [][]byte) (f func(int) error, closeAll func(), err error) {
	const stream, replyHeader = "BENCH_LATENCY", "Bench-Reply"
	var closers cleanups
	defer closers.onError(&err)
	snc, err := env.connect("bench-raw-js-responder")
	if err != nil {
		return nil, nil, err
	}
	closers = append(closers, snc.Close)
	js, err := jetstream.New(snc)
	if err != nil {
		return nil, nil, err
	}
	_ = js.DeleteStream(ctx, stream)
	s, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: stream, Subjects: []string{"bench.latency.>"},
		Retention: jetstream.WorkQueuePolicy, Storage: jetstream.FileStorage})
	if err != nil {
		return nil, nil, err
	}
	closers = append(closers, func() { _ = js.DeleteStream(context.Background(), stream) })
	cons, err := s.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{Durable: "echo", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		return nil, nil, err
	}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		_ = snc.Publish(m.Headers().Get(replyHeader), m.Data())
		_ = m.Ack()
	}, jetstream.PullMaxMessages(32)) // as the bus pulls
	if err != nil {
		return nil, nil, err
	}
	closers = append(closers, cc.Stop)

	cnc, err := env.connect("bench-raw-js-requester")
	if err != nil {
		return nil, nil, err
	}
	closers = append(closers, cnc.Close)
	cjs, err := jetstream.New(cnc)
	if err != nil {
		return nil, nil, err
	}
	inbox := cnc.NewInbox()
	replies := make(chan *nats.Msg, 1)
	if _, err := cnc.ChanSubscribe(inbox, replies); err != nil {
		return nil, nil, err
	}
	f = func(i int) error {
		m := &nats.Msg{Subject: "bench.latency.echo", Data: bodies[i%bodyCount], Header: nats.Header{replyHeader: []string{inbox}}}
		ack, err := cjs.PublishMsgAsync(m)
		if err != nil {
			return fmt.Errorf("raw JetStream publish: %w", err)
		}
		timeout := time.After(5 * time.Second)
		for acked, replied := false, false; !acked || !replied; {
			select {
			case <-ack.Ok():
				acked = true
			case err := <-ack.Err():
				return fmt.Errorf("raw JetStream publish: %w", err)
			case <-replies:
				replied = true
			case <-timeout:
				return fmt.Errorf("raw JetStream request: no reply within 5 s (acked %v, replied %v)", acked, replied)
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	}
	return f, closers.run, nil
}

// timeEach runs each of fs n times, in turns of one call each (turn i
// starts with fs[i mod len(fs)]), after a tenth as many warm-up turns, and
// returns the durations of each f, sorted.
func timeEach(n int, fs ...func(int) error) ([][]time.Duration, error) {
	for i := range n / 10 {
		for _, f := range fs {
			if err := f(i); err != nil {
				return nil, err
			}
		}
	}
	out := make([][]time.Duration, len(fs))
	for j := range out {
		out[j] = make([]time.Duration, n)
	}
	for i := range n {
		// Each turn starts with the next party, so that the work a round
		// trip leaves behind (an ack, a stream delete) falls on each in turn.
		for k := range fs {
			j := (i + k) % len(fs)
			start := time.Now()
			if err := fs[j](i); err != nil {
				return nil, err
			}
			out[j][i] = time.Since(start)
		}
	}
	for _, d := range out {
		slices.Sort(d)
	}
	return out, nil
}

// pct returns the p-th percentile of sorted durations in µs.
func pct(sorted []time.Duration, p int) float64 {
	i := (len(sorted)*p + 99) / 100
	i = min(max(i-1, 0), len(sorted)-1)
	return float64(sorted[i].Nanoseconds()) / 1e3
}

// cleanups are the undo steps of a set-up, run last first.
type cleanups []func()

func (c *cleanups) run() {
	for i := len(*c) - 1; i >= 0; i-- {
		(*c)[i]()
	}
	*c = nil
}

// onError runs the cleanups if *err is set: defer it in the set-up.
func (c *cleanups) onError(err *error) {
	if *err != nil {
		c.run()
	}
}
