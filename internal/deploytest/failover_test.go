//go:build deploy

package deploytest

import (
	"context"
	"fmt"
	"net/http"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/a2abus/a2abus/agentbus"
	"github.com/a2abus/a2abus/codec"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"
)

// The agent and pool the failover check serves itself, so that it sees
// every envelope handled.
const (
	ledgerAgent = "ledger"
	ledgerPool  = "deploytest"
)

// ledger records what the test's handler of ledgerAgent saw.
type ledger struct {
	mu      sync.Mutex
	handled map[string]int // envelope ID → times handled
}

func (l *ledger) handle(_ context.Context, env *codec.Envelope) error {
	l.mu.Lock()
	l.handled[env.ID]++
	l.mu.Unlock()
	return nil
}

// missing returns the IDs in acked that were not handled, and how many
// handler calls there were in all.
func (l *ledger) missing(acked []string) (lost []string, calls int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, id := range acked {
		if l.handled[id] == 0 {
			lost = append(lost, id)
		}
	}
	for _, n := range l.handled {
		calls += n
	}
	return lost, calls
}

// sendResult is one Send: when it began and ended, and its error.
type sendResult struct {
	id         string
	start, end time.Time
	err        error
}

// publisher sends durable messages to ledgerAgent from a bus that tries
// its servers in the order given.
type publisher struct {
	name string
	bus  *agentbus.Bus
	mu   sync.Mutex
	sent []sendResult
}

func newPublisher(t *testing.T, name, urls string) *publisher {
	t.Helper()
	bus, err := agentbus.Connect(t.Context(), agentbus.WithURL(urls), agentbus.WithName("deploytest-"+name),
		agentbus.WithNATSOptions(nats.DontRandomize()), agentbus.WithUnknownAgents(agentbus.WaitUnknown))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return &publisher{name: name, bus: bus}
}

// run sends from n goroutines, each one message at a time, until stop is
// closed; each Send is bounded by the bus's send timeout (30 s) and a
// context of its own, so that stopping never cancels a send half-way.
func (p *publisher) run(wg *sync.WaitGroup, stop <-chan struct{}, n int) {
	for g := range n {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				id := nuid.Next()
				env := &codec.Envelope{ID: id, From: "deploytest", To: ledgerAgent, Kind: "message",
					Message: &codec.Message{MessageID: id, Role: codec.RoleUser, ContextID: fmt.Sprintf("c%d-%d", g, i%8),
						Parts: []codec.Part{codec.TextPart("ledger entry")}}}
				ctx, cancel := context.WithTimeout(context.Background(), 35*time.Second)
				r := sendResult{id: id, start: time.Now()}
				r.err = p.bus.Send(ctx, env)
				r.end = time.Now()
				cancel()
				p.mu.Lock()
				p.sent = append(p.sent, r)
				p.mu.Unlock()
			}
		})
	}
}

// results returns a copy of the sends so far.
func (p *publisher) results() []sendResult {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.sent)
}

// recoveredAfter returns the end of the first acknowledged send that began
// after t0, and whether there is one.
func recoveredAfter(rs []sendResult, t0 time.Time) (time.Time, bool) {
	var first time.Time
	for _, r := range rs {
		if r.err == nil && r.start.After(t0) && (first.IsZero() || r.end.Before(first)) {
			first = r.end
		}
	}
	return first, !first.IsZero()
}

// readiness samples every agentd's /readyz until ctx ends: a request
// every 100 ms, each on its own (a check may take agentd's 2 s timeout
// while the stream has no leader).
type readiness struct {
	mu      sync.Mutex
	samples [][]readySample // per agentd
}

type readySample struct {
	sent, answered time.Time
	code           int
}

func (r *readiness) run(ctx context.Context, wg *sync.WaitGroup, agentds []*agentdProc) {
	r.samples = make([][]readySample, len(agentds))
	wg.Go(func() {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			for i, a := range agentds {
				wg.Go(func() {
					sent := time.Now()
					code, _ := get(ctx, a.baseURL()+"/readyz")
					if ctx.Err() != nil {
						return
					}
					r.mu.Lock()
					r.samples[i] = append(r.samples[i], readySample{sent, time.Now(), code})
					r.mu.Unlock()
				})
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	})
}

// window returns agentd i's unready time after t0: when the first check
// answered other than 200 was sent, and when it was ready again, the first 200 answered to a
// check sent after the last check that was not answered 200 (a check sent
// while the stream had no leader is answered 503 up to 2 s later, when
// later checks may have been answered 200 already). Zero times when it
// stayed ready; again is false while it is not ready.
func (r *readiness) window(i int, t0 time.Time) (firstBad, readyAgain time.Time, again bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var lastBadSent time.Time
	for _, s := range r.samples[i] {
		if s.answered.Before(t0) || s.code == http.StatusOK {
			continue
		}
		if sent := later(s.sent, t0); firstBad.IsZero() || sent.Before(firstBad) {
			firstBad = sent
		}
		if s.sent.After(lastBadSent) {
			lastBadSent = s.sent
		}
	}
	if firstBad.IsZero() {
		return time.Time{}, time.Time{}, true
	}
	for _, s := range r.samples[i] {
		if s.code == http.StatusOK && s.sent.After(lastBadSent) && (readyAgain.IsZero() || s.answered.Before(readyAgain)) {
			readyAgain = s.answered
		}
	}
	return firstBad, readyAgain, !readyAgain.IsZero()
}

// checkFailover kills (SIGKILL) the nats-server that leads the A2A stream
// while two publishers send durable messages to ledgerAgent, one connected
// to that server and one to another, and the test serves ledgerAgent on a
// bus of its own. Every acknowledged send must be handled afterwards. The
// figures (time to a new stream leader, until each publisher's sends are
// acknowledged again, until every agentd is ready again, until the
// restarted server is current again) are logged.
func (d *deployment) checkFailover(t *testing.T) {
	ctx := t.Context()
	st, err := d.js.Stream(ctx, agentbus.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	info := st.CachedInfo()
	if info.Cluster == nil || d.serverNamed(info.Cluster.Leader) == nil {
		t.Fatalf("stream %s: no leader among the servers (%+v)", agentbus.StreamName, info.Cluster)
	}
	victim := d.serverNamed(info.Cluster.Leader)
	vi := slices.Index(d.servers, victim)
	si := (vi + 1) % len(d.servers)
	survivor := d.servers[si]

	// The ledger's consumer: a pool of its own, on every server.
	led := &ledger{handled: map[string]int{}}
	cons, err := agentbus.Connect(ctx, agentbus.WithURL(d.serverURLs(si)), agentbus.WithName("deploytest-ledger"))
	if err != nil {
		t.Fatal(err)
	}
	if err := cons.Handle(ledgerAgent, led.handle); err != nil {
		t.Fatal(err)
	}
	if _, err := cons.Declare(ctx, agentbus.PoolConfig{Name: ledgerPool, Partitions: 8}, ledgerAgent); err != nil {
		t.Fatal(err)
	}
	serveCtx, stopServe := context.WithCancel(context.Background())
	var serveWG sync.WaitGroup
	var serveErr error
	serveWG.Go(func() {
		serveErr = cons.Serve(serveCtx, agentbus.ServePool(ledgerPool), agentbus.ServePartitions(8))
	})
	defer func() {
		stopServe()
		serveWG.Wait()
		if serveErr != nil && serveCtx.Err() == nil {
			t.Errorf("the ledger's Serve: %v", serveErr)
		}
		_ = cons.Close(context.Background())
	}()

	pubs := []*publisher{
		newPublisher(t, "publisher on "+victim.name, d.serverURLs(vi)),
		newPublisher(t, "publisher on "+survivor.name, d.serverURLs(si)),
	}
	defer func() {
		for _, p := range pubs {
			_ = p.bus.Close(context.Background())
		}
	}()
	stop := make(chan struct{})
	var pubWG sync.WaitGroup
	for _, p := range pubs {
		p.run(&pubWG, stop, 2)
	}
	stopPublishers := sync.OnceFunc(func() { close(stop); pubWG.Wait() })
	defer stopPublishers()

	// A few seconds of sends before the kill.
	time.Sleep(3 * time.Second)
	for _, p := range pubs {
		if _, ok := recoveredAfter(p.results(), time.Time{}); !ok {
			t.Fatalf("%s: no send acknowledged before the kill: %v", p.name, p.results())
		}
	}

	// Watchers: the stream's leader, asked of a surviving server, and
	// every agentd's readiness.
	_, sjs := d.connectTo(survivor)
	watchCtx, stopWatch := context.WithCancel(ctx)
	var watchWG sync.WaitGroup
	defer func() { stopWatch(); watchWG.Wait() }()
	var (
		leaderMu  sync.Mutex
		newLeader string // from the JetStream API
		leaderAt  time.Time
		// from the survivor's /jsz
		jszLeaderName string
		jszLeaderAt   time.Time
	)
	ready := &readiness{}
	ready.run(watchCtx, &watchWG, d.agentds)
	time.Sleep(300 * time.Millisecond) // samples from before the kill

	// `agentd send` processes started around the kill, every 200 ms from
	// 400 ms before it to 400 ms after, given every server, the killed one
	// first: some are connecting when it goes.
	t0 := time.Now().Add(500 * time.Millisecond)
	var (
		cliWG   sync.WaitGroup
		cliMu   sync.Mutex
		cliRuns []cliSend
	)
	for k := -2; k <= 2; k++ {
		at := t0.Add(time.Duration(k) * 200 * time.Millisecond)
		cliWG.Go(func() {
			time.Sleep(time.Until(at))
			r := d.cliSend(ctx, d.serverURLs(vi))
			r.offset = at.Sub(t0)
			cliMu.Lock()
			cliRuns = append(cliRuns, r)
			cliMu.Unlock()
		})
	}
	defer cliWG.Wait()
	time.Sleep(time.Until(t0))
	victim.proc.kill()
	t.Logf("killed %s (kill -9), the leader of stream %s", victim.name, agentbus.StreamName)
	// The new leader as the survivor's monitoring endpoint first shows it,
	// and when the JetStream API first answers a stream info from it.
	watchWG.Go(func() {
		for watchCtx.Err() == nil {
			if l, err := jszLeader(watchCtx, survivor, agentbus.StreamName); err == nil && l != "" && l != victim.name {
				leaderMu.Lock()
				jszLeaderName, jszLeaderAt = l, time.Now()
				leaderMu.Unlock()
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
	watchWG.Go(func() {
		for watchCtx.Err() == nil {
			ictx, cancel := context.WithTimeout(watchCtx, 250*time.Millisecond)
			s, err := sjs.Stream(ictx, agentbus.StreamName)
			cancel()
			if err == nil {
				if c := s.CachedInfo().Cluster; c != nil && c.Leader != "" && c.Leader != victim.name {
					leaderMu.Lock()
					newLeader, leaderAt = c.Leader, time.Now()
					leaderMu.Unlock()
					return
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
	})

	// Publish on until the cluster is back (a new leader, both publishers'
	// sends acknowledged again, every agentd ready for 2 s), at least 10 s,
	// at most 75 s.
	allReady := func() (time.Time, bool) {
		var last time.Time
		for i := range d.agentds {
			_, again, ok := ready.window(i, t0)
			if !ok {
				return time.Time{}, false
			}
			if again.After(last) {
				last = again
			}
		}
		return last, true
	}
	for time.Since(t0) < 75*time.Second {
		time.Sleep(200 * time.Millisecond)
		leaderMu.Lock()
		haveLeader := newLeader != ""
		leaderMu.Unlock()
		back := haveLeader && time.Since(t0) > 10*time.Second
		for _, p := range pubs {
			if _, ok := recoveredAfter(p.results(), t0); !ok {
				back = false
			}
		}
		if at, ok := allReady(); !ok || time.Since(at) < 2*time.Second {
			back = false
		}
		if back {
			break
		}
	}
	stopPublishers()
	stopWatch()
	watchWG.Wait()
	stopAt := time.Now()

	cliWG.Wait()

	// Every acknowledged send is handled, sooner or later.
	var acked []string
	failed := map[string]int{}
	for _, p := range pubs {
		for _, r := range p.results() {
			if r.err == nil {
				acked = append(acked, r.id)
			} else {
				failed[p.name+": "+r.err.Error()]++
			}
		}
	}
	slices.SortFunc(cliRuns, func(a, b cliSend) int { return int(a.offset - b.offset) })
	for _, r := range cliRuns {
		if r.err == nil {
			acked = append(acked, r.id)
			t.Logf("figure: agentd send started %v from the kill: stored in %v, %v after the kill", r.offset, r.took.Round(time.Millisecond), (r.offset + r.took).Round(time.Millisecond))
			if r.stderr != "" {
				t.Logf("  its warnings: %s", r.stderr)
			}
		} else {
			failed["agentd send: "+r.err.Error()]++
			t.Logf("figure: agentd send started %v from the kill: failed after %v: %v", r.offset, r.took.Round(time.Millisecond), r.err)
		}
	}
	var lost []string
	calls := 0
	wctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	_ = waitFor(wctx, nil, 200*time.Millisecond, func() bool {
		lost, calls = led.missing(acked)
		return len(lost) == 0
	})
	t.Logf("sends: %d acknowledged, %d failed (not acknowledged, so allowed to be lost), %d lost; %d handler calls for them (duplicates are at-least-once redeliveries)",
		len(acked), sum(failed), len(lost), calls)
	for e, n := range failed {
		t.Logf("  %d× %s", n, e)
	}
	if len(lost) > 0 {
		t.Errorf("%d of %d acknowledged sends never handled within 90 s after the publishers stopped, e.g. %v", len(lost), len(acked), lost[:min(5, len(lost))])
	}

	// The figures.
	leaderMu.Lock()
	if newLeader == "" {
		t.Errorf("stream %s: no new leader by %v after the kill", agentbus.StreamName, stopAt.Sub(t0).Round(time.Millisecond))
	} else {
		t.Logf("figure: new leader of stream %s (%s) %v after the kill in the JetStream API's stream info", agentbus.StreamName, newLeader, leaderAt.Sub(t0).Round(time.Millisecond))
	}
	if jszLeaderName != "" {
		t.Logf("figure: new leader of stream %s (%s) %v after the kill in %s's /jsz", agentbus.StreamName, jszLeaderName, jszLeaderAt.Sub(t0).Round(time.Millisecond), survivor.name)
	}
	leaderMu.Unlock()
	for _, p := range pubs {
		rs := p.results()
		longest := time.Duration(0)
		for _, r := range rs {
			if r.end.After(t0) {
				longest = max(longest, r.end.Sub(r.start))
			}
		}
		fresh, ok := recoveredAfter(rs, t0)
		if !ok {
			t.Errorf("%s: no send begun after the kill was acknowledged within %v", p.name, stopAt.Sub(t0).Round(time.Millisecond))
			continue
		}
		t.Logf("figure: %s: sends acknowledged again %v after the kill (the first send begun after it); the longest send that ended after the kill took %v",
			p.name, fresh.Sub(t0).Round(time.Millisecond), longest.Round(time.Millisecond))
	}
	var unready []string
	for i, a := range d.agentds {
		bad, again, ok := ready.window(i, t0)
		switch {
		case !ok:
			t.Errorf("%s: not ready again by %v after the kill", a.name, stopAt.Sub(t0).Round(time.Millisecond))
		case bad.IsZero():
			unready = append(unready, a.name+" stayed ready")
		default:
			unready = append(unready, fmt.Sprintf("%s unready from %v to %v", a.name, bad.Sub(t0).Round(100*time.Millisecond), again.Sub(t0).Round(100*time.Millisecond)))
		}
	}
	if at, ok := allReady(); ok {
		t.Logf("figure: every agentd ready again %v after the kill (%s)", max(at.Sub(t0), 0).Round(100*time.Millisecond), strings.Join(unready, "; "))
	}

	// The killed server comes back and catches up.
	restart := time.Now()
	d.startServer(vi)
	rctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	if err := waitFor(rctx, victim.proc, 200*time.Millisecond, func() bool {
		code, _ := get(ctx, victim.monitorURL()+"/healthz?js-meta-only=true")
		if code != http.StatusOK {
			return false
		}
		ictx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		s, err := d.js.Stream(ictx, agentbus.StreamName)
		if err != nil {
			return false
		}
		c := s.CachedInfo().Cluster
		current := 0
		for _, r := range c.Replicas {
			if r.Current && !r.Offline {
				current++
			}
		}
		return current == 2
	}); err != nil {
		t.Errorf("%s restarted: stream %s not on three current replicas within 90 s: %v", victim.name, agentbus.StreamName, err)
	} else {
		t.Logf("figure: %s restarted on its store: stream %s on three current replicas %v after the restart", victim.name, agentbus.StreamName, time.Since(restart).Round(100*time.Millisecond))
	}
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// cliSend is one `agentd send` run: the message ID it printed once the
// message was stored, or its error.
type cliSend struct {
	offset time.Duration // its start, from the kill
	took   time.Duration
	id     string
	stderr string // its warnings
	err    error
}

// cliSend runs `agentd send --to ledger` against the servers urls lists,
// with agentd send's default timeout (30 s).
func (d *deployment) cliSend(ctx context.Context, urls string) cliSend {
	start := time.Now()
	cmd := exec.CommandContext(ctx, d.bin.agentd, "send", "--nats", urls, "--to", ledgerAgent, "ledger entry from agentd send")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	r := cliSend{took: time.Since(start), id: strings.TrimSpace(string(out)), stderr: strings.TrimSpace(stderr.String())}
	if err != nil {
		r.err, r.id = fmt.Errorf("%v: %s", err, r.stderr), ""
	}
	return r
}
