package faults

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"sync"
	"time"

	"github.com/a2abus/a2abus/agentbus"
	"github.com/nats-io/nats.go"
)

// SoakConfig configures Soak. The zero value takes every default.
type SoakConfig struct {
	// Duration of the load, before the final drain. Default 10 minutes.
	Duration time.Duration
	// Interval between report lines; one fault is injected in each.
	// Default 20 s.
	Interval time.Duration
	// Dir holds the nodes' stores. Default: a temporary directory, removed
	// at the end.
	Dir string
	// Publishers is the number of publishing buses. Default 3.
	Publishers int
	// Log receives the servers' and buses' log (default: discarded).
	Log *slog.Logger
	// HeapProfile, when set, is a file to write a heap profile to after
	// the last interval, before the drain: what holds the heap.
	HeapProfile string
}

// SoakResult is a soak's outcome: the final counts and the verdicts.
type SoakResult struct {
	Counts      Counts
	DeadLetters uint64
	// HeapFlat and GoroutinesFlat compare the median of the last third of
	// the samples with the first third's (the first sample, taken while the
	// run warms up, left out): flat is at most 25% more plus a small
	// allowance (8 MiB, 20 goroutines) for the noise of faults.
	HeapFlat, GoroutinesFlat bool
	// NoLoss: nothing acknowledged lost, nothing unknown handled, no
	// duplicate under another envelope ID, no dead letter.
	NoLoss bool
	// OrderViolations are messages first handled before one sent earlier
	// under their ordering key (Ledger.Order); Counts.Overlaps the handler
	// calls of one ordering key that ran at once. Ordered: both are zero.
	OrderViolations int
	Ordered         bool
}

// OK reports whether every verdict holds.
func (r SoakResult) OK() bool { return r.HeapFlat && r.GoroutinesFlat && r.NoLoss && r.Ordered }

// soakFaults are injected in turn, one per interval.
var soakFaults = []struct {
	name string
	do   func(*soak, context.Context) (string, error)
}{
	{"kill consumer", (*soak).killConsumer},
	{"restart stream leader", (*soak).restartLeader},
	{"cut routes", (*soak).cutRoutes},
	{"publisher reconnect storm", (*soak).storm},
	{"slow consumer", (*soak).slowConsumer},
	{"restart all nodes", (*soak).restartAll},
}

// Soak runs mixed load on a 3-node cluster for cfg.Duration, injecting the
// suite's faults in turn (a consumer killed, the stream leader restarted,
// a node's routes cut, a publisher reconnect storm, a slow consumer, every
// node restarted), and writes one line per interval to out: heap in use and
// goroutines (after a GC, between faults), and the ledger's counts. Then it
// stops the load, drains, and writes the verdict: memory flat, goroutines
// flat, loss zero. The error is for a run that could not go on (a node
// that does not restart, say), not for a failed verdict.
func Soak(ctx context.Context, cfg SoakConfig, out io.Writer) (SoakResult, error) {
	if cfg.Duration <= 0 {
		cfg.Duration = 10 * time.Minute
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 20 * time.Second
	}
	if cfg.Publishers <= 0 {
		cfg.Publishers = 3
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Dir == "" {
		dir, err := os.MkdirTemp("", "a2abus-soak-")
		if err != nil {
			return SoakResult{}, err
		}
		defer os.RemoveAll(dir)
		cfg.Dir = dir
	}
	s := &soak{cfg: cfg, ledger: NewLedger(), agents: Agents(24), log: QuietLogger(cfg.Log)}
	defer s.close()
	if err := s.start(ctx); err != nil {
		return SoakResult{}, err
	}

	fmt.Fprintf(out, "soak: %v of load on a 3-node cluster (file store, R3), %d publishers, %d consumers, a fault every %v\n",
		cfg.Duration, cfg.Publishers, len(s.consumers), cfg.Interval)
	fmt.Fprintf(out, "%8s %10s %10s %9s %9s %6s %8s %6s  %s\n",
		"elapsed", "heap", "goroutines", "acked", "handled", "dups", "pending", "keys", "fault in the interval")
	if err := s.warmUp(ctx); err != nil {
		return SoakResult{}, err
	}
	var heap, gor []float64
	began := time.Now()
	for gen := 0; time.Since(began) < cfg.Duration; gen++ {
		// The fault a quarter into the interval, the sample at its end,
		// once the system has had time to recover.
		start := began.Add(time.Duration(gen) * cfg.Interval)
		if err := sleepCtx(ctx, time.Until(start.Add(cfg.Interval/4))); err != nil {
			return SoakResult{}, err
		}
		f := soakFaults[gen%len(soakFaults)]
		what, err := f.do(s, ctx)
		if err != nil {
			return SoakResult{}, fmt.Errorf("faults: soak: %s: %w", f.name, err)
		}
		if err := sleepCtx(ctx, time.Until(start.Add(cfg.Interval))); err != nil {
			return SoakResult{}, err
		}
		s.ledger.Retire(gen)
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		heap = append(heap, float64(ms.HeapInuse))
		gor = append(gor, float64(runtime.NumGoroutine()))
		c := s.ledger.Counts()
		fmt.Fprintf(out, "%8s %10s %10d %9d %9d %6d %8d %6d  %s\n",
			time.Since(began).Round(time.Second), mib(ms.HeapInuse), runtime.NumGoroutine(),
			c.Acked, c.Handled, c.Duplicates, c.Lost, s.ledger.Live(), what)
	}

	if cfg.HeapProfile != "" {
		if err := writeHeapProfile(cfg.HeapProfile); err != nil {
			return SoakResult{}, err
		}
	}
	fmt.Fprintf(out, "stopping the load and draining\n")
	s.stopPublishing()
	dctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	drainErr := WaitDrained(dctx, s.nc, s.ledger)
	res := SoakResult{Counts: s.ledger.Counts()}
	res.DeadLetters, _ = StreamMsgs(ctx, s.nc, agentbus.DeadLetterStreamName)
	c := res.Counts
	res.NoLoss = drainErr == nil && c.Lost == 0 && c.Unknown == 0 && c.KeyDups == 0 && res.DeadLetters == 0
	var disorder []string
	res.OrderViolations, disorder = s.ledger.Order(5)
	res.Ordered = res.OrderViolations == 0 && c.Overlaps == 0
	h0, h1 := thirds(heap)
	g0, g1 := thirds(gor)
	res.HeapFlat = h1 <= 1.25*h0+8<<20
	res.GoroutinesFlat = g1 <= 1.25*g0+20
	fmt.Fprintf(out, "final: %v; %d dead letters\n", c, res.DeadLetters)
	if drainErr != nil {
		fmt.Fprintf(out, "drain: %v\n", drainErr)
	}
	for _, d := range append(disorder, s.ledger.Overlaps(5)...) {
		fmt.Fprintf(out, "  %s\n", d)
	}
	fmt.Fprintf(out, "verdict: memory %s (heap median %s in the first third, %s in the last), goroutines %s (median %.0f, then %.0f), loss %s (%d lost, %d unknown, %d duplicates by idempotency key, %d dead letters), order %s (%d out of order, %d overlapping handler calls): %s\n",
		flat(res.HeapFlat), mib(uint64(h0)), mib(uint64(h1)), flat(res.GoroutinesFlat), g0, g1,
		map[bool]string{true: "zero", false: "NOT ZERO"}[res.NoLoss], c.Lost, c.Unknown, c.KeyDups, res.DeadLetters,
		map[bool]string{true: "kept", false: "BROKEN"}[res.Ordered], res.OrderViolations, c.Overlaps,
		map[bool]string{true: "PASS", false: "FAIL"}[res.OK()])
	return res, nil
}

// soak is one Soak run's state.
type soak struct {
	cfg    SoakConfig
	log    *slog.Logger
	c      *Cluster
	nc     *nats.Conn
	ledger *Ledger
	agents []string

	consumers []*Consumer
	nextID    int // consumers started, for names

	pubCancel context.CancelFunc
	pubWG     sync.WaitGroup
	pubs      []*agentbus.Bus
}

// serveOpts are the soak's consumers': short member TTL and ack wait, so
// that a dead member's partitions and batches move on within seconds.
var serveOpts = []agentbus.ServeOption{
	agentbus.ServeMemberTTL(2 * time.Second),
	agentbus.ServeAckWait(2 * time.Second),
	agentbus.ServeRetryBackoff(time.Millisecond, 5*time.Millisecond),
}

func (s *soak) start(ctx context.Context) error {
	var err error
	if s.c, err = StartCluster(ctx, 3, s.cfg.Dir, s.log); err != nil {
		return err
	}
	if s.nc, err = nats.Connect(s.c.DirectURLs(0), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond)); err != nil {
		return err
	}
	if err := WaitPlacement(ctx, s.nc, 3); err != nil {
		return err
	}
	bus, err := Connect(ctx, s.c.DirectURLs(0), "provision", s.log)
	if err != nil {
		return err
	}
	if err := bus.Close(ctx); err != nil {
		return err
	}
	for i := range 3 {
		if err := s.startConsumer(ctx, i); err != nil {
			return err
		}
	}
	pctx, cancel := context.WithCancel(context.Background())
	s.pubCancel = cancel
	for i := range s.cfg.Publishers {
		name := fmt.Sprintf("pub-%d", i)
		bus, err := Connect(ctx, s.c.ClientURLs(i%3), name, s.log,
			agentbus.WithSendTimeout(10*time.Second), agentbus.WithLinger(2*time.Millisecond))
		if err != nil {
			return err
		}
		s.pubs = append(s.pubs, bus)
		s.pubWG.Go(func() {
			Publish(pctx, PublisherConfig{Bus: bus, From: name, Agents: s.agents, Ledger: s.ledger,
				Burst: 20, Pause: 100 * time.Millisecond, Timeout: 5 * time.Second, Retries: 2})
		})
	}
	return nil
}

// warmUp waits until the consumers handle envelopes: the members have
// joined and their consumers have leaders.
func (s *soak) warmUp(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for {
		c := s.ledger.Counts()
		if c.Distinct > 0 {
			return nil
		}
		if err := sleepCtx(ctx, 100*time.Millisecond); err != nil {
			return fmt.Errorf("faults: soak: warming up: %v: %w", c, err)
		}
	}
}

// startConsumer starts a consumer connected to node first and adds it to
// the set.
func (s *soak) startConsumer(ctx context.Context, node int) error {
	s.nextID++
	c, err := StartConsumer(ctx, ConsumerConfig{
		URLs: s.c.DirectURLs(node), Name: fmt.Sprintf("c%d", s.nextID), Agents: s.agents,
		Ledger: s.ledger, Log: s.log, Serve: serveOpts,
	})
	if err != nil {
		return err
	}
	s.consumers = append(s.consumers, c)
	return nil
}

func (s *soak) stopPublishing() {
	if s.pubCancel != nil {
		s.pubCancel()
	}
	s.pubWG.Wait()
	for _, b := range s.pubs {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		_ = b.Close(ctx)
		cancel()
	}
	s.pubs = nil
}

func (s *soak) close() {
	s.stopPublishing()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, c := range s.consumers {
		_ = c.Stop(ctx)
	}
	if s.nc != nil {
		s.nc.Close()
	}
	if s.c != nil {
		_ = s.c.Close(ctx)
	}
}

// killConsumer kills the oldest consumer and starts a new one on the same
// node in its place.
func (s *soak) killConsumer(ctx context.Context) (string, error) {
	victim := s.consumers[0]
	s.consumers = s.consumers[1:]
	kctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	_ = victim.Kill(kctx) // a crash need not go cleanly
	node := s.nextID % 3
	if err := s.startConsumer(ctx, node); err != nil {
		return "", err
	}
	return fmt.Sprintf("killed consumer %s, started %s", victim.Name(), s.consumers[len(s.consumers)-1].Name()), nil
}

func (s *soak) restartLeader(ctx context.Context) (string, error) {
	l, err := s.c.WaitStreamLeader(ctx, agentbus.StreamName)
	if err != nil {
		return "", err
	}
	if err := s.c.Stop(ctx, l); err != nil {
		return "", err
	}
	if err := sleepCtx(ctx, 2*time.Second); err != nil {
		return "", err
	}
	if err := s.c.Restart(ctx, l); err != nil {
		return "", err
	}
	return "restarted stream leader " + s.c.Name(l), nil
}

func (s *soak) cutRoutes(ctx context.Context) (string, error) {
	l, err := s.c.WaitStreamLeader(ctx, agentbus.StreamName)
	if err != nil {
		return "", err
	}
	s.c.Isolate(l)
	err = sleepCtx(ctx, 5*time.Second)
	s.c.Heal(l)
	return "cut " + s.c.Name(l) + "'s routes for 5 s", err
}

func (s *soak) storm(ctx context.Context) (string, error) {
	for range 3 {
		s.c.CutClients()
		err := sleepCtx(ctx, 300*time.Millisecond)
		s.c.RestoreClients()
		if err != nil {
			return "", err
		}
		if err := sleepCtx(ctx, time.Second); err != nil {
			return "", err
		}
	}
	return "dropped every publisher connection 3 times", nil
}

func (s *soak) slowConsumer(ctx context.Context) (string, error) {
	c := s.consumers[len(s.consumers)-1]
	c.SetDelay(5 * time.Millisecond)
	err := sleepCtx(ctx, min(10*time.Second, s.cfg.Interval/2))
	c.SetDelay(0)
	return "consumer " + c.Name() + " slowed to 5 ms an envelope", err
}

func (s *soak) restartAll(ctx context.Context) (string, error) {
	if err := s.c.StopAll(ctx); err != nil {
		return "", err
	}
	if err := sleepCtx(ctx, time.Second); err != nil {
		return "", err
	}
	if err := s.c.Restart(ctx); err != nil {
		return "", err
	}
	return "restarted every node", nil
}

func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	runtime.GC()
	if err := pprof.WriteHeapProfile(f); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// thirds returns the medians of the first and last thirds of samples,
// leaving out the first sample (the run warming up).
func thirds(samples []float64) (first, last float64) {
	if len(samples) > 1 {
		samples = samples[1:]
	}
	if len(samples) == 0 {
		return 0, 0
	}
	n := max(1, len(samples)/3)
	return median(samples[:n]), median(samples[len(samples)-n:])
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

func mib(b uint64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

func flat(ok bool) string {
	if ok {
		return "flat"
	}
	return "GROWING"
}
