package agentbus_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/a2abus/a2abus/agentbus"
	"github.com/a2abus/a2abus/codec"
	"github.com/a2abus/a2abus/embedded/embeddedtest"
	"github.com/a2abus/a2abus/placement"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// clusterPartitions keeps the number of durable consumers (each an R3
// raft group) small, so that a 3-node cluster on a 2-core machine elects
// their leaders quickly: the pools of these tests have this many
// partitions.
const clusterPartitions = 8

// clusterOnLeader starts a 3-node cluster, provisions the streams with 3
// replicas, and returns the cluster, a connection for inspecting it, and
// the index of the A2A stream's leader.
func clusterOnLeader(t *testing.T) (c *embeddedtest.TestCluster, nc *nats.Conn, leader int) {
	t.Helper()
	c = embeddedtest.Cluster(t, 3)
	nc = c.Connect()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	embeddedtest.WaitPlacement(t, nc, 3)
	// A minute, as for connecting a bus: a create that a just-elected meta
	// leader drops is asked again only after one whole try (10 s), and a
	// 2-core machine running the race suite can need a second try.
	if err := agentbus.EnsureStreams(testCtx(t, time.Minute), js, agentbus.StreamConfig{Replicas: 3}); err != nil {
		t.Fatalf("ensure streams: %v", err)
	}
	c.WaitStreamLeader(agentbus.DeadLetterStreamName)
	return c, nc, c.WaitStreamLeader(agentbus.StreamName)
}

// connectClusterBus connects a bus over TCP to c, to node first before the
// others (no randomizing), so that a test can put its buses on the node it
// is going to stop and make them reconnect.
func connectClusterBus(t *testing.T, c *embeddedtest.TestCluster, first int, name string, opts ...agentbus.Option) *agentbus.Bus {
	t.Helper()
	urls := strings.Split(c.ClientURLs(), ",")
	ordered := []string{urls[first]}
	for i, u := range urls {
		if i != first {
			ordered = append(ordered, u)
		}
	}
	all := append([]agentbus.Option{
		agentbus.WithURL(strings.Join(ordered, ",")),
		agentbus.WithNATSOptions(nats.DontRandomize()),
		agentbus.WithEnsureStreams(agentbus.StreamConfig{Replicas: 3}),
		agentbus.WithLogger(embeddedtest.Logger(t)),
		agentbus.WithName(name),
	}, opts...)
	bus, err := agentbus.Connect(testCtx(t, 30*time.Second), all...)
	if err != nil {
		t.Fatalf("connect bus %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = bus.Close(ctx)
	})
	return bus
}

// clusterStreamMsgs returns the messages in stream, asking whoever leads
// it now; ok is false while that fails (during an election).
func clusterStreamMsgs(nc *nats.Conn, stream string) (n uint64, ok bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	js, _ := jetstream.New(nc)
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return 0, false
	}
	info, err := s.Info(ctx)
	if err != nil {
		return 0, false
	}
	return info.State.Msgs, true
}

// clusterConsumerState describes the durable consumer of the partition of
// the key (agent, conversation) in pool, for failure messages.
func clusterConsumerState(nc *nats.Conn, pool *placement.Pool, agent, conversation string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	name, err := pool.ConsumerName(pool.Partition(agent, conversation))
	if err != nil {
		return err.Error()
	}
	js, _ := jetstream.New(nc)
	cons, err := js.Consumer(ctx, agentbus.StreamName, name)
	if err != nil {
		return fmt.Sprintf("consumer %s: %v", name, err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return fmt.Sprintf("consumer %s: %v", name, err)
	}
	leader := ""
	if info.Cluster != nil {
		leader = info.Cluster.Leader
	}
	return fmt.Sprintf("consumer %s (leader %q): pending %d, ack pending %d, redelivered %d, waiting pulls %d, delivered %d, ack floor %d",
		name, leader, info.NumPending, info.NumAckPending, info.NumRedelivered, info.NumWaiting,
		info.Delivered.Stream, info.AckFloor.Stream)
}

func connState(nc *nats.Conn) string {
	return fmt.Sprintf("%s to %s, %d reconnects", nc.Status(), nc.ConnectedUrlRedacted(), nc.Stats().Reconnects)
}

// waitCount polls count until it reaches n, and fails the test with what
// and diag() when within passes first.
func waitCount(t *testing.T, what string, n int, within time.Duration, count func() int, diag func() string) {
	t.Helper()
	deadline := time.Now().Add(within)
	for count() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d of %d after %v\n%s", what, count(), n, within, diag())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// watchStalls polls the partition consumers of pool until stop is called,
// and reports each partition that sat idle with work for idle or longer:
// messages pending, none delivered and unacknowledged, and no pull request
// waiting. Nothing then pulls the partition; a healthy Serve has a pull
// waiting within milliseconds.
func watchStalls(nc *nats.Conn, pool *placement.Pool, idle time.Duration) (stop func() []string) {
	js, _ := jetstream.New(nc)
	done := make(chan struct{})
	var (
		wg     sync.WaitGroup
		stalls []string
	)
	wg.Go(func() {
		since := map[string]time.Time{} // consumer -> idle with work since
		reported := map[string]bool{}
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			for n := range pool.Partitions() {
				name, _ := pool.ConsumerName(n)
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				cons, err := js.Consumer(ctx, agentbus.StreamName, name)
				cancel()
				if err != nil {
					delete(since, name) // not created yet, or no leader now
					continue
				}
				info := cons.CachedInfo()
				if info.NumPending == 0 || info.NumAckPending > 0 || info.NumWaiting > 0 {
					delete(since, name)
					continue
				}
				if since[name].IsZero() {
					since[name] = time.Now()
				}
				if d := time.Since(since[name]); d >= idle && !reported[name] {
					reported[name] = true
					leader := ""
					if info.Cluster != nil {
						leader = info.Cluster.Leader
					}
					stalls = append(stalls, fmt.Sprintf("%s (leader %q): %d messages pending, none ack pending, no pull waiting, for %v",
						name, leader, info.NumPending, d.Round(time.Millisecond)))
				}
			}
		}
	})
	return sync.OnceValue(func() []string {
		close(done)
		wg.Wait()
		return stalls
	})
}

// stallHint explains the stalls watchStalls has seen so far.
const stallHint = "no member pulled these partitions although Serve owned them. Seen so far: a partition's first pull, sent " +
	"right after Serve created its R3 consumer and before that consumer had a leader, got \"no responders\"; nats.go " +
	"then pulls again only after two missed heartbeats (30 s with the default 30 s pull expiry)"

// requestOutcome is how one durable request ended.
type requestOutcome uint8

const (
	replied    requestOutcome = iota + 1
	noReply                   // its Send succeeded, then its context ended waiting for the reply
	sendFailed                // its Send failed (it may still have been stored)
)

// TestClusterDurableRequestsSurviveLeaderStop runs durable requests to an
// echo agent on a 3-node cluster while the A2A stream's leader node stops
// and comes back; both buses are connected to that node, so they must
// reconnect. Every reply must answer its own request, requests must keep
// being answered after the stop and after the restart, and nothing stored
// may be lost: once the stream is empty, the handler must have seen every
// request that was answered or whose Send succeeded.
func TestClusterDurableRequestsSurviveLeaderStop(t *testing.T) {
	const (
		requesters = 3
		reqTimeout = 10 * time.Second
	)
	c, nc, leader := clusterOnLeader(t)

	var (
		hmu     sync.Mutex
		handled = map[string]int{} // request ID -> times the handler ran
	)
	server := connectClusterBus(t, c, leader, "server")
	if err := server.Handle("echo", func(ctx context.Context, env *codec.Envelope) error {
		hmu.Lock()
		handled[env.ID]++
		hmu.Unlock()
		return server.Reply(ctx, env, &codec.Envelope{Kind: "message",
			Message: &codec.Message{MessageID: "r-" + env.ID, Role: codec.RoleAgent,
				Parts: []codec.Part{codec.TextPart("echo: " + env.Message.Text())}}})
	}); err != nil {
		t.Fatal(err)
	}
	// One handler: the pool is named after it.
	serve(t, server, fastRetries, agentbus.ServeMemberID("server"), agentbus.ServePartitions(clusterPartitions),
		agentbus.ServeMemberTTL(2*time.Second), agentbus.ServeAckWait(time.Second))
	client := connectClusterBus(t, c, leader, "client")
	pool := declarePool(t, client, agentbus.PoolConfig{Name: "echo", Partitions: clusterPartitions}, "echo")

	// One request first, so that the load starts once the echo agent's
	// partition has its consumer.
	stalls := watchStalls(nc, pool, 5*time.Second)
	warm, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	warmStart := time.Now()
	_, err := client.Request(warm, textEnvelope("asker", "echo", "warm-up", "warm-up"), agentbus.Durable)
	cancel()
	if st := stalls(); len(st) > 0 {
		t.Errorf("while Serve started (the first request took %v): %s:\n%s", time.Since(warmStart).Round(time.Millisecond), stallHint, strings.Join(st, "\n"))
	}
	if err != nil {
		t.Fatalf("first request: %v", err)
	}

	var (
		mu       sync.Mutex
		outcomes = map[string]requestOutcome{}
		errSeen  = map[string]int{} // error text, IDs replaced -> count
		nReplied atomic.Int64
		lastAt   = time.Now() // last reply, for the longest gap between replies
		maxGap   time.Duration
		maxGapAt time.Time
		slowest  time.Duration // the longest a request took to get its reply
		stop     atomic.Bool
		wg       sync.WaitGroup
	)
	hardStop := time.Now().Add(90 * time.Second) // the loops end even if the test goroutine is stuck
	for r := range requesters {
		wg.Go(func() {
			for i := 0; !stop.Load() && time.Now().Before(hardStop); i++ {
				id := fmt.Sprintf("q%d-%05d", r, i)
				ctx, cancel := context.WithTimeout(context.Background(), reqTimeout)
				began := time.Now()
				reply, err := client.Request(ctx, textEnvelope("asker", "echo", id, id), agentbus.Durable)
				took := time.Since(began)
				cancel()
				var out requestOutcome
				switch {
				case err == nil:
					out = replied
					if reply.CorrelationID != id || reply.Message == nil || reply.Message.Text() != "echo: "+id {
						t.Errorf("request %s got reply %+v, not its own", id, reply)
					}
					nReplied.Add(1)
				// Request does not say whether its Send succeeded; the
				// error of a request that was sent and then timed out
				// waiting starts with "agentbus: request <ID> ", a failed
				// Send's does not.
				case errors.Is(err, context.DeadlineExceeded) && strings.HasPrefix(err.Error(), "agentbus: request "+id+" "):
					out = noReply
				default:
					out = sendFailed
				}
				mu.Lock()
				outcomes[id] = out
				if out == replied {
					now := time.Now()
					if gap := now.Sub(lastAt); gap > maxGap {
						maxGap, maxGapAt = gap, now
					}
					lastAt = now
					slowest = max(slowest, took)
				}
				if err != nil {
					errSeen[strings.ReplaceAll(err.Error(), id, "<ID>")]++
				}
				mu.Unlock()
			}
		})
	}
	stopRequests := sync.OnceFunc(func() {
		stop.Store(true)
		wg.Wait()
	})
	defer stopRequests() // also when a check below fails the test

	replies := func() int { return int(nReplied.Load()) }
	diag := func() string {
		return fmt.Sprintf("client conn: %s\nserver conn: %s\n%s\nA2A stream leader: node %d",
			connState(client.Conn()), connState(server.Conn()), clusterConsumerState(nc, pool, "echo", "asker"),
			c.StreamLeader(agentbus.StreamName))
	}
	start := time.Now()
	waitCount(t, "replies before the stop", 150, 20*time.Second, replies, diag)

	beforeStop := replies()
	c.Stop(leader)
	stopped := time.Now()
	newLeader := c.WaitStreamLeader(agentbus.StreamName)
	elected := time.Since(stopped)
	// Requests go on for a while with the node down: the buses reconnect,
	// the leases' and consumers' leaders move.
	waitCount(t, "replies after the leader stopped (the requester's reply subscription or the consumer stalled after the reconnect?)",
		beforeStop+150, 30*time.Second, replies, diag)
	if d := time.Since(stopped); d < 3*time.Second {
		time.Sleep(3*time.Second - d)
	}
	recovered := time.Since(stopped)

	beforeRestart := replies()
	c.Restart(leader)
	c.WaitStreamLeader(agentbus.StreamName)
	waitCount(t, "replies after the node restarted", beforeRestart+100, 20*time.Second, replies, diag)
	stopRequests()
	run := time.Since(start)

	// Requests whose Send timed out may still be in the batcher.
	fctx, fcancel := context.WithTimeout(context.Background(), 30*time.Second)
	if err := client.Flush(fctx); err != nil {
		t.Logf("flush after the run: %v", err)
	}
	fcancel()
	deadline := time.Now().Add(30 * time.Second)
	for {
		n, ok := clusterStreamMsgs(nc, agentbus.StreamName)
		if ok && n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the A2A stream still holds %d messages (ok %v) 30 s after the run: stored requests are not being handled\n%s", n, ok, diag())
		}
		time.Sleep(20 * time.Millisecond)
	}

	mu.Lock()
	defer mu.Unlock()
	hmu.Lock()
	defer hmu.Unlock()
	var counts [4]int
	for _, o := range outcomes {
		counts[o]++
	}
	var lost, unknown []string
	for id, o := range outcomes {
		if (o == replied || o == noReply) && handled[id] == 0 {
			lost = append(lost, id)
		}
	}
	delete(handled, "warm-up")
	dups := 0
	for id, n := range handled {
		if _, ok := outcomes[id]; !ok {
			unknown = append(unknown, id)
		}
		if n > 1 {
			dups++
		}
	}
	dlq, _ := clusterStreamMsgs(nc, agentbus.DeadLetterStreamName)
	t.Logf("%d requests: %d replied, %d sent but unanswered by their deadline, %d failed to send; handler saw %d distinct (%d more than once); %d dead letters",
		len(outcomes), counts[replied], counts[noReply], counts[sendFailed], len(handled), dups, dlq)
	t.Logf("load ran %v; stream leader moved from %s to %s in %v; %d replies within %v of the stop; "+
		"longest gap between replies %v, ending %v after the stop; slowest answered request %v",
		run.Round(time.Millisecond), c.Name(leader), c.Name(newLeader), elected.Round(time.Millisecond),
		beforeRestart-beforeStop, recovered.Round(time.Millisecond),
		maxGap.Round(time.Millisecond), maxGapAt.Sub(stopped).Round(time.Millisecond), slowest.Round(time.Millisecond))
	for e, n := range errSeen {
		t.Logf("%d× %s", n, e)
	}
	checkReconnected(t, client.Conn(), server.Conn())
	if len(unknown) > 0 {
		t.Errorf("the handler saw %d requests nobody made: %v", len(unknown), unknown)
	}
	if dlq > 0 {
		t.Errorf("%d echo requests were dead-lettered", dlq)
	}
	if len(lost) > 0 {
		t.Fatalf("%d requests that were answered or stored were never handled: %v", len(lost), lost)
	}
}

// TestClusterSendNoLossAcrossLeaderStop sends continuously to many agents
// while the A2A stream's leader node (the one the bus is connected to)
// stops and comes back. Every Send that returned nil must be stored once,
// in each sender's order per agent, and then be handled, each sender's
// envelopes to an agent (one conversation) first handled in send order.
func TestClusterSendNoLossAcrossLeaderStop(t *testing.T) {
	const (
		senders = 4
		agents  = 48
		pool    = "cluster"
	)
	c, nc, leader := clusterOnLeader(t)
	bus := connectClusterBus(t, c, leader, "sender", agentbus.WithSendTimeout(20*time.Second))
	ids := make([]string, agents)
	for i := range ids {
		ids[i] = fmt.Sprintf("agent-%02d", i)
	}
	placed := declarePool(t, bus, agentbus.PoolConfig{Name: pool, Partitions: clusterPartitions}, ids...)

	var (
		mu     sync.Mutex
		okIDs  []string
		errs   = map[string]int{}
		nOK    atomic.Int64
		stop   atomic.Bool
		wg     sync.WaitGroup
		agentF = func(i int) string { return fmt.Sprintf("agent-%02d", i%agents) }
	)
	hardStop := time.Now().Add(90 * time.Second)
	for s := range senders {
		wg.Go(func() {
			for i := 0; !stop.Load() && time.Now().Before(hardStop); i++ {
				// IDs sort in send order per sender and agent.
				id := fmt.Sprintf("s%d-%06d", s, i)
				ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
				err := bus.Send(ctx, textEnvelope(fmt.Sprintf("sender-%d", s), agentF(i+s), id, id))
				cancel()
				mu.Lock()
				if err == nil {
					okIDs = append(okIDs, id)
					nOK.Add(1)
				} else {
					errs[strings.ReplaceAll(err.Error(), id, "<ID>")]++
				}
				mu.Unlock()
			}
		})
	}
	stopSends := sync.OnceFunc(func() {
		stop.Store(true)
		wg.Wait()
	})
	defer stopSends()

	oks := func() int { return int(nOK.Load()) }
	diag := func() string {
		return fmt.Sprintf("bus conn: %s; A2A stream leader: node %d", connState(bus.Conn()), c.StreamLeader(agentbus.StreamName))
	}
	start := time.Now()
	waitCount(t, "sends before the stop", 500, 20*time.Second, oks, diag)
	beforeStop := oks()
	c.Stop(leader)
	stopped := time.Now()
	newLeader := c.WaitStreamLeader(agentbus.StreamName)
	elected := time.Since(stopped)
	waitCount(t, "sends after the leader stopped", beforeStop+500, 30*time.Second, oks, diag)
	beforeRestart := oks()
	c.Restart(leader)
	c.WaitStreamLeader(agentbus.StreamName)
	waitCount(t, "sends after the node restarted", beforeRestart+300, 20*time.Second, oks, diag)
	stopSends()
	run := time.Since(start)
	fctx, fcancel := context.WithTimeout(context.Background(), 30*time.Second)
	if err := bus.Flush(fctx); err != nil {
		t.Logf("flush after the run: %v", err)
	}
	fcancel()

	mu.Lock()
	defer mu.Unlock()
	envs := storedEnvelopes(t, nc)
	stored := map[string]int{}
	last := map[string]string{} // sender/agent -> last ID stored
	for _, e := range envs {
		stored[e.ID]++
		pair := e.From + "/" + e.To
		if prev := last[pair]; prev >= e.ID {
			t.Errorf("%s stored after %s for %s: per-agent order broken", e.ID, prev, pair)
		}
		last[pair] = e.ID
	}
	var lost, doubled []string
	for id, n := range stored {
		if n > 1 {
			doubled = append(doubled, id)
		}
	}
	for _, id := range okIDs {
		if stored[id] == 0 {
			lost = append(lost, id)
		}
	}
	failed := 0
	for e, n := range errs {
		failed += n
		t.Logf("%d× %s", n, e)
	}
	t.Logf("%d sends returned nil, %d failed; %d envelopes stored; load ran %v; stream leader moved from %s to %s in %v",
		len(okIDs), failed, len(envs), run.Round(time.Millisecond), c.Name(leader), c.Name(newLeader), elected.Round(time.Millisecond))
	checkReconnected(t, bus.Conn())
	if len(doubled) > 0 {
		t.Errorf("%d envelopes stored more than once (batch dedupe failed): %v", len(doubled), firstN(doubled, 20))
	}
	if len(lost) > 0 {
		t.Fatalf("%d sends returned nil but are not in the stream: %v", len(lost), firstN(lost, 20))
	}

	// Now drain the backlog, as an agentd would after an outage: one
	// member with 2 workers whose handlers do 3 ms of work, so that a
	// batch takes longer than the ack wait and its hold is renewed. Each
	// stored envelope must be handled, each sender's to an agent first
	// handled in send order, and handled twice only if its batch was
	// redelivered (a hold or an ack not confirmed in time: at-least-once).
	// (Serve creates the R3 members bucket, which needs the restarted node
	// back as a peer.)
	embeddedtest.WaitPlacement(t, nc, 3)
	reg := prometheus.NewRegistry()
	consumer := connectClusterBus(t, c, newLeader, "consumer", agentbus.WithRegisterer(reg))
	hlog := newHandledLog()
	for i := range agents {
		record := hlog.handler("consumer", agentF(i))
		if err := consumer.Handle(agentF(i), func(ctx context.Context, env *codec.Envelope) error {
			time.Sleep(3 * time.Millisecond)
			return record(ctx, env)
		}); err != nil {
			t.Fatal(err)
		}
	}
	drainStart := time.Now()
	stalls := watchStalls(nc, placed, 5*time.Second)
	serve(t, consumer, fastRetries, agentbus.ServeMemberID("consumer"), agentbus.ServeWorkers(2),
		agentbus.ServePool(pool), agentbus.ServePartitions(clusterPartitions),
		agentbus.ServeMemberTTL(2*time.Second), agentbus.ServeAckWait(time.Second))
	waitCount(t, "stored envelopes handled", len(stored), 40*time.Second, hlog.count,
		func() string { return clusterConsumerState(nc, placed, agentF(0), "sender-0") })
	waitFor(t, "the A2A stream to empty", func() bool {
		n, ok := clusterStreamMsgs(nc, agentbus.StreamName)
		return ok && n == 0
	})
	if st := stalls(); len(st) > 0 {
		t.Errorf("draining the backlog took %v: %s:\n%s", time.Since(drainStart).Round(time.Millisecond), stallHint, strings.Join(st, "\n"))
	}
	hlog.mu.Lock()
	defer hlog.mu.Unlock()
	var disorder, doubles []string
	handled := 0
	for agent, ids := range hlog.byAgent {
		handled += len(ids)
		// Per sender (one conversation of the agent): an ID handled for
		// the first time must come after every ID first handled before it.
		lastBy := map[string]string{} // sender prefix ("s0") -> last ID first handled
		seen := map[string]bool{}
		for _, id := range ids {
			if seen[id] {
				continue // handled again: at-least-once, checked below
			}
			seen[id] = true
			s := id[:strings.IndexByte(id, '-')]
			if prev := lastBy[s]; prev > id {
				disorder = append(disorder, fmt.Sprintf("%s: %s first handled after %s", agent, id, prev))
			} else {
				lastBy[s] = id
			}
		}
	}
	for id, by := range hlog.by {
		if len(by) != 1 {
			doubles = append(doubles, id)
		}
		if stored[id] == 0 {
			t.Errorf("%s handled but not stored", id)
		}
	}
	redelivered := sumMetric(t, reg, "a2abus_receive_redelivered_batches_total")
	t.Logf("drained %d stored envelopes in %v: %d handler calls, %d envelopes handled more than once, %v batches redelivered, %d out of order",
		len(stored), time.Since(drainStart).Round(time.Millisecond), handled, len(doubles), redelivered, len(disorder))
	slices.Sort(doubles)
	slices.Sort(disorder)
	if len(disorder) > 0 {
		t.Errorf("draining a backlog with one consumer: %d envelopes first handled after a later one of the same sender and agent, e.g. %v",
			len(disorder), firstN(disorder, 5))
	}
	if len(doubles) > 0 && redelivered == 0 {
		t.Errorf("draining a backlog with one consumer: %d envelopes handled more than once (e.g. %v) although no batch was redelivered",
			len(doubles), firstN(doubles, 5))
	}
	for id := range stored {
		if len(hlog.by[id]) == 0 {
			t.Errorf("%s stored and never handled", id)
		}
	}
}

// handledLog records which member handled each envelope, in order.
type handledLog struct {
	mu      sync.Mutex
	byAgent map[string][]string // agent -> envelope IDs in handling order
	by      map[string][]string // envelope ID -> members that handled it
}

func newHandledLog() *handledLog {
	return &handledLog{byAgent: map[string][]string{}, by: map[string][]string{}}
}

func (l *handledLog) handler(member, agent string) agentbus.Handler {
	return func(_ context.Context, env *codec.Envelope) error {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.byAgent[agent] = append(l.byAgent[agent], env.ID)
		l.by[env.ID] = append(l.by[env.ID], member)
		return nil
	}
}

// count returns the distinct envelopes handled.
func (l *handledLog) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.by)
}

// checkReconnected logs the connections' states and fails the test if one
// never reconnected: it was meant to be on the node that stopped.
func checkReconnected(t *testing.T, conns ...*nats.Conn) {
	t.Helper()
	for _, nc := range conns {
		t.Logf("connection %s: %s", nc.Opts.Name, connState(nc))
		if nc.Stats().Reconnects == 0 {
			t.Errorf("connection %s never reconnected: it was not on the stopped node, so the test missed its point", nc.Opts.Name)
		}
	}
}

func firstN(s []string, n int) []string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
