//go:build deploy

package deploytest

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/a2abus/a2abus/agentbus"
	"github.com/a2abus/a2abus/agentbus/a2anats"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
)

var (
	requests = flag.Int("deploy.requests", envInt("A2ABUS_DEPLOY_REQUESTS", 1000),
		"durable requests of each Go client run of the cross-server request/reply check (3000 in the full run)")
	cliRequests = flag.Int("deploy.cli-requests", envInt("A2ABUS_DEPLOY_CLI_REQUESTS", 150),
		"`agentd send --wait` processes of the cross-server request/reply check")
)

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// TestDeployment starts the deployment step by step and checks each step
// (see the package documentation). The processes live as long as the
// test; each check is a subtest, and a failed one does not stop the next.
func TestDeployment(t *testing.T) {
	d := newDeployment(t)

	t.Run("servers", d.checkServers)
	if t.Failed() {
		t.FailNow() // nothing else can run
	}
	d.connect()

	for i := range d.agentds {
		t.Run("readiness/"+d.agentds[i].name+" alone", func(t *testing.T) { d.checkReadinessAlone(t, i) })
	}

	d.startAll(t)
	t.Run("placement", d.checkPlacement)
	t.Run("R3", d.checkR3)
	t.Run("gateway round trips", d.checkGateways)
	t.Run("agentd send --wait", d.checkSendWait)
	t.Run("worker tasks", d.checkWorkerTasks)
	t.Run("cross-server request-reply/one client", d.checkRequestsOneClient)
	t.Run("cross-server request-reply/a client per request", d.checkRequestsFreshClients)
	t.Run("cross-server request-reply/agentd send --wait", d.checkRequestsCLI)
	t.Run("kill -9 of the stream leader", d.checkFailover)
	t.Run("gateway round trips after the failover", d.checkGateways)
	d.logScale(t)
}

// checkServers starts the first server alone, checks the two health
// checks on it, then the other two, and waits for a meta leader.
func (d *deployment) checkServers(t *testing.T) {
	ctx := t.Context()
	start := time.Now()
	d.startServer(0)
	first := d.servers[0]
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := waitFor(wctx, first.proc, 20*time.Millisecond, func() bool {
		code, _ := get(ctx, first.monitorURL()+"/healthz?js-enabled-only=true")
		return code == http.StatusOK
	}); err != nil {
		t.Fatalf("%s alone never answered /healthz?js-enabled-only=true with 200: %v", first.name, err)
	}
	// Alone, it cannot have a meta leader: the compose health check must
	// not pass yet (js-enabled-only, the one it had before, does).
	if code, body := get(ctx, first.monitorURL()+"/healthz?js-meta-only=true"); code == http.StatusOK {
		t.Errorf("%s alone answers /healthz?js-meta-only=true with 200 (%s): the compose health check would pass before the cluster can create a stream", first.name, body)
	} else {
		t.Logf("%s alone: /healthz?js-enabled-only=true 200, /healthz?js-meta-only=true %d %s", first.name, code, strings.TrimSpace(body))
	}

	d.startServer(1)
	d.startServer(2)
	wctx, cancel = context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for _, s := range d.servers {
		if err := waitFor(wctx, s.proc, 50*time.Millisecond, func() bool {
			code, _ := get(ctx, s.monitorURL()+"/healthz?js-meta-only=true")
			return code == http.StatusOK
		}); err != nil {
			t.Fatalf("%s: no JetStream meta leader: %v", s.name, err)
		}
	}
	t.Logf("three servers healthy (/healthz?js-meta-only=true) %v after the first started", time.Since(start).Round(time.Millisecond))
}

// checkReadinessAlone starts agentd i with no other agentd running and
// polls its /readyz from the process's start. At the first 200 the pool's
// partition consumers must have pulls waiting: with no other agentd up,
// those are this agentd's. Then it stops the agentd again.
func (d *deployment) checkReadinessAlone(t *testing.T, i int) {
	ctx := t.Context()
	// Pulls of the agentd stopped before would count for this one: wait
	// for the server to drop them.
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := waitFor(wctx, nil, 100*time.Millisecond, func() bool {
		_, waiting, err := poolConsumers(ctx, d.js, pool)
		return errors.Is(err, jetstream.ErrStreamNotFound) || (err == nil && waiting == 0)
	}); err != nil {
		t.Skipf("pulls of the agentd stopped before still wait on the pool's consumers after 60 s (%v): cannot tell this agentd's apart", err)
	}

	a := d.startAgentd(i)
	defer func() {
		if err := a.stop(15 * time.Second); err != nil {
			t.Errorf("%s: stop: %v", a.name, err)
		}
	}()
	var ready time.Time
	wctx, cancel = context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	if err := waitFor(wctx, a.proc, 10*time.Millisecond, func() bool {
		code, _ := get(ctx, a.baseURL()+"/readyz")
		if code == http.StatusOK {
			ready = time.Now()
		}
		return code == http.StatusOK
	}); err != nil {
		t.Fatalf("%s never answered /readyz with 200: %v", a.name, err)
	}
	infos, waiting, err := poolConsumers(ctx, d.js, pool)
	asked := time.Since(ready)
	if err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Fatalf("partition consumers of pool %s: %v", pool, err)
	}
	readyAfter := ready.Sub(a.started)

	// When did it start to pull, then?
	pulling := time.Time{}
	if waiting > 0 {
		pulling = ready
	} else {
		wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
		_ = waitFor(wctx, a.proc, 20*time.Millisecond, func() bool {
			_, w, err := poolConsumers(ctx, d.js, pool)
			if err == nil && w > 0 {
				pulling = time.Now()
			}
			return !pulling.IsZero()
		})
	}
	pullAfter := "never within 60 s"
	if !pulling.IsZero() {
		pullAfter = pulling.Sub(a.started).Round(time.Millisecond).String()
	}
	t.Logf("%s alone: /readyz 200 %v after its start; then (asked %v later) %d partition consumers of pool %s, %d with a pull waiting; pulls first seen %s after its start",
		a.name, readyAfter.Round(time.Millisecond), asked.Round(time.Millisecond), len(infos), pool, waiting, pullAfter)
	if waiting == 0 {
		t.Errorf("%s answered /readyz 200 %v after it started, when none of the %d partition consumers of pool %s had a pull waiting (pulls first seen %s after its start): ready before consuming",
			a.name, readyAfter.Round(time.Millisecond), len(infos), pool, pullAfter)
	}
}

// startAll starts the three agentds at once, waits for their readiness,
// then starts scalerd (as compose does, after agentd-1 is healthy).
func (d *deployment) startAll(t *testing.T) {
	ctx := t.Context()
	start := time.Now()
	for i := range d.agentds {
		d.startAgentd(i)
	}
	wctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	// At each agentd's first 200 some partition consumer must have a pull
	// waiting: this agentd's or another's (they cannot be told apart
	// here; checkReadinessAlone does that), but none at all means it is
	// not consuming.
	var (
		wg       sync.WaitGroup
		notReady atomic.Bool
	)
	for _, a := range d.agentds {
		wg.Go(func() {
			if err := waitFor(wctx, a.proc, 10*time.Millisecond, func() bool {
				code, _ := get(ctx, a.baseURL()+"/readyz")
				return code == http.StatusOK
			}); err != nil {
				t.Errorf("%s never answered /readyz with 200: %v", a.name, err)
				notReady.Store(true)
				return
			}
			readyAfter := time.Since(a.started)
			infos, waiting, err := poolConsumers(ctx, d.js, pool)
			t.Logf("%s: /readyz 200 %v after its start; then %d partition consumers of pool %s, %d with a pull waiting (%v)",
				a.name, readyAfter.Round(time.Millisecond), len(infos), pool, waiting, err)
			if err == nil && waiting == 0 {
				t.Errorf("%s answered /readyz 200 when no partition consumer of pool %s had a pull waiting: ready before consuming", a.name, pool)
			}
		})
	}
	wg.Wait()
	if notReady.Load() {
		t.FailNow()
	}
	t.Logf("three agentds ready %v after they started", time.Since(start).Round(time.Millisecond))
	// Every agentd joins the pool as a member (--consumers 1: no scalerd
	// has set a target yet).
	var ms []agentbus.Member
	joined := func() []string {
		var missing []string
		for _, a := range d.agentds {
			if !slices.ContainsFunc(ms, func(m agentbus.Member) bool { return m.PID == a.cmd.Process.Pid }) {
				missing = append(missing, a.name)
			}
		}
		return missing
	}
	if err := waitFor(wctx, nil, 100*time.Millisecond, func() bool {
		ms, _ = members(ctx, d.js, pool)
		return len(joined()) == 0
	}); err != nil {
		t.Errorf("%v not among the live members of pool %s (%+v): %v", joined(), pool, ms, err)
	}
	for _, m := range ms {
		t.Logf("member %s: pid %d, %d partitions", m.ID, m.PID, m.Partitions)
	}

	d.startScalerd()
	if err := waitFor(wctx, d.scalerd, 50*time.Millisecond, func() bool {
		code, _ := get(ctx, fmt.Sprintf("http://127.0.0.1:%d/readyz", d.scalerdHTTP))
		return code == http.StatusOK
	}); err != nil {
		t.Fatalf("scalerd never answered /readyz with 200: %v", err)
	}
}

// checkPlacement: each agentd runs on the server it lists first.
func (d *deployment) checkPlacement(t *testing.T) {
	for _, a := range d.agentds {
		if got := a.connectedTo(); got != a.server.url() {
			t.Errorf("%s is connected to %q, want its own server %s (%s), listed first in its --nats", a.name, got, a.server.name, a.server.url())
		}
	}
}

// checkR3: every stream (A2A, the dead letters, the KV buckets) has three
// replicas placed, and so have the pool's partition consumers.
func (d *deployment) checkR3(t *testing.T) {
	ctx := t.Context()
	want := []string{agentbus.StreamName, agentbus.DeadLetterStreamName,
		"KV_" + agentbus.PoolsBucket, "KV_" + agentbus.MembersBucket, "KV_a2abus_hosts",
		"KV_" + a2anats.AgentsBucket, "KV_" + a2anats.TasksBucket}
	var seen []string
	l := d.js.ListStreams(ctx)
	for si := range l.Info() {
		seen = append(seen, si.Config.Name)
		peers := 0
		if si.Cluster != nil {
			peers = len(si.Cluster.Replicas)
		}
		if si.Config.Replicas != 3 || peers != 2 {
			t.Errorf("stream %s: %d replicas configured, a leader and %d peers placed; want R3", si.Config.Name, si.Config.Replicas, peers)
		}
	}
	if err := l.Err(); err != nil {
		t.Fatal(err)
	}
	for _, w := range want {
		if !slices.Contains(seen, w) {
			t.Errorf("no stream %s (streams: %v)", w, seen)
		}
	}
	slices.Sort(seen)
	t.Logf("streams, all checked for R3: %v", seen)

	infos, _, err := poolConsumers(ctx, d.js, pool)
	if err != nil {
		t.Fatal(err)
	}
	r3 := 0
	for _, ci := range infos {
		if ci.Cluster != nil && len(ci.Cluster.Replicas) == 2 {
			r3++
		}
	}
	if len(infos) != agentbus.DefaultPartitions || r3 != len(infos) {
		t.Errorf("pool %s: %d partition consumers, %d of them with three replicas; want %d, all R3", pool, len(infos), r3, agentbus.DefaultPartitions)
	}
}

// checkGateways: a round trip to echo through every agentd's A2A gateway,
// over JSON-RPC 1.0 (SendMessage) and 0.3 (message/send).
func (d *deployment) checkGateways(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	for _, a := range d.agentds {
		text := "hello " + a.name + " " + nuid.Next()
		m, tk, err := a.sendMessage(ctx, "echo", nuid.Next(), text)
		switch {
		case err != nil:
			t.Errorf("%s: SendMessage to echo: %v", a.name, err)
		case m == nil || texts(m.Parts) != text:
			t.Errorf("%s: SendMessage to echo answered message %+v, task %+v; want the text %q back", a.name, m, tk, text)
		}

		text = "hello 0.3 " + a.name + " " + nuid.Next()
		res, err := call(ctx, a.baseURL()+"/a2a/echo/v0.3", "message/send", map[string]any{
			"message": map[string]any{"kind": "message", "messageId": nuid.Next(), "role": "user",
				"parts": []part{{Kind: "text", Text: text}}},
		})
		if err != nil {
			t.Errorf("%s: message/send (A2A 0.3) to echo: %v", a.name, err)
			continue
		}
		var m03 struct {
			Kind  string `json:"kind"`
			Parts []part `json:"parts"`
		}
		if err := json.Unmarshal(res, &m03); err != nil || m03.Kind != "message" || texts(m03.Parts) != text {
			t.Errorf("%s: message/send to echo answered %s (%v); want a message with the text %q", a.name, res, err, text)
		}
	}
}

// checkSendWait: `agentd send --wait` against every server.
func (d *deployment) checkSendWait(t *testing.T) {
	for _, s := range d.servers {
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		text := "hello via " + s.name + " " + nuid.Next()
		out, err := exec.CommandContext(ctx, d.bin.agentd, "send", "--nats", s.url(), "--to", "echo", "--wait", text).CombinedOutput()
		cancel()
		if err != nil || strings.TrimSpace(string(out)) != text {
			t.Errorf("agentd send --nats %s --to echo --wait: %v, output %q; want %q", s.name, err, out, text)
		}
	}
}

// checkWorkerTasks: 60 SendMessage calls to worker, spread over the
// gateways, all COMPLETED with their artifact; each task read back with
// GetTask through another agentd.
func (d *deployment) checkWorkerTasks(t *testing.T) {
	const calls, parallel = 60, 6
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	var (
		mu       sync.Mutex
		problems []string
		done     atomic.Int64
		wg       sync.WaitGroup
		next     atomic.Int64
	)
	bad := func(format string, args ...any) {
		mu.Lock()
		problems = append(problems, fmt.Sprintf(format, args...))
		mu.Unlock()
	}
	start := time.Now()
	for range parallel {
		wg.Go(func() {
			for {
				n := int(next.Add(1)) - 1
				if n >= calls {
					return
				}
				a := d.agentds[n%len(d.agentds)]
				other := d.agentds[(n+1)%len(d.agentds)]
				job := fmt.Sprintf("job-%d-%s", n, nuid.Next())
				_, tk, err := a.sendMessage(ctx, "worker", nuid.Next(), job)
				if err != nil {
					bad("call %d via %s: %v", n, a.name, err)
					continue
				}
				if tk == nil {
					bad("call %d via %s: answered with no task", n, a.name)
					continue
				}
				want := "done: " + job
				got := ""
				if len(tk.Artifacts) == 1 {
					got = texts(tk.Artifacts[0].Parts)
				}
				if tk.Status.State != "TASK_STATE_COMPLETED" || got != want {
					bad("call %d via %s: task %s %s with %d artifacts %q; want COMPLETED with %q", n, a.name, tk.ID, tk.Status.State, len(tk.Artifacts), got, want)
					continue
				}
				res, err := call(ctx, other.baseURL()+"/a2a/worker", "GetTask", map[string]any{"id": tk.ID})
				var read task
				if err == nil {
					err = json.Unmarshal(res, &read)
				}
				if err != nil || read.ID != tk.ID || read.Status.State != "TASK_STATE_COMPLETED" {
					bad("call %d: GetTask %s via %s: %+v, %v; want it COMPLETED", n, tk.ID, other.name, read, err)
					continue
				}
				done.Add(1)
			}
		})
	}
	wg.Wait()
	t.Logf("worker: %d of %d tasks COMPLETED with their artifact and read back COMPLETED from another agentd, in %v",
		done.Load(), calls, time.Since(start).Round(time.Millisecond))
	for _, p := range problems {
		t.Error(p)
	}
}

// logScale logs scalerd's decision for the pool, for the record.
func (d *deployment) logScale(t *testing.T) {
	code, body := get(t.Context(), fmt.Sprintf("http://127.0.0.1:%d/scale", d.scalerdHTTP))
	t.Logf("scalerd /scale: %d %s", code, strings.TrimSpace(body))
}
