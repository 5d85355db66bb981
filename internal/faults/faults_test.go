//go:build faults

package faults_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/a2abus/a2abus/agentbus"
	"github.com/a2abus/a2abus/codec"
	"github.com/a2abus/a2abus/embedded/embeddedtest"
	"github.com/a2abus/a2abus/internal/faults"
	"github.com/nats-io/nats.go"
)

// serveOpts are every consumer's: short member TTL and ack wait, so that a
// dead member's groups and batches move on within seconds.
var serveOpts = []agentbus.ServeOption{
	agentbus.ServeMemberTTL(2 * time.Second),
	agentbus.ServeAckWait(2 * time.Second),
	agentbus.ServeRetryBackoff(time.Millisecond, 5*time.Millisecond),
}

const agentCount = 12

// results are the scenarios' counts, printed as a summary after the run.
var (
	resultsMu sync.Mutex
	results   []result
)

type result struct {
	name   string
	counts faults.Counts
	failed bool
}

func TestMain(m *testing.M) {
	code := m.Run()
	resultsMu.Lock()
	defer resultsMu.Unlock()
	if len(results) > 0 {
		var total faults.Counts
		fmt.Println("fault scenarios:")
		for _, r := range results {
			verdict := "ok"
			if r.failed {
				verdict = "FAIL"
			}
			fmt.Printf("  %-28s %-4s %v\n", r.name, verdict, r.counts)
			total.Acked += r.counts.Acked
			total.Handled += r.counts.Handled
			total.Lost += r.counts.Lost
			total.Duplicates += r.counts.Duplicates
			total.KeyDups += r.counts.KeyDups
		}
		fmt.Printf("faults summary: %d scenarios, %d acknowledged sends, %d handled, %d lost, %d duplicates (%d by idempotency key)\n",
			len(results), total.Acked, total.Handled, total.Lost, total.Duplicates, total.KeyDups)
	}
	os.Exit(code)
}

// run is one scenario: a cluster, its consumers and publishers, a ledger.
type run struct {
	t      *testing.T
	c      *faults.Cluster
	nc     *nats.Conn // for inspection, direct to the servers
	ledger *faults.Ledger
	agents []string

	pubWG   sync.WaitGroup
	pubCtx  context.Context
	pubStop context.CancelFunc
	pubs    []*agentbus.Bus
}

func newRun(t *testing.T) *run {
	t.Helper()
	ctx := ctxFor(t, time.Minute)
	c, err := faults.StartCluster(ctx, 3, t.TempDir(), logger(t))
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
	if err := faults.WaitPlacement(ctx, nc, 3); err != nil {
		t.Fatal(err)
	}
	r := &run{t: t, c: c, nc: nc, ledger: faults.NewLedger(), agents: faults.Agents(agentCount)}
	// Provision the streams once, before the clients race to.
	bus, err := faults.Connect(ctx, c.DirectURLs(0), "provision", logger(t))
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

// consumer starts a consumer connected to node first (direct, so that
// CutClients spares it).
func (r *run) consumer(name string, node int, opts ...agentbus.ServeOption) *faults.Consumer {
	r.t.Helper()
	cons, err := faults.StartConsumer(ctxFor(r.t, 30*time.Second), faults.ConsumerConfig{
		URLs: r.c.DirectURLs(node), Name: name, Agents: r.agents, Ledger: r.ledger, Log: logger(r.t),
		Serve: append(append([]agentbus.ServeOption{}, serveOpts...), opts...),
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
	return cons
}

// publisher connects a publishing bus to node first, through the client
// proxies.
func (r *run) publisher(name string, node int) *agentbus.Bus {
	r.t.Helper()
	bus, err := faults.Connect(ctxFor(r.t, 30*time.Second), r.c.ClientURLs(node), name, logger(r.t),
		agentbus.WithSendTimeout(10*time.Second), agentbus.WithLinger(2*time.Millisecond))
	if err != nil {
		r.t.Fatal(err)
	}
	r.pubs = append(r.pubs, bus)
	r.t.Cleanup(func() { _ = bus.Close(context.Background()) })
	return bus
}

// publish runs a publisher on bus until stopPublishing.
func (r *run) publish(bus *agentbus.Bus, from string, cfg faults.PublisherConfig) {
	if r.pubStop == nil {
		ctx, cancel := context.WithCancel(context.Background())
		r.pubStop = cancel
		r.t.Cleanup(r.stopPublishing)
		r.pubCtx = ctx
	}
	cfg.Bus, cfg.From, cfg.Agents, cfg.Ledger = bus, from, r.agents, r.ledger
	if cfg.Burst == 0 {
		cfg.Burst = 20
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 5 * time.Second
	}
	r.pubWG.Go(func() { faults.Publish(r.pubCtx, cfg) })
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

// finish stops the load, drains, logs the counts and checks them.
// redelivery says why the scenario may handle a key twice beyond the
// publisher's own retries, or is empty when it may not.
func (r *run) finish(redelivery string) faults.Counts {
	r.t.Helper()
	r.stopPublishing()
	ctx := ctxFor(r.t, 90*time.Second)
	drainErr := faults.WaitDrained(ctx, r.nc, r.ledger)
	c := r.ledger.Counts()
	dlq, _ := faults.StreamMsgs(ctx, r.nc, agentbus.DeadLetterStreamName)
	r.t.Logf("%s: %v; %d dead letters", r.t.Name(), c, dlq)
	problems := check(c, redelivery)
	if drainErr != nil {
		problems = append(problems, drainErr.Error())
	}
	if dlq > 0 {
		problems = append(problems, fmt.Sprintf("%d dead letters: every handler succeeds, nothing may be dead-lettered", dlq))
	}
	resultsMu.Lock()
	results = append(results, result{name: strings.TrimPrefix(r.t.Name(), "Test"), counts: c, failed: len(problems) > 0})
	resultsMu.Unlock()
	for _, p := range problems {
		r.t.Error(p)
	}
	return c
}

// check returns what is wrong with a drained run's counts: loss, handled
// envelopes nobody sent, duplicates an idempotency key would not catch,
// and duplicates the scenario does not allow.
func check(c faults.Counts, redelivery string) []string {
	var out []string
	if c.Acked == 0 {
		out = append(out, "no send was acknowledged: the scenario tested nothing")
	}
	if c.Lost > 0 {
		out = append(out, fmt.Sprintf("%d acknowledged sends were never handled", c.Lost))
	}
	if c.Unknown > 0 {
		out = append(out, fmt.Sprintf("%d handled envelopes were never sent", c.Unknown))
	}
	if c.KeyDups > 0 {
		out = append(out, fmt.Sprintf("%d messages were handled under a different envelope ID than they were sent with: deduplicating by env.ID would not catch them", c.KeyDups))
	}
	if other := c.Duplicates - c.RetryDups; other > 0 && redelivery == "" {
		out = append(out, fmt.Sprintf("%d envelopes were handled twice although no consumer or server failed and the publisher did not resend them", other))
	}
	return out
}

// TestCheckCatchesLoss is the harness's own check: a handled key the
// ledger forgets (as if the handler never saw it) must fail the check, as
// must a duplicate where none is allowed.
func TestCheckCatchesLoss(t *testing.T) {
	l := faults.NewLedger()
	k, text := l.Next()
	env := textEnv("a", text)
	env.ID = "id-1"
	l.Sent(k, env.ID, nil)
	l.Handled(env)
	if p := check(l.Counts(), ""); len(p) > 0 {
		t.Fatalf("a clean ledger fails the check: %v", p)
	}
	l.Handled(env)
	if p := check(l.Counts(), ""); len(p) != 1 {
		t.Errorf("a redelivery where none is allowed: problems %v, want one", p)
	}
	if p := check(l.Counts(), "a consumer crashed"); len(p) > 0 {
		t.Errorf("an allowed redelivery fails the check: %v", p)
	}
	env.ID = "id-2"
	l.Handled(env)
	if p := check(l.Counts(), "a consumer crashed"); len(p) != 1 {
		t.Errorf("a duplicate under another ID: problems %v, want one", p)
	}

	l = faults.NewLedger()
	k, text = l.Next()
	env = textEnv("a", text)
	env.ID = "id-1"
	l.Sent(k, env.ID, nil)
	l.Handled(env)
	if !l.Forget() {
		t.Fatal("nothing to forget")
	}
	if p := check(l.Counts(), "any"); len(p) != 1 || !strings.Contains(p[0], "never handled") {
		t.Errorf("a forgotten handling: problems %v, want the loss", p)
	}
}

func textEnv(to, text string) *codec.Envelope {
	return &codec.Envelope{To: to, Message: &codec.Message{Role: codec.RoleUser, Parts: []codec.Part{codec.TextPart(text)}}}
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
