//go:build faults || powerloss

package faults_test

import (
	"context"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/a2abus/a2abus/agentbus"
	"github.com/a2abus/a2abus/embedded/embeddedtest"
	"github.com/a2abus/a2abus/internal/faults"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// serveOpts are every consumer's: short member TTL and ack wait, so that a
// dead member's partitions and batches move on within seconds.
var serveOpts = []agentbus.ServeOption{
	agentbus.ServeMemberTTL(2 * time.Second),
	agentbus.ServeAckWait(2 * time.Second),
	agentbus.ServeRetryBackoff(time.Millisecond, 5*time.Millisecond),
}

const agentCount = 12

// summaries print what the run's tests found, after them: each suite
// (build tag) adds its own.
var summaries []func()

func TestMain(m *testing.M) {
	code := m.Run()
	for _, print := range summaries {
		print()
	}
	os.Exit(code)
}

// run is one scenario: a cluster, its consumers and publishers, a ledger.
type run struct {
	t      *testing.T
	cfg    runConfig
	c      *faults.Cluster
	nc     *nats.Conn // for inspection, direct to the servers
	ledger *faults.Ledger
	agents []string

	pubWG   sync.WaitGroup
	pubCtx  context.Context
	pubStop context.CancelFunc
	pubs    []*agentbus.Bus
}

// runConfig shapes a run's cluster and clients; the zero value is the
// fault suite's: three nodes, the R3 stream, consumers connected straight
// to the servers.
type runConfig struct {
	nodes   int                    // default 3
	cluster []faults.ClusterOption // StartCluster's options
	stream  agentbus.StreamConfig  // default faults.StreamConfig
	// proxied connects consumers through the client proxies, as the
	// publishers are, so that cutting a node's proxy cuts them too.
	proxied bool
}

func newRunWith(t *testing.T, cfg runConfig) *run {
	t.Helper()
	if cfg.nodes == 0 {
		cfg.nodes = 3
	}
	if cfg.stream == (agentbus.StreamConfig{}) {
		cfg.stream = faults.StreamConfig
	}
	ctx := ctxFor(t, time.Minute)
	c, err := faults.StartCluster(ctx, cfg.nodes, t.TempDir(), logger(t), cfg.cluster...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := c.Close(ctx); err != nil {
			t.Errorf("close cluster: %v", err)
		}
	})
	nc, err := nats.Connect(c.DirectURLs(0), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	if err := faults.WaitPlacement(ctx, nc, cfg.stream.Replicas); err != nil {
		t.Fatal(err)
	}
	r := &run{t: t, cfg: cfg, c: c, nc: nc, ledger: faults.NewLedger(), agents: faults.Agents(agentCount)}
	// Provision the streams once, before the clients race to.
	bus, err := faults.Connect(ctx, c.DirectURLs(0), "provision", logger(t), r.busOpts()...)
	if err != nil {
		t.Fatal(err)
	}
	if err := bus.Close(ctx); err != nil {
		t.Fatal(err)
	}
	c.WaitStreamLeader(ctx, agentbus.DeadLetterStreamName)
	if _, err := c.WaitStreamLeader(ctx, agentbus.StreamName); err != nil {
		t.Fatal(err)
	}
	return r
}

// busOpts are the options every bus of the run connects with beyond
// faults.Connect's: the run's stream.
func (r *run) busOpts(opts ...agentbus.Option) []agentbus.Option {
	return append([]agentbus.Option{agentbus.WithEnsureStreams(r.cfg.stream)}, opts...)
}

// consumer starts a consumer connected to node first (direct, so that
// CutClients spares it, unless the run's consumers are proxied).
func (r *run) consumer(name string, node int, opts ...agentbus.ServeOption) *faults.Consumer {
	r.t.Helper()
	urls := r.c.DirectURLs(node)
	if r.cfg.proxied {
		urls = r.c.ClientURLs(node)
	}
	cons, err := faults.StartConsumer(ctxFor(r.t, 30*time.Second), faults.ConsumerConfig{
		URLs: urls, Name: name, Agents: r.agents, Ledger: r.ledger, Log: logger(r.t),
		Serve: append(append([]agentbus.ServeOption{}, serveOpts...), opts...),
		Bus:   r.busOpts(),
	})
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := cons.Stop(ctx); err != nil {
			r.t.Errorf("stop consumer %s: %v", name, err)
		}
	})
	r.waitDeclared()
	return cons
}

// waitDeclared waits until the run's agents are in the pool registry: the
// first consumer of a fresh cluster declares them while it creates the
// registry's replicated bucket, which can take longer than a publisher's
// send timeout, and a publisher that sent before would see its first
// sends fail for a reason no scenario is about.
func (r *run) waitDeclared() {
	r.t.Helper()
	ctx := ctxFor(r.t, time.Minute)
	js, err := jetstream.New(r.nc)
	if err != nil {
		r.t.Fatal(err)
	}
	for {
		// Each look bounded: a read lost to a leader change must not take
		// the whole wait.
		actx, cancel := context.WithTimeout(ctx, 2*time.Second)
		kv, err := js.KeyValue(actx, agentbus.PoolsBucket)
		if err == nil {
			_, err = kv.Get(actx, "agents."+r.agents[len(r.agents)-1])
		}
		cancel()
		if err == nil {
			return
		}
		select {
		case <-ctx.Done():
			r.t.Fatalf("the run's agents were not declared within a minute: %v", err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// publisher connects a publishing bus to node first, through the client
// proxies.
func (r *run) publisher(name string, node int) *agentbus.Bus {
	r.t.Helper()
	bus, err := faults.Connect(ctxFor(r.t, 30*time.Second), r.c.ClientURLs(node), name, logger(r.t),
		r.busOpts(agentbus.WithSendTimeout(10*time.Second), agentbus.WithLinger(2*time.Millisecond))...)
	if err != nil {
		r.t.Fatal(err)
	}
	r.pubs = append(r.pubs, bus)
	r.t.Cleanup(func() { _ = bus.Close(context.Background()) })
	return bus
}

// publish runs a publisher on bus until stopPublishing.
func (r *run) publish(bus *agentbus.Bus, from string, cfg faults.PublisherConfig) {
	cfg.Bus, cfg.From, cfg.Agents, cfg.Ledger = bus, from, r.agents, r.ledger
	if cfg.Burst == 0 {
		cfg.Burst = 20
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 5 * time.Second
	}
	r.load(func(ctx context.Context) { faults.Publish(ctx, cfg) })
}

// load runs f until it returns or stopPublishing cancels its context.
func (r *run) load(f func(ctx context.Context)) {
	if r.pubStop == nil {
		ctx, cancel := context.WithCancel(context.Background())
		r.pubStop = cancel
		r.t.Cleanup(r.stopPublishing)
		r.pubCtx = ctx
	}
	r.pubWG.Go(func() { f(r.pubCtx) })
}

// stopPublishing stops the publishers and closes their buses, which
// delivers or fails what they still hold.
func (r *run) stopPublishing() {
	if r.pubStop != nil {
		r.pubStop()
	}
	r.pubWG.Wait()
	for _, b := range r.pubs {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		if err := b.Close(ctx); err != nil {
			r.t.Logf("close publisher: %v", err)
		}
		cancel()
	}
	r.pubs = nil
}

// waitHandled waits until the ledger has n more distinct keys handled
// than now; within bounds a stall, it is not a performance threshold.
func (r *run) waitHandled(what string, n int) {
	r.t.Helper()
	r.waitDistinct(what, r.ledger.Counts().Distinct+n)
}

// waitDistinct waits until the ledger has want distinct keys handled.
func (r *run) waitDistinct(what string, want int) {
	r.t.Helper()
	deadline := time.Now().Add(45 * time.Second)
	for r.ledger.Counts().Distinct < want {
		if time.Now().After(deadline) {
			r.t.Fatalf("%s: %d of %d keys handled after 45 s; %v", what, r.ledger.Counts().Distinct, want, r.ledger.Counts())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// logger is the servers' and buses' log: errors into the test log (more
// with A2ABUS_TEST_NATS_LOG), without the route and client connection
// errors every fault here causes.
func logger(t *testing.T) *slog.Logger {
	return faults.QuietLogger(embeddedtest.Logger(t))
}
