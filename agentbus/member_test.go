package agentbus_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/a2abus/a2abus/agentbus"
	"github.com/a2abus/a2abus/codec"
	"github.com/a2abus/a2abus/embedded"
	"github.com/a2abus/a2abus/embedded/embeddedtest"
	"github.com/a2abus/a2abus/placement"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// The tests of pools and ownership keep a ledger of what was sent and of
// every handler call, and check the bus's promises on it: nothing sent is
// lost; each key's envelopes are first handled in send order (handling one
// again after a crash is at-least-once, handling a later one before an
// earlier one's first handling is not); and no two handler calls of one key
// run at once, on two members or on one. "At once" is decided by the
// ledger's own order of events (every start and end is numbered under one
// mutex), never by comparing clocks, so no check depends on timing.

// ledger records the envelopes sent, by key, and every handler call.
type ledger struct {
	mu      sync.Mutex
	events  int                      // the last event number given to a start or end
	sent    map[string]int           // key -> sequences sent, 1..sent[key], in send order
	work    map[string]time.Duration // envelope ID -> how long its handler works
	calls   []*ledgerCall
	byKey   map[string][]*ledgerCall
	handled map[string]bool          // envelope IDs handled at least once
	dead    map[string]bool          // crashed members: their calls handle nothing
	crashed map[string]chan struct{} // closed when the member crashes
	bad     []string                 // envelopes that reached a handler under another key
}

// ledgerCall is one handler call.
type ledgerCall struct {
	key, id, member string
	seq             int
	start, end      int // event numbers; end is 0 while the call runs
	ok              bool
	err             error // what the handler returned (the context's cause when it ended)
}

func newLedger() *ledger {
	return &ledger{
		sent: map[string]int{}, work: map[string]time.Duration{}, byKey: map[string][]*ledgerCall{},
		handled: map[string]bool{}, dead: map[string]bool{}, crashed: map[string]chan struct{}{},
	}
}

// errCrashed is what the calls of a crashed member end with: they handled
// nothing.
var errCrashed = errors.New("test: the member crashed")

// ledgerKey is the ordering key of an envelope as the ledger names it.
func ledgerKey(agent, conversation string) string { return agent + "/" + conversation }

// envelope returns the next envelope of the key (agent, conversation),
// whose handler is to work for d, and records it as sent: call it in send
// order, and fail the test if the send fails.
func (l *ledger) envelope(agent, conversation string, d time.Duration) *codec.Envelope {
	l.mu.Lock()
	defer l.mu.Unlock()
	key := ledgerKey(agent, conversation)
	l.sent[key]++
	id := fmt.Sprintf("%s#%04d", key, l.sent[key])
	l.work[id] = d
	env := textEnvelope("sender", agent, id, id)
	env.Message.ContextID = conversation
	return env
}

// total returns how many envelopes were sent.
func (l *ledger) total() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, s := range l.sent {
		n += s
	}
	return n
}

// handledCount returns how many of the envelopes sent were handled.
func (l *ledger) handledCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.handled)
}

// handler returns member's handler: it records the call and runs work
// (nil: sleep for the envelope's work time, or until the call's context
// ends or the member crashes).
func (l *ledger) handler(member string, work func(ctx context.Context, env *codec.Envelope) error) agentbus.Handler {
	l.mu.Lock()
	if l.crashed[member] == nil {
		l.crashed[member] = make(chan struct{})
	}
	crashed := l.crashed[member]
	l.mu.Unlock()
	return func(ctx context.Context, env *codec.Envelope) error {
		c, d := l.begin(member, env)
		if c == nil { // a dead process does nothing
			<-ctx.Done()
			return context.Cause(ctx)
		}
		var err error
		if work != nil {
			err = work(ctx, env)
		} else if d > 0 {
			timer := time.NewTimer(d)
			select {
			case <-timer.C:
			case <-ctx.Done():
				err = context.Cause(ctx)
			case <-crashed:
				err = errCrashed
			}
			timer.Stop()
		}
		return l.finish(c, err)
	}
}

func (l *ledger) begin(member string, env *codec.Envelope) (*ledgerCall, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.dead[member] {
		return nil, 0
	}
	key, seqText, _ := strings.Cut(env.ID, "#")
	seq, _ := strconv.Atoi(seqText)
	if want := ledgerKey(env.To, agentbus.Conversation(env)); key != want {
		l.bad = append(l.bad, fmt.Sprintf("%s reached %s's handler with key %s", env.ID, member, want))
	}
	l.events++
	c := &ledgerCall{key: key, id: env.ID, member: member, seq: seq, start: l.events}
	l.calls = append(l.calls, c)
	l.byKey[key] = append(l.byKey[key], c)
	return c, l.work[env.ID]
}

func (l *ledger) finish(c *ledgerCall, err error) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err == nil && l.dead[c.member] {
		err = errCrashed // it returned after its process died: nothing acknowledges it
	}
	l.events++
	c.end, c.ok, c.err = l.events, err == nil, err
	if c.ok {
		l.handled[c.id] = true
	}
	return err
}

// crash makes member's handlers do nothing more: the calls running end
// as failed (whatever they return), and later calls record nothing and
// wait for their context. The caller then cuts the member's connection.
func (l *ledger) crash(member string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.dead[member] {
		l.dead[member] = true
		close(l.crashed[member])
	}
}

// running returns the calls of member that have started and not ended.
func (l *ledger) running(member string) []*ledgerCall {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []*ledgerCall
	for _, c := range l.calls {
		if c.member == member && c.end == 0 {
			out = append(out, c)
		}
	}
	return out
}

// snapshot returns a copy of the calls, for checks after the run.
func (l *ledger) snapshot() []ledgerCall {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]ledgerCall, len(l.calls))
	for i, c := range l.calls {
		out[i] = *c
	}
	return out
}

// waitAll waits until every envelope sent was handled, failing the test
// after within with what is missing and diag().
func (l *ledger) waitAll(t *testing.T, within time.Duration, diag func() string) {
	t.Helper()
	deadline := time.Now().Add(within)
	for l.handledCount() < l.total() {
		if time.Now().After(deadline) {
			l.mu.Lock()
			var missing []string
			for key, n := range l.sent {
				for seq := 1; seq <= n; seq++ {
					if id := fmt.Sprintf("%s#%04d", key, seq); !l.handled[id] {
						missing = append(missing, id)
					}
				}
			}
			l.mu.Unlock()
			slices.Sort(missing)
			extra := ""
			if diag != nil {
				extra = diag()
			}
			t.Fatalf("%d of %d envelopes not handled after %v, e.g. %v\n%s", len(missing), l.total(), within, firstN(missing, 10), extra)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// ledgerStats sums up a run.
type ledgerStats struct {
	calls, ok, failed int
	duplicates        int            // successful calls of an envelope already handled
	byMember          map[string]int // successful calls
}

// check fails the test on every broken promise the ledger shows: an
// envelope sent and never handled, an envelope first handled before an
// earlier one of its key, and two calls of one key that overlapped. A call
// that failed (its context canceled or fenced, its member crashed) handled
// nothing and counts in the overlap check only when strict.
func (l *ledger) check(t *testing.T, strict bool) ledgerStats {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	st := ledgerStats{byMember: map[string]int{}}
	for _, b := range firstN(l.bad, 10) {
		t.Errorf("misrouted: %s", b)
	}
	keys := make([]string, 0, len(l.sent))
	for k := range l.sent {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var lost, disorder, overlaps []string
	for _, key := range keys {
		calls := l.byKey[key] // in start order
		next, seen := 1, map[int]bool{}
		for _, c := range calls {
			st.calls++
			if !c.ok {
				st.failed++
				continue
			}
			st.ok++
			st.byMember[c.member]++
			switch {
			case seen[c.seq]:
				st.duplicates++
			case c.seq != next:
				disorder = append(disorder, fmt.Sprintf("%s: #%d first handled (by %s, event %d) before #%d", key, c.seq, c.member, c.start, next))
			}
			seen[c.seq] = true
			for seen[next] {
				next++
			}
		}
		for seq := 1; seq <= l.sent[key]; seq++ {
			if !seen[seq] {
				lost = append(lost, fmt.Sprintf("%s#%04d", key, seq))
			}
		}
		for i, a := range calls {
			if !a.ok && !strict {
				continue
			}
			for _, b := range calls[i+1:] {
				if !b.ok && !strict {
					continue
				}
				if a.end == 0 || b.start < a.end {
					end := "still running"
					if a.end != 0 {
						end = fmt.Sprintf("ended at event %d", a.end)
					}
					overlaps = append(overlaps, fmt.Sprintf("%s: #%d by %s (events %d.., %s, err %v) and #%d by %s (started at event %d, err %v) ran at once",
						key, a.seq, a.member, a.start, end, a.err, b.seq, b.member, b.start, b.err))
				}
			}
		}
	}
	if len(lost) > 0 {
		t.Errorf("%d envelopes sent and never handled, e.g. %v", len(lost), firstN(lost, 10))
	}
	if len(disorder) > 0 {
		t.Errorf("%d order violations (a key's envelope first handled before an earlier one of the key), e.g.:\n%s", len(disorder), strings.Join(firstN(disorder, 10), "\n"))
	}
	if len(overlaps) > 0 {
		t.Errorf("%d pairs of handler calls of one key ran at once, e.g.:\n%s", len(overlaps), strings.Join(firstN(overlaps, 10), "\n"))
	}
	return st
}

// poolMember is one member of a pool in a test: a bus of its own with the
// ledger's handler for each agent, serving until stop (or the test's end).
type poolMember struct {
	id   string
	bus  *agentbus.Bus
	reg  *prometheus.Registry
	stop func() // leaves gracefully: cancels Serve's context and waits for it to return
}

// startPoolMember connects a bus to srv in-process (or as busOpts say) and
// serves agents as member id, with work as each call's work (nil: the
// envelope's work time).
func startPoolMember(t *testing.T, srv *embedded.Server, l *ledger, id string, agents []string,
	work func(ctx context.Context, env *codec.Envelope) error, busOpts []agentbus.Option, opts ...agentbus.ServeOption) *poolMember {
	t.Helper()
	m := &poolMember{id: id, reg: prometheus.NewRegistry()}
	if busOpts == nil {
		m.bus = connectBus(t, srv, agentbus.WithName(id), agentbus.WithRegisterer(m.reg))
	} else {
		all := append([]agentbus.Option{agentbus.WithName(id), agentbus.WithRegisterer(m.reg),
			agentbus.WithLogger(embeddedtest.Logger(t))}, busOpts...)
		bus, err := agentbus.Connect(testCtx(t, 30*time.Second), all...)
		if err != nil {
			t.Fatalf("connect member %s: %v", id, err)
		}
		t.Cleanup(func() { _ = bus.Close(context.Background()) })
		m.bus = bus
	}
	h := l.handler(id, work)
	for _, a := range agents {
		if err := m.bus.Handle(a, h); err != nil {
			t.Fatal(err)
		}
	}
	m.stop = serve(t, m.bus, append([]agentbus.ServeOption{fastRetries, agentbus.ServeMemberID(id)}, opts...)...)
	return m
}

// poolReports reads the live members of pool from the members bucket
// (keys <pool>.<member>), by member ID.
func poolReports(t *testing.T, bus *agentbus.Bus, pool string) map[string]agentbus.Member {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ms, err := bus.Members(ctx)
	if err != nil {
		t.Fatalf("members: %v", err)
	}
	out := map[string]agentbus.Member{}
	for _, m := range ms {
		if m.Pool == pool {
			out[m.ID] = m
		}
	}
	return out
}

// converged reports whether exactly the members ids are live in pool and
// each reports pulling its share of the partitions as placement.Assign
// gives it (a report describes the heartbeat before it, so a converged
// pool has held its assignment for a heartbeat).
func converged(t *testing.T, bus *agentbus.Bus, pool string, partitions int, ids ...string) bool {
	t.Helper()
	reports := poolReports(t, bus, pool)
	if len(reports) != len(ids) {
		return false
	}
	a, err := placement.Assign(partitions, ids)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		r, ok := reports[id]
		if !ok || r.Partitions != len(a.Groups(id)) {
			return false
		}
	}
	return true
}

// poolConsumers returns the info of the pool's partition consumers,
// <pool>_pNNNN, by name.
func poolConsumers(t *testing.T, nc *nats.Conn, pool string) map[string]*jetstream.ConsumerInfo {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	js, _ := jetstream.New(nc)
	s, err := js.Stream(ctx, agentbus.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*jetstream.ConsumerInfo{}
	list := s.ListConsumers(ctx)
	for info := range list.Info() {
		if p, _, ok := placement.ParseConsumerName(info.Name); ok && p == pool {
			out[info.Name] = info
		}
	}
	if err := list.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// sumMetric returns the sum of the samples of the metric family name in
// reg (counters, gauges, and histograms' sample counts).
func sumMetric(t *testing.T, reg prometheus.Gatherer, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			sum += m.GetGauge().GetValue() + m.GetCounter().GetValue() + float64(m.GetHistogram().GetSampleCount())
		}
	}
	return sum
}

// TestMembersHandOverWithoutLossOrDoubles moves the partitions of a pool
// of 200 agents while envelopes flow (handlers of 2 ms): a fourth member joins, then one of
// the first three leaves gracefully. Nothing may be lost, each agent's
// envelopes are first handled in send order, no key is handled twice at
// once, and an envelope is handled twice only if its batch was redelivered
// (a member's ack or hold could not be confirmed in time: at-least-once),
// which the members report.
func TestMembersHandOverWithoutLossOrDoubles(t *testing.T) {
	const (
		pool       = "handover"
		partitions = 32
	)
	srv := embeddedtest.RunServer(t)
	agents := make([]string, 200)
	for i := range agents {
		agents[i] = fmt.Sprintf("agent-%04d", i)
	}
	l := newLedger()
	sender := connectBus(t, srv)
	declarePool(t, sender, agentbus.PoolConfig{Name: pool, Partitions: partitions}, agents...)
	opts := []agentbus.ServeOption{agentbus.ServePool(pool), agentbus.ServePartitions(partitions), agentbus.ServeMemberTTL(2 * time.Second)}
	members := map[string]*poolMember{}
	for _, id := range []string{"c1", "c2", "c3"} {
		members[id] = startPoolMember(t, srv, l, id, agents, nil, nil, opts...)
	}
	waitFor(t, "c1..c3 to share the partitions", func() bool { return converged(t, sender, pool, partitions, "c1", "c2", "c3") })
	if got := len(poolConsumers(t, sender.Conn(), pool)); got != partitions {
		t.Fatalf("%d consumers of pool %s, want one per partition (%d)", got, pool, partitions)
	}

	ctx := testCtx(t, 2*time.Minute)
	// Each agent's envelopes of a burst are sent one by one, each waiting
	// for the one before to be stored, so that each is a batch of its own
	// and a partition holds runs of consecutive batches of one key: the
	// hand-overs fall between them. Agents are sent to in parallel.
	send := func(burst int) {
		t.Helper()
		var wg sync.WaitGroup
		next := make(chan string)
		for range 16 {
			wg.Go(func() {
				for a := range next {
					for range burst {
						if err := sender.Send(ctx, l.envelope(a, "sender", 2*time.Millisecond)); err != nil {
							t.Error(err)
							break
						}
					}
				}
			})
		}
		for _, a := range agents {
			next <- a
		}
		close(next)
		wg.Wait()
		if t.Failed() {
			t.FailNow()
		}
	}
	send(5)
	members["c4"] = startPoolMember(t, srv, l, "c4", agents, nil, nil, opts...)
	send(5)
	waitFor(t, "c4 to take its share", func() bool { return converged(t, sender, pool, partitions, "c1", "c2", "c3", "c4") })
	send(5)
	members["c3"].stop() // c3 leaves: its partitions move to the others
	send(5)
	l.waitAll(t, 2*time.Minute, nil)

	a3, _ := placement.Assign(partitions, []string{"c1", "c2", "c3"})
	a4, _ := placement.Assign(partitions, []string{"c1", "c2", "c3", "c4"})
	st := l.check(t, false)
	redelivered := 0.0
	for _, m := range members {
		redelivered += sumMetric(t, m.reg, "a2abus_receive_redelivered_batches_total")
	}
	t.Logf("%d envelopes, %d handler calls by member %v; when c4 joined %d of %d partitions moved (ideal 1/4); %d handled again, %v batches redelivered",
		l.total(), st.calls, st.byMember, len(placement.Moved(a3, a4)), partitions, st.duplicates, redelivered)
	if st.duplicates > 0 && redelivered == 0 {
		t.Errorf("%d envelopes handled more than once, yet no member received a redelivered batch", st.duplicates)
	}
	waitFor(t, "c3's member key to be gone", func() bool { _, ok := poolReports(t, sender, pool)["c3"]; return !ok })
	waitFor(t, "every partition consumer of the pool to have nothing pending", func() bool {
		for _, info := range poolConsumers(t, sender.Conn(), pool) {
			if info.NumPending > 0 || info.NumAckPending > 0 {
				return false
			}
		}
		return true
	})
}

// TestMemberCrashPartitionsMove kills a member (its connection) while its
// handlers run: its member key expires after the TTL, the survivor takes
// its partitions, and the batches it never acknowledged are redelivered
// and handled by the survivor. The dead member's handlers were canceled as
// fenced, having handled nothing.
func TestMemberCrashPartitionsMove(t *testing.T) {
	const (
		pool       = "crash"
		partitions = 8
	)
	srv := embeddedtest.RunServer(t)
	l := newLedger()
	agents := []string{"a0", "a1", "a2", "a3", "a4", "a5", "a6", "a7"}
	sender := connectBus(t, srv)
	declarePool(t, sender, agentbus.PoolConfig{Name: pool, Partitions: partitions}, agents...)
	opts := []agentbus.ServeOption{agentbus.ServePool(pool), agentbus.ServePartitions(partitions),
		agentbus.ServeMemberTTL(2 * time.Second), agentbus.ServeAckWait(2 * time.Second)}

	hang := func(ctx context.Context, _ *codec.Envelope) error { // a hung, then dead, process
		<-ctx.Done()
		return context.Cause(ctx)
	}
	doomed := startPoolMember(t, srv, l, "doomed", agents, hang, nil, opts...)
	waitFor(t, "doomed to pull every partition", func() bool { return converged(t, sender, pool, partitions, "doomed") })
	ctx := testCtx(t, 2*time.Minute)
	for _, a := range agents {
		if err := sender.Send(ctx, l.envelope(a, "s", 0)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "doomed to start handling", func() bool { return len(l.running("doomed")) > 0 })
	doomed.bus.Conn().Close() // the process dies: no acks, no heartbeats

	startPoolMember(t, srv, l, "survivor", agents, nil, nil, opts...)
	l.waitAll(t, time.Minute, func() string { return fmt.Sprintf("members: %v", poolReports(t, sender, pool)) })
	waitFor(t, "doomed's member key to expire and the survivor to pull every partition", func() bool {
		return converged(t, sender, pool, partitions, "survivor")
	})
	l.check(t, false)
	for _, c := range l.snapshot() {
		switch {
		case c.ok && c.member != "survivor":
			t.Errorf("%s handled by %s", c.id, c.member)
		case c.member == "doomed" && !errors.Is(c.err, agentbus.ErrFenced):
			t.Errorf("doomed's call on %s ended with %v (end event %d), want ErrFenced: its holds could not be renewed", c.id, c.err, c.end)
		}
	}
	if n := sumMetric(t, doomed.reg, "a2abus_receive_fenced_batches_total"); n == 0 {
		t.Error("doomed counted no fenced batch")
	}
}

// TestMemberMetrics checks the receive metrics of a member: the partitions
// it pulls, their consumers' pending counts, the envelopes handled per
// partition, the batches and handler times.
func TestMemberMetrics(t *testing.T) {
	srv := embeddedtest.RunServer(t)
	reg := prometheus.NewPedanticRegistry()
	bus := connectBus(t, srv, agentbus.WithRegisterer(reg))
	if err := bus.Handle("a", func(context.Context, *codec.Envelope) error { return nil }); err != nil {
		t.Fatal(err)
	}
	// One handler: Serve's pool is named after it.
	pool := declarePool(t, bus, agentbus.PoolConfig{Name: "a", Partitions: 8}, "a")
	serve(t, bus, fastRetries, agentbus.ServePartitions(8), agentbus.ServeMemberTTL(time.Second), agentbus.ServeAckWait(time.Second))
	ctx := testCtx(t, 30*time.Second)
	if err := bus.Send(ctx, textEnvelope("s", "a", "m1", "x")); err != nil {
		t.Fatal(err)
	}
	series := func(name string) int {
		n, err := testutil.GatherAndCount(reg, name)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	waitFor(t, "the metrics", func() bool {
		return sumMetric(t, reg, "a2abus_receive_partitions_owned") == 8 && sumMetric(t, reg, "a2abus_receive_handled_total") == 1 &&
			sumMetric(t, reg, "a2abus_receive_partition_handled_total") == 1 &&
			sumMetric(t, reg, "a2abus_receive_batch_envelopes") == 1 && sumMetric(t, reg, "a2abus_receive_handler_seconds") == 1 &&
			series("a2abus_receive_partition_pending") == 8 && series("a2abus_receive_partition_ack_pending") == 8 &&
			series("a2abus_receive_partition_redelivered") == 8
	})
	// One handled series per partition pulled, and the message counted in
	// its own partition's.
	consumer, _ := pool.ConsumerName(pool.Partition("a", "s"))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	perPartition := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "a2abus_receive_partition_handled_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			perPartition[m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
		}
	}
	if len(perPartition) != 8 || perPartition[consumer] != 1 {
		t.Errorf("handled by partition %v, want 8 partitions and 1 in %s", perPartition, consumer)
	}
	for name := range perPartition {
		if p, _, ok := placement.ParseConsumerName(name); !ok || p != "a" {
			t.Errorf("series of consumer %q, not one of pool a's", name)
		}
	}
	if n := sumMetric(t, reg, "a2abus_receive_fenced_batches_total"); n != 0 || series("a2abus_receive_fenced_batches_total") != 1 {
		t.Errorf("fenced batches: %v in %d series, want 0 in one", n, series("a2abus_receive_fenced_batches_total"))
	}
	if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) > 0 {
		t.Fatalf("lint: %v %v", problems, err)
	}
}

// Handler times as LLM agents' calls take them.
func fastCall(rng *rand.Rand) time.Duration { // 50-300 ms
	return 50*time.Millisecond + time.Duration(rng.Int64N(int64(250*time.Millisecond)))
}

func slowCall(rng *rand.Rand) time.Duration { // 1-4 s
	return time.Second + time.Duration(rng.Int64N(int64(3*time.Second)))
}

func longCall(rng *rand.Rand) time.Duration { // 8-15 s
	return 8*time.Second + time.Duration(rng.Int64N(int64(7*time.Second)))
}

// TestPoolOwnershipUnderLLMHandlerTimes is the scenario of issue 13 on one
// server: 4 members of one pool, 40 agents with 3 conversations each,
// handler times like LLM calls (50-300 ms, 1-4 s, and two of 8-15 s), the
// default member TTL and ack wait. While handlers run a member joins, one
// leaves gracefully, another joins and one is killed (its connection
// closed, its handlers made to do nothing more). No key may be handled by
// two members at once, each key's envelopes are first handled in send
// order (envelopes handled again after the crash are at-least-once), and
// nothing is lost.
func TestPoolOwnershipUnderLLMHandlerTimes(t *testing.T) {
	const (
		pool       = "llm"
		partitions = 16
		nAgents    = 40
		convs      = 3
		rounds     = 3 // envelopes per key
	)
	start := time.Now()
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 13))
	srv := embeddedtest.RunServer(t)
	l := newLedger()
	var agents []string
	for i := range nAgents {
		agents = append(agents, fmt.Sprintf("agent-%02d", i))
	}
	sender := connectBus(t, srv)
	place := declarePool(t, sender, agentbus.PoolConfig{Name: pool, Partitions: partitions}, agents...)
	// Each agent's conversations are picked so that every partition holds
	// 7 or 8 of the 120 keys: the run lasts as long as its busiest
	// partition's work, and hashing 120 keys leaves some partitions with
	// twice the mean.
	conversations := map[string][]string{}
	load := make([]int, partitions)
	limit := (nAgents*convs + partitions - 1) / partitions
	for _, a := range agents {
		for c := 0; len(conversations[a]) < convs; c++ {
			conv := fmt.Sprintf("conv-%d", c)
			if p := place.Partition(a, conv); load[p] < limit {
				load[p]++
				conversations[a] = append(conversations[a], conv)
			}
		}
	}
	opts := []agentbus.ServeOption{agentbus.ServePool(pool), agentbus.ServePartitions(partitions)} // default TTL and ack wait
	members := map[string]*poolMember{}
	join := func(id string) { members[id] = startPoolMember(t, srv, l, id, agents, nil, nil, opts...) }
	for _, id := range []string{"m1", "m2", "m3", "m4"} {
		join(id)
	}
	waitFor(t, "4 members", func() bool { return len(poolReports(t, sender, pool)) == 4 })

	// Handler times: in each partition, whose batches run one after
	// another, a quarter of the envelopes take 1-4 s and the others
	// 50-300 ms, so that no partition draws far more slow calls than the
	// mean (the run lasts as long as the busiest partition's work); two
	// envelopes of the first two rounds take 8-15 s.
	type slot struct {
		round       int
		agent, conv string
	}
	work := map[slot]time.Duration{}
	byPartition := map[int][]slot{}
	var early []slot
	for r := range rounds {
		for _, a := range agents {
			for _, c := range conversations[a] {
				s := slot{r, a, c}
				byPartition[place.Partition(a, c)] = append(byPartition[place.Partition(a, c)], s)
				if r < 2 {
					early = append(early, s)
				}
			}
		}
	}
	for p := range partitions { // in order: a seed gives one run
		slots := byPartition[p]
		rng.Shuffle(len(slots), func(i, j int) { slots[i], slots[j] = slots[j], slots[i] })
		for i, s := range slots {
			if i < (len(slots)+2)/4 {
				work[s] = slowCall(rng)
			} else {
				work[s] = fastCall(rng)
			}
		}
	}
	for _, i := range rng.Perm(len(early))[:2] {
		work[early[i]] = longCall(rng)
	}
	ctx := testCtx(t, 3*time.Minute)
	round := 0
	send := func() {
		t.Helper()
		for _, a := range agents {
			for _, conv := range conversations[a] {
				if _, err := sender.SendAsync(ctx, l.envelope(a, conv, work[slot{round, a, conv}])); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := sender.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		round++
	}
	pause := func() { time.Sleep(1500 * time.Millisecond) }

	send()
	join("m5")
	pause()
	send()
	left := make(chan struct{})
	m1 := members["m1"]
	var leaveTook time.Duration
	go func() { // m1 leaves gracefully: its handlers finish (the drain time is 30 s)
		defer close(left)
		began := time.Now()
		m1.stop()
		leaveTook = time.Since(began)
	}()
	pause()
	join("m6")
	send()
	// Kill m2 while it handles something.
	for deadline := time.Now().Add(10 * time.Second); len(l.running("m2")) == 0 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	cut := len(l.running("m2"))
	l.crash("m2")
	members["m2"].bus.Conn().Close()
	killed := time.Since(start)

	diag := func() string {
		var b strings.Builder
		fmt.Fprintf(&b, "members: ")
		for id, r := range poolReports(t, sender, pool) {
			fmt.Fprintf(&b, "%s (%d partitions) ", id, r.Partitions)
		}
		for name, info := range poolConsumers(t, sender.Conn(), pool) {
			fmt.Fprintf(&b, "\n%s: pending %d, ack pending %d, redelivered %d, waiting pulls %d", name,
				info.NumPending, info.NumAckPending, info.NumRedelivered, info.NumWaiting)
		}
		return b.String()
	}
	l.waitAll(t, 2*time.Minute, diag)
	handledAt := time.Since(start)
	<-left
	st := l.check(t, false)
	fenced, redelivered := 0.0, 0.0
	for _, m := range members {
		fenced += sumMetric(t, m.reg, "a2abus_receive_fenced_batches_total")
		redelivered += sumMetric(t, m.reg, "a2abus_receive_redelivered_batches_total")
	}
	t.Logf("%d envelopes over %d keys: %d handler calls (%d failed: canceled, fenced or cut by the crash), %d envelopes handled again; "+
		"m1's graceful leave took %v; m2 killed at %v with %d calls running; all handled at %v; %v batches fenced, %v redelivered; successful calls by member %v",
		l.total(), len(l.sent), st.calls, st.failed, st.duplicates, leaveTook.Round(time.Millisecond), killed.Round(time.Millisecond), cut,
		handledAt.Round(time.Millisecond), fenced, redelivered, st.byMember)
	waitFor(t, "the members left to be m3..m6", func() bool {
		r := poolReports(t, sender, pool)
		_, m1 := r["m1"]
		_, m2 := r["m2"]
		return len(r) == 4 && !m1 && !m2
	})
}

// TestHeterogeneousPoolsAcrossRestarts runs two processes on one server:
// one hosts echo and worker in pool "agentd" (as agentd --demo does), the
// other serves only its own agent solo (its pool is named after it). Both
// are restarted (Serve stopped and started again) several times while a
// sender sends and asks all three agents. Each envelope must be handled by
// the process that hosts its agent and only there: no handler failures (an
// envelope given to a process without its handler fails with
// ErrNoHandler), no dead letters, every request answered by its host, and
// nothing lost or out of order.
func TestHeterogeneousPoolsAcrossRestarts(t *testing.T) {
	srv := embeddedtest.RunServer(t)
	l := newLedger()
	host := map[string]string{"echo": "agentd", "worker": "agentd", "solo": "solo"}
	type process struct {
		bus  *agentbus.Bus
		reg  *prometheus.Registry
		opts []agentbus.ServeOption
		stop func()
	}
	procs := map[string]*process{
		"agentd": {opts: []agentbus.ServeOption{agentbus.ServePool("agentd")}},
		"solo":   {}, // the default pool: the agent's ID
	}
	for name, p := range procs {
		p.reg = prometheus.NewRegistry()
		p.bus = connectBus(t, srv, agentbus.WithName(name), agentbus.WithRegisterer(p.reg))
		p.opts = append(p.opts, fastRetries, agentbus.ServePartitions(8), agentbus.ServeMemberTTL(2*time.Second),
			agentbus.ServeMemberID(name+"-1"))
		record := l.handler(name, nil)
		bus := p.bus
		for agent, h := range host {
			if h != name {
				continue
			}
			if err := bus.Handle(agent, func(ctx context.Context, env *codec.Envelope) error {
				if err := record(ctx, env); err != nil {
					return err
				}
				if env.ReplyTo == "" {
					return nil
				}
				return bus.Reply(ctx, env, &codec.Envelope{Kind: "message", Message: &codec.Message{
					MessageID: "r-" + env.ID, Role: codec.RoleAgent, Parts: []codec.Part{codec.TextPart(name)}}})
			}); err != nil {
				t.Fatal(err)
			}
		}
	}
	sender := connectBus(t, srv)
	declarePool(t, sender, agentbus.PoolConfig{Name: "agentd", Partitions: 8}, "echo", "worker")
	declarePool(t, sender, agentbus.PoolConfig{Name: "solo", Partitions: 8}, "solo")
	for _, p := range procs {
		p.stop = serve(t, p.bus, p.opts...)
	}

	var (
		stop     atomic.Bool
		wg       sync.WaitGroup
		requests atomic.Int64
	)
	ctx := testCtx(t, 2*time.Minute)
	agents := []string{"echo", "worker", "solo"}
	wg.Go(func() {
		for i := 0; !stop.Load(); i++ {
			agent := agents[i%len(agents)]
			env := l.envelope(agent, fmt.Sprintf("c%d", i/len(agents)%4), 2*time.Millisecond)
			if i%25 == 0 {
				rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
				reply, err := sender.Request(rctx, env, agentbus.Durable)
				cancel()
				if err != nil {
					t.Errorf("request %s: %v", env.ID, err)
					return
				}
				if got := reply.Message.Text(); got != host[agent] {
					t.Errorf("request %s to %s answered by %s, want %s", env.ID, agent, got, host[agent])
				}
				requests.Add(1)
				continue
			}
			if _, err := sender.SendAsync(ctx, env); err != nil {
				t.Errorf("send %s: %v", env.ID, err)
				return
			}
			time.Sleep(2 * time.Millisecond)
		}
	})
	for range 3 {
		for _, name := range []string{"agentd", "solo"} {
			time.Sleep(400 * time.Millisecond)
			p := procs[name]
			p.stop()
			time.Sleep(200 * time.Millisecond)
			p.stop = serve(t, p.bus, p.opts...)
		}
	}
	time.Sleep(400 * time.Millisecond)
	stop.Store(true)
	wg.Wait()
	if err := sender.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	l.waitAll(t, time.Minute, nil)
	st := l.check(t, false)
	for _, c := range l.snapshot() {
		if c.ok && c.member != host[strings.Split(c.key, "/")[0]] {
			t.Errorf("%s handled by %s", c.id, c.member)
		}
	}
	for name, p := range procs {
		if n := sumMetric(t, p.reg, "a2abus_receive_handler_failures_total"); n > 0 {
			t.Errorf("%s: %v handler failures (an envelope of an agent it does not host fails with ErrNoHandler)", name, n)
		}
	}
	if n := streamMsgs(t, sender.Conn(), agentbus.DeadLetterStreamName); n > 0 {
		t.Errorf("%d dead letters", n)
	}
	pools, err := sender.Pools(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]string{}
	for c, as := range pools {
		got[c.Name] = as
	}
	if !slices.Equal(got["agentd"], []string{"echo", "worker"}) || !slices.Equal(got["solo"], []string{"solo"}) || len(got) != 2 {
		t.Errorf("pool registry: %v", got)
	}
	t.Logf("%d envelopes (%d of them requests), %d handled again, by process %v", l.total(), requests.Load(), st.duplicates, st.byMember)
}

// TestBusyAgentSpreadsOverMembers sends one agent's envelopes in 64
// conversations to a pool of 3 members: the conversations spread over the
// pool's partitions, so more than one member handles the agent, and each
// conversation is still handled in order, once at a time.
func TestBusyAgentSpreadsOverMembers(t *testing.T) {
	const (
		pool       = "busy"
		partitions = 16
		convs      = 64
		perConv    = 5
	)
	srv := embeddedtest.RunServer(t)
	l := newLedger()
	sender := connectBus(t, srv)
	p := declarePool(t, sender, agentbus.PoolConfig{Name: pool, Partitions: partitions}, "planner")
	ids := []string{"m1", "m2", "m3"}
	for _, id := range ids {
		startPoolMember(t, srv, l, id, []string{"planner"}, nil, nil, agentbus.ServePool(pool), agentbus.ServePartitions(partitions),
			agentbus.ServeMemberTTL(2*time.Second), agentbus.ServeWorkers(4))
	}
	waitFor(t, "the 3 members to share the partitions", func() bool { return converged(t, sender, pool, partitions, ids...) })
	ctx := testCtx(t, time.Minute)
	for range perConv {
		for c := range convs {
			if _, err := sender.SendAsync(ctx, l.envelope("planner", fmt.Sprintf("conv-%02d", c), 20*time.Millisecond)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := sender.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	l.waitAll(t, time.Minute, nil)
	st := l.check(t, false)
	a, _ := placement.Assign(partitions, ids)
	want := map[string]int{}
	for c := range convs {
		want[a.Owner(p.Partition("planner", fmt.Sprintf("conv-%02d", c)))] += perConv
	}
	t.Logf("envelopes handled by member %v; the assignment gives %v", st.byMember, want)
	if len(st.byMember) < 2 {
		t.Errorf("one agent's %d conversations were all handled by %v: they did not spread over the pool's members", convs, st.byMember)
	}
}

// stallProxy forwards TCP connections to a NATS server, and stalls them
// on demand: frozen, no byte passes either way while the connections stay
// open (a network that drops everything, or a process paused); or, from
// client to server, the publishes to subjects under a prefix are dropped
// (a KV write that never arrives, such as a member key's renewal).
type stallProxy struct {
	ln     net.Listener
	target string
	closed chan struct{}

	mu    sync.Mutex
	thaw  chan struct{} // closed while not frozen
	drop  string
	shut  bool
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

func newStallProxy(t *testing.T, target string) *stallProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &stallProxy{ln: ln, target: target, closed: make(chan struct{}), thaw: make(chan struct{}), conns: map[net.Conn]struct{}{}}
	close(p.thaw)
	p.wg.Go(p.accept)
	t.Cleanup(p.close)
	return p
}

func (p *stallProxy) url() string { return "nats://" + p.ln.Addr().String() }

// freeze stops every byte; thaw lets them through again.
func (p *stallProxy) freeze() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.thaw = make(chan struct{})
}

func (p *stallProxy) unfreeze() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.thaw:
	default:
		close(p.thaw)
	}
}

// dropPublishes drops the client's publishes to subjects starting with
// prefix ("" drops none).
func (p *stallProxy) dropPublishes(prefix string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.drop = prefix
}

func (p *stallProxy) close() {
	p.mu.Lock()
	p.shut = true
	conns := p.conns
	p.mu.Unlock()
	_ = p.ln.Close()
	close(p.closed)
	for c := range conns {
		_ = c.Close()
	}
	p.wg.Wait()
}

func (p *stallProxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = c.Close()
			continue
		}
		p.mu.Lock()
		if p.shut {
			p.mu.Unlock()
			_, _ = c.Close(), s.Close()
			return
		}
		p.conns[c], p.conns[s] = struct{}{}, struct{}{}
		p.mu.Unlock()
		closeBoth := func() { _ = c.Close(); _ = s.Close() }
		p.wg.Go(func() { defer closeBoth(); p.clientToServer(s, c) })
		p.wg.Go(func() { defer closeBoth(); p.serverToClient(c, s) })
	}
}

// pass waits while the proxy is frozen; false once it is closed.
func (p *stallProxy) pass() bool {
	p.mu.Lock()
	thaw := p.thaw
	p.mu.Unlock()
	select {
	case <-thaw:
		return true
	case <-p.closed:
		return false
	}
}

func (p *stallProxy) serverToClient(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && (!p.pass() || proxyWrite(dst, buf[:n]) != nil) {
			return
		}
		if err != nil {
			return
		}
	}
}

// clientToServer forwards the client's protocol operations one by one,
// dropping the publishes p.drop names.
func (p *stallProxy) clientToServer(dst, src net.Conn) {
	r := bufio.NewReaderSize(src, 64<<10)
	for {
		line, err := r.ReadBytes('\n')
		if err != nil {
			return
		}
		var payload []byte
		if bytes.HasPrefix(line, []byte("PUB ")) || bytes.HasPrefix(line, []byte("HPUB ")) {
			f := strings.Fields(string(line))
			size, err := strconv.Atoi(f[len(f)-1])
			if err != nil || len(f) < 3 {
				return
			}
			payload = make([]byte, size+2) // and its CRLF
			if _, err := io.ReadFull(r, payload); err != nil {
				return
			}
			p.mu.Lock()
			drop := p.drop
			p.mu.Unlock()
			if drop != "" && strings.HasPrefix(f[1], drop) {
				continue
			}
		}
		if !p.pass() || proxyWrite(dst, line) != nil || proxyWrite(dst, payload) != nil {
			return
		}
	}
}

func proxyWrite(w io.Writer, b []byte) error {
	_, err := w.Write(b)
	return err
}

// TestMemberStalledPastTTL stalls a member past its member TTL while one
// of its handlers runs, so that the other members of its pool take its
// partitions and pull them while its batch is out. The batch must not be
// handled by another member before the stalled member's handler ended:
//   - cut off (its connection frozen: neither its member key nor its hold
//     on the batch can be renewed), its handler is canceled with
//     ErrFenced before the server may redeliver the batch to another;
//   - with only its member key's renewals lost (a KV stall), it keeps its
//     hold, its handler runs to its end and acknowledges, and only then
//     does the partition's next batch go out.
//
// Here the overlap check counts failed calls too: a fenced call must have
// returned before another member starts on its key.
func TestMemberStalledPastTTL(t *testing.T) {
	t.Run("cut off", func(t *testing.T) { testStalledMember(t, false) })
	t.Run("member key not renewed", func(t *testing.T) { testStalledMember(t, true) })
}

func testStalledMember(t *testing.T, kvOnly bool) {
	const (
		pool       = "stall"
		partitions = 4
		agent      = "slow"
		convs      = 8
	)
	srv := embeddedtest.RunServer(t)
	l := newLedger()
	sender := connectBus(t, srv)
	p := declarePool(t, sender, agentbus.PoolConfig{Name: pool, Partitions: partitions}, agent)
	ids := []string{"m-a", "m-b", "stalled"}
	a, _ := placement.Assign(partitions, ids)
	var stalledKeys []string
	stalledParts := map[int]bool{}
	for c := range convs {
		if part := p.Partition(agent, fmt.Sprintf("c%d", c)); a.Owner(part) == "stalled" {
			stalledKeys = append(stalledKeys, ledgerKey(agent, fmt.Sprintf("c%d", c)))
			stalledParts[part] = true
		}
	}
	if len(stalledKeys) == 0 {
		t.Fatalf("no conversation of %d falls in a partition of the stalled member: change the names", convs)
	}

	opts := []agentbus.ServeOption{agentbus.ServePool(pool), agentbus.ServePartitions(partitions),
		agentbus.ServeMemberTTL(2 * time.Second), agentbus.ServeDrainTimeout(2 * time.Second)} // the default ack wait, 5 s
	for _, id := range ids[:2] {
		startPoolMember(t, srv, l, id, []string{agent}, nil, nil, opts...)
	}
	// The stalled member's handlers run until released (or canceled).
	release := make(chan struct{})
	long := func(ctx context.Context, _ *codec.Envelope) error {
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
	proxy := newStallProxy(t, strings.TrimPrefix(srv.ClientURL(), "nats://"))
	stalled := startPoolMember(t, srv, l, "stalled", []string{agent}, long, []agentbus.Option{agentbus.WithURL(proxy.url())}, opts...)
	waitFor(t, "the 3 members to share the partitions", func() bool { return converged(t, sender, pool, partitions, ids...) })

	ctx := testCtx(t, 2*time.Minute)
	send := func() {
		t.Helper()
		for c := range convs {
			if _, err := sender.SendAsync(ctx, l.envelope(agent, fmt.Sprintf("c%d", c), 20*time.Millisecond)); err != nil {
				t.Fatal(err)
			}
		}
		if err := sender.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	send()
	// Each of the stalled member's partitions has a batch out, held by a
	// handler that runs until released (unless, in the moment the pool
	// took to settle, another member got the partition's first batch).
	waitFor(t, "the stalled member to run a handler in each of its partitions", func() bool {
		busy := map[int]bool{}
		running := 0
		for _, c := range l.snapshot() {
			part := p.Partition(agent, strings.TrimPrefix(c.key, agent+"/"))
			if c.member == "stalled" && c.end == 0 {
				running++
				busy[part] = true
			} else if c.member != "stalled" && stalledParts[part] {
				busy[part] = true
			}
		}
		return running > 0 && len(busy) == len(stalledParts)
	})
	before := map[int]bool{} // the start events of its calls running when it stalls
	for _, c := range l.running("stalled") {
		before[c.start] = true
	}
	if kvOnly {
		proxy.dropPublishes("$KV." + agentbus.MembersBucket + ".")
	} else {
		proxy.freeze()
	}
	send() // the next envelope of every key, behind the stalled batch for the stalled member's keys
	waitFor(t, "the others to take the stalled member's partitions", func() bool { return converged(t, sender, pool, partitions, "m-a", "m-b") })
	if kvOnly {
		// The stalled member's batch is out while the others pull its
		// partitions: let them pull for longer than an ack wait, then let
		// the handlers end.
		time.Sleep(agentbus.DefaultAckWait * 3 / 2)
		close(release)
	}
	l.waitAll(t, time.Minute, nil)
	if kvOnly {
		proxy.dropPublishes("")
	} else {
		proxy.unfreeze()
		close(release)
	}
	stalled.stop()
	l.check(t, true)
	for _, me := range l.snapshot() {
		if !before[me.start] {
			continue
		}
		switch {
		case kvOnly && !me.ok:
			t.Errorf("the stalled member's call on %s ended with %v; it kept its hold and should have finished", me.id, me.err)
		case !kvOnly && !errors.Is(me.err, agentbus.ErrFenced):
			t.Errorf("the cut-off member's call on %s ended with %v (ok %v), want ErrFenced", me.id, me.err, me.ok)
		}
	}
	fenced := sumMetric(t, stalled.reg, "a2abus_receive_fenced_batches_total")
	t.Logf("stalled member's keys %v; its calls before the stall: %d; batches it fenced: %v", stalledKeys, len(before), fenced)
	if kvOnly && fenced > 0 {
		t.Errorf("the member whose key was not renewed fenced %v batches; its holds were renewable", fenced)
	}
}
