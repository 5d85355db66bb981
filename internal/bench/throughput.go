package bench

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/a2abus/a2abus/agentbus"
	"github.com/a2abus/a2abus/codec"
	"github.com/a2abus/a2abus/internal/tracing"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/trace"
)

// ThroughputConfig sizes the throughput scenario.
type ThroughputConfig struct {
	MsgSize      int   // bytes of agent payload per message (default 256)
	Msgs         int   // messages per party and sender count (default 200 000)
	Destinations int   // distinct destination agents (default 64)
	Senders      []int // sender goroutine counts to run (default 1 and 4)
	// Parties limits the run to some of bus, raw_js and core (default all),
	// for profiling one of them.
	Parties []string
	// Replicas of the streams the bus and raw JetStream write to (default
	// 1; more needs a cluster).
	Replicas int
	// TraceSampling, when above 0, adds the party bus_traced: the bus
	// with an OpenTelemetry SDK tracer provider that samples this share
	// of the traces (parent-based) and exports them over OTLP/HTTP to a
	// sink on loopback. The bus party traces nothing.
	TraceSampling float64
}

func (c ThroughputConfig) withDefaults() ThroughputConfig {
	if c.MsgSize == 0 {
		c.MsgSize = 256
	}
	if c.Msgs == 0 {
		c.Msgs = 200_000
	}
	if c.Destinations == 0 {
		c.Destinations = 64
	}
	if len(c.Senders) == 0 {
		c.Senders = []int{1, 4}
	}
	return c
}

// Validate reports the first setting out of range.
func (c ThroughputConfig) Validate() error {
	c = c.withDefaults()
	switch {
	case c.MsgSize < 1 || c.MsgSize > 1<<20:
		return fmt.Errorf("bench: message size %d out of range 1..1 MiB", c.MsgSize)
	case c.Msgs < 1:
		return fmt.Errorf("bench: message count %d must be positive", c.Msgs)
	case c.Destinations < 1:
		return fmt.Errorf("bench: destination count %d must be positive", c.Destinations)
	}
	for _, p := range c.Parties {
		if p != "bus" && p != "bus_traced" && p != "raw_js" && p != "core" {
			return fmt.Errorf("bench: unknown party %q (want bus, bus_traced, raw_js or core)", p)
		}
	}
	if c.TraceSampling < 0 || c.TraceSampling > 1 {
		return fmt.Errorf("bench: trace sampling %v out of range 0..1", c.TraceSampling)
	}
	for _, s := range c.Senders {
		if s < 1 || s > 1024 {
			return fmt.Errorf("bench: sender count %d out of range 1..1024", s)
		}
	}
	return nil
}

// ThroughputRun is one party at one sender count.
type ThroughputRun struct {
	Party       string  `json:"party"` // bus, bus_traced, raw_js or core
	Senders     int     `json:"senders"`
	Msgs        int     `json:"msgs"`
	Errors      int     `json:"errors"`
	Seconds     float64 `json:"seconds"`
	MsgsPerS    float64 `json:"msgs_per_s"`
	StoredOK    bool    `json:"stored_ok"` // the stream holds every message that was acknowledged (durable parties)
	Batches     int     `json:"batches,omitempty"`
	AvgBatch    float64 `json:"avg_batch,omitempty"`
	BytesOnWire int64   `json:"bytes_on_wire,omitempty"`
}

// ThroughputResult is the scenario's report; the top-level rates are each
// party's best over the sender counts.
type ThroughputResult struct {
	MsgSize       int     `json:"msg_size"`
	Destinations  int     `json:"destinations"`
	BusMsgsPerS   float64 `json:"bus_msgs_per_s"`
	RawJSMsgsPerS float64 `json:"raw_js_msgs_per_s"`
	CoreMsgsPerS  float64 `json:"core_msgs_per_s"`
	RatioVsRawJS  float64 `json:"ratio_vs_raw_js"`
	RatioVsCore   float64 `json:"ratio_vs_core"`
	// With TraceSampling: the traced bus's best, its sampling, its
	// ratio to the untraced bus (best of each) and the spans' OTLP bytes.
	TraceSampling     float64         `json:"trace_sampling,omitempty"`
	BusTracedMsgsPerS float64         `json:"bus_traced_msgs_per_s,omitempty"`
	RatioTracedVsBus  float64         `json:"ratio_traced_vs_bus,omitempty"`
	TraceExportBytes  int64           `json:"trace_export_bytes,omitempty"`
	Runs              []ThroughputRun `json:"runs"`
}

// words is the vocabulary of the benchmark's message text: A2A traffic is
// mostly natural-language text and JSON, which compresses, but no two
// messages are the same.
var words = strings.Fields("the agent task result report summarize weather call plan tool step " +
	"search answer context user model reply status artifact input output data file query about " +
	"for with from into this that next done failed working completed please check update")

// payloads returns the destination names and bodyCount distinct message
// bodies of random words, built before the clock starts.
func payloads(c ThroughputConfig) (dests []string, bodies [][]byte) {
	dests = make([]string, c.Destinations)
	for i := range dests {
		dests[i] = "agent-" + strconv.Itoa(i)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	bodies = make([][]byte, bodyCount)
	for i := range bodies {
		b := make([]byte, 0, c.MsgSize+16)
		for len(b) < c.MsgSize {
			b = append(b, words[rng.IntN(len(words))]...)
			b = append(b, ' ')
		}
		bodies[i] = b[:c.MsgSize]
	}
	return dests, bodies
}

// bodyCount is how many distinct bodies a run cycles through; more than a
// batch holds, so that batches do not compress by repetition.
const bodyCount = 4096

// split gives sender i its share of n.
func split(n, senders, i int) int {
	share := n / senders
	if i < n%senders {
		share++
	}
	return share
}

// rawJS publishes one JetStream message per agent message with
// PublishAsync, the way an application without a2abus would.
func rawJS(ctx context.Context, env Env, c ThroughputConfig, senders int) (ThroughputRun, error) {
	run := ThroughputRun{Party: "raw_js", Senders: senders, Msgs: c.Msgs}
	nc, err := env.connect("bench-raw-js")
	if err != nil {
		return run, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		return run, err
	}
	const stream = "BENCH_RAW"
	_ = js.DeleteStream(ctx, stream)
	s, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name: stream, Subjects: []string{"bench.raw.>"}, Storage: jetstream.FileStorage, Replicas: max(c.Replicas, 1),
	})
	if err != nil {
		return run, fmt.Errorf("bench: create stream %s: %w", stream, err)
	}
	defer func() { _ = js.DeleteStream(context.Background(), stream) }()

	dests, bodies := payloads(c)
	subjects := make([]string, len(dests))
	for i, d := range dests {
		subjects[i] = "bench.raw." + d
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		errs  int
		first error
		acked int
	)
	start := time.Now()
	for g := range senders {
		n := split(c.Msgs, senders, g)
		wg.Go(func() {
			futures := make([]jetstream.PubAckFuture, 0, n)
			var bad int
			var firstErr error
			for i := range n {
				f, err := js.PublishAsync(subjects[(g+i*senders)%len(subjects)], bodies[(g+i*senders)%bodyCount], jetstream.WithStallWait(time.Minute))
				if err != nil {
					bad++
					firstErr = cmp(firstErr, err)
					continue
				}
				futures = append(futures, f)
			}
			ok := 0
			for _, f := range futures {
				select {
				case <-f.Ok():
					ok++
				case err := <-f.Err():
					bad++
					firstErr = cmp(firstErr, err)
				case <-ctx.Done():
					bad++
					firstErr = cmp(firstErr, ctx.Err())
				}
			}
			mu.Lock()
			errs += bad
			acked += ok
			first = cmp(first, firstErr)
			mu.Unlock()
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	run.Errors, run.Seconds, run.MsgsPerS = errs, elapsed.Seconds(), rate(acked, elapsed)
	info, err := s.Info(ctx)
	if err != nil {
		return run, err
	}
	run.StoredOK = info.State.Msgs == uint64(acked)
	if first != nil {
		env.progress("raw_js: %d errors, first: %v", errs, first)
	}
	return run, nil
}

// core publishes the same messages with core NATS: no storage, no acks,
// the ceiling of what any durable path can reach on this server.
func core(ctx context.Context, env Env, c ThroughputConfig, senders int) (ThroughputRun, error) {
	run := ThroughputRun{Party: "core", Senders: senders, Msgs: c.Msgs}
	nc, err := env.connect("bench-core")
	if err != nil {
		return run, err
	}
	defer nc.Close()
	dests, bodies := payloads(c)
	subjects := make([]string, len(dests))
	for i, d := range dests {
		subjects[i] = "bench.core." + d
	}
	var wg sync.WaitGroup
	errc := make(chan error, senders)
	start := time.Now()
	for g := range senders {
		n := split(c.Msgs, senders, g)
		wg.Go(func() {
			for i := range n {
				if err := nc.Publish(subjects[(g+i*senders)%len(subjects)], bodies[(g+i*senders)%bodyCount]); err != nil {
					errc <- err
					return
				}
			}
		})
	}
	wg.Wait()
	// Flush waits until the server has read everything published.
	fctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := nc.FlushWithContext(fctx); err != nil {
		return run, fmt.Errorf("bench: core flush: %w", err)
	}
	elapsed := time.Since(start)
	close(errc)
	for err := range errc {
		run.Errors++
		env.progress("core: %v", err)
	}
	run.Seconds, run.MsgsPerS = elapsed.Seconds(), rate(c.Msgs, elapsed)
	run.StoredOK = true // nothing to store
	return run, nil
}

// cmp keeps the first non-nil error.
func cmp(first, err error) error {
	if first != nil {
		return first
	}
	return err
}

// Throughput runs the bus, raw JetStream and core NATS on env's server
// with every sender count and reports the rates and ratios.
func Throughput(ctx context.Context, env Env, c ThroughputConfig) (res ThroughputResult, err error) {
	if err := c.Validate(); err != nil {
		return ThroughputResult{}, err
	}
	c = c.withDefaults()
	res = ThroughputResult{MsgSize: c.MsgSize, Destinations: c.Destinations, TraceSampling: c.TraceSampling}
	type party struct {
		name string
		run  func(context.Context, Env, ThroughputConfig, int) (ThroughputRun, error)
		best *float64
	}
	// The bus party traces as a library user's bus does by default: with
	// the global provider, which no one sets here.
	parties := []party{{"bus", busParty(nil), &res.BusMsgsPerS}}
	if c.TraceSampling > 0 {
		sink, err := startTraceSink()
		if err != nil {
			return res, err
		}
		defer sink.close()
		tp, err := tracedProvider(ctx, c.TraceSampling, sink)
		if err != nil {
			return res, err
		}
		defer func() {
			_ = tp.Shutdown(context.Background())
			res.TraceExportBytes = sink.bytes.Load()
		}()
		parties = append(parties, party{"bus_traced", busParty(tp), &res.BusTracedMsgsPerS})
	}
	parties = append(parties, party{"raw_js", rawJS, &res.RawJSMsgsPerS}, party{"core", core, &res.CoreMsgsPerS})
	for _, senders := range c.Senders {
		for _, p := range parties {
			if len(c.Parties) > 0 && !slices.Contains(c.Parties, p.name) {
				continue
			}
			env.progress("throughput: %s, %d sender(s), %d messages of %d B to %d destinations...",
				p.name, senders, c.Msgs, c.MsgSize, c.Destinations)
			run, err := p.run(ctx, env, c, senders)
			if err != nil {
				return res, fmt.Errorf("%s with %d senders: %w", p.name, senders, err)
			}
			env.progress("throughput: %s, %d sender(s): %.0f msgs/s", p.name, senders, run.MsgsPerS)
			res.Runs = append(res.Runs, run)
			*p.best = max(*p.best, run.MsgsPerS)
		}
	}
	res.RatioVsRawJS = ratio(res.BusMsgsPerS, res.RawJSMsgsPerS)
	res.RatioVsCore = ratio(res.BusMsgsPerS, res.CoreMsgsPerS)
	res.RatioTracedVsBus = ratio(res.BusTracedMsgsPerS, res.BusMsgsPerS)
	return res, nil
}

// busParty is the bus party with tp: bus (nil: the global provider) or
// bus_traced.
func busParty(tp trace.TracerProvider) func(context.Context, Env, ThroughputConfig, int) (ThroughputRun, error) {
	return func(ctx context.Context, env Env, c ThroughputConfig, senders int) (ThroughputRun, error) {
		return busThroughput(ctx, env, c, senders, tp)
	}
}

// busThroughput sends the messages through agentbus: per-destination
// batches, one JetStream message per batch.
func busThroughput(ctx context.Context, env Env, c ThroughputConfig, senders int, tp trace.TracerProvider) (ThroughputRun, error) {
	run := ThroughputRun{Party: "bus", Senders: senders, Msgs: c.Msgs}
	if tracing.Enabled(tp) {
		run.Party = "bus_traced"
	}
	nc, err := env.connect("bench-bus")
	if err != nil {
		return run, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return run, err
	}
	// The bus party writes to the A2A stream and purges it afterwards:
	// never on a stream that holds messages or has consumers (a live bus).
	if err := agentbus.EnsureStreams(ctx, js, agentbus.StreamConfig{Replicas: c.Replicas}); err != nil {
		return run, err
	}
	s, err := js.Stream(ctx, agentbus.StreamName)
	if err != nil {
		return run, err
	}
	if err := checkIdle(s); err != nil {
		return run, err
	}
	if err := s.Purge(ctx); err != nil {
		return run, fmt.Errorf("bench: purge %s: %w", agentbus.StreamName, err)
	}
	defer func() { _ = s.Purge(context.Background()) }()
	dests, bodies := payloads(c)
	// No member reads what this party stores: its destinations are routed
	// to a pool of their own without the registry.
	opts := []agentbus.Option{agentbus.WithConn(nc), env.logger(), agentbus.WithTracerProvider(tp)}
	for _, d := range dests {
		opts = append(opts, agentbus.WithRoute(d, agentbus.PoolConfig{Name: "bench-throughput"}))
	}
	bus, err := agentbus.Connect(ctx, opts...)
	if err != nil {
		return run, err
	}
	defer func() { _ = bus.Close(context.Background()) }()

	// Payloads as interface values, converted before the clock starts as
	// an application holding its messages would have them.
	anyBodies := make([]any, len(bodies))
	for i, b := range bodies {
		anyBodies[i] = b
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		errs  int
		first error
	)
	start := time.Now()
	for g := range senders {
		n := split(c.Msgs, senders, g)
		wg.Go(func() {
			env := codec.Envelope{From: "bench-" + strconv.Itoa(g), Kind: "bench"}
			// Tickets are shared by a batch: keep each once, and drop the
			// completed ones as the run goes, so the harness's own memory
			// stays bounded by the batches in flight.
			pending := make(map[*agentbus.Ticket]int) // ticket -> messages in it
			bad := 0                                  // failed messages
			var firstErr error
			check := func(t *agentbus.Ticket, err error) {
				if err != nil {
					bad += pending[t]
					firstErr = cmp(firstErr, err)
				}
				delete(pending, t)
			}
			for i := range n {
				env.To = dests[(g+i*senders)%len(dests)]
				env.Payload = anyBodies[(g+i*senders)%bodyCount]
				env.ID = ""
				t, err := bus.SendAsync(ctx, &env)
				if err != nil {
					bad++
					firstErr = cmp(firstErr, err)
					continue
				}
				pending[t]++
				if i%4096 == 4095 {
					for t := range pending {
						select {
						case <-t.Done():
							check(t, t.Err())
						default:
						}
					}
				}
			}
			for t := range pending {
				check(t, t.Wait(ctx))
			}
			mu.Lock()
			errs += bad
			first = cmp(first, firstErr)
			mu.Unlock()
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	run.Errors, run.Seconds, run.MsgsPerS = errs, elapsed.Seconds(), rate(c.Msgs, elapsed)
	if errs > 0 {
		run.MsgsPerS = 0 // a failed run has no rate
		env.progress("bus: %d errors, first: %v", errs, first)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return run, err
	}
	run.Batches = int(info.State.Msgs)
	run.BytesOnWire = int64(info.State.Bytes)
	if run.Batches > 0 {
		run.AvgBatch = float64(c.Msgs) / float64(run.Batches)
	}
	stored := countStored(ctx, s, bus.Codec())
	run.StoredOK = errs == 0 && stored == c.Msgs
	if stored != c.Msgs {
		env.progress("bus: %d envelopes stored, %d sent", stored, c.Msgs)
	}
	return run, nil
}

// checkIdle refuses a stream that holds messages or has consumers: the
// benchmarks write to it and purge it, which must never touch a live bus.
func checkIdle(s jetstream.Stream) error {
	if st := s.CachedInfo().State; st.Msgs > 0 || st.Consumers > 0 {
		return fmt.Errorf("bench: stream %s holds %d messages and has %d consumers: refusing to benchmark on a bus in use (run without --nats)",
			agentbus.StreamName, st.Msgs, st.Consumers)
	}
	return nil
}

// countStored decodes every batch in s and counts the envelopes, or
// returns -1 when it cannot read them all.
func countStored(ctx context.Context, s jetstream.Stream, c *codec.Codec) int {
	info, err := s.Info(ctx)
	if err != nil || info.State.Msgs == 0 {
		return 0
	}
	total := 0
	var envs []codec.Envelope
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return -1
		}
		if envs, err = c.DecodeBatch(envs[:0], m.Data); err != nil {
			return -1
		}
		total += len(envs)
	}
	return total
}
