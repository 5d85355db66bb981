package agentd

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/a2abus/a2abus/agentbus"
	"github.com/a2abus/a2abus/agentbus/a2anats"
	"github.com/a2abus/a2abus/agentbus/a2anats/a2anatstest"
	"github.com/a2abus/a2abus/embedded/embeddedtest"
	"github.com/a2abus/a2abus/internal/demoagent"
	"github.com/a2aproject/a2a-go/v2/a2a"
	"github.com/a2aproject/a2a-go/v2/a2aclient"
	"github.com/a2aproject/a2a-go/v2/a2aclient/agentcard"
	"github.com/a2aproject/a2a-go/v2/a2asrv"
	"github.com/nats-io/nats.go/jetstream"
)

// agentProcessEnv, set to a NATS URL, turns the test binary into the agent
// process of TestHeterogeneousPools (see TestHelperAgentProcess).
const agentProcessEnv = "A2ABUS_TEST_AGENT_PROCESS"

// scribe is the agent of that process.
const scribe = "scribe"

// TestHelperAgentProcess is not a test of its own: TestHeterogeneousPools
// runs the test binary with agentProcessEnv set as a separate agent
// process, which serves the A2A SDK agent scribe as the README shows (its
// own bus, a2anats.Handle, its card registered, bus.Serve with no options:
// a pool named after the agent) until SIGTERM, then drains and exits 0.
func TestHelperAgentProcess(t *testing.T) {
	url := os.Getenv(agentProcessEnv)
	if url == "" {
		t.Skip("the agent process of TestHeterogeneousPools; runs only when it starts it")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	bus, err := agentbus.Connect(ctx, agentbus.WithURL(url), agentbus.WithName("scribe-process"), agentbus.WithLogger(log))
	if err != nil {
		t.Fatal(err)
	}
	reg, err := a2anats.NewRegistry(ctx, bus)
	if err != nil {
		t.Fatal(err)
	}
	tasks, err := a2anats.NewTaskStore(ctx, bus, scribe, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	s, err := a2anats.Handle(bus, scribe, a2asrv.NewHandler(scribeExec{pid: os.Getpid()}, a2asrv.WithTaskStore(tasks)), a2anats.ServerLogger(log))
	if err != nil {
		t.Fatal(err)
	}
	if err := reg.Register(ctx, scribe, demoagent.Card(scribe, "writes things down, in a process of its own"), ""); err != nil {
		t.Fatal(err)
	}
	if err := bus.Serve(ctx); err != nil {
		t.Fatalf("Serve: %v", err)
	}
	// Serve has drained and left: the calls it started end, then the bus
	// closes.
	cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Close(cctx); err != nil {
		t.Errorf("close the A2A server: %v", err)
	}
	if err := bus.Close(cctx); err != nil {
		t.Errorf("close the bus: %v", err)
	}
}

// scribeExec answers a message, after a handler time like an LLM call's
// (50 to 300 ms), with "scribe <pid>: <text>", so that the caller sees
// which process answered.
type scribeExec struct{ pid int }

func (e scribeExec) Execute(ctx context.Context, ec *a2asrv.ExecutorContext) iter.Seq2[a2a.Event, error] {
	return func(yield func(a2a.Event, error) bool) {
		select {
		case <-time.After(50*time.Millisecond + rand.N(250*time.Millisecond)):
		case <-ctx.Done():
			yield(nil, context.Cause(ctx))
			return
		}
		yield(a2a.NewMessage(a2a.MessageRoleAgent, a2a.NewTextPart(fmt.Sprintf("%s %d: %s", scribe, e.pid, demoagent.Text(ec.Message)))), nil)
	}
}

func (scribeExec) Cancel(context.Context, *a2asrv.ExecutorContext) iter.Seq2[a2a.Event, error] {
	return func(yield func(a2a.Event, error) bool) { yield(nil, a2a.ErrTaskNotCancelable) }
}

// agentProcess is one run of the agent process.
type agentProcess struct {
	cmd  *exec.Cmd
	out  *logBuffer
	done chan struct{} // closed when it has exited; err is then set
	err  error
}

func startAgentProcess(t *testing.T, natsURL string) *agentProcess {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	p := &agentProcess{out: &logBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(exe, "-test.run=^TestHelperAgentProcess$", "-test.count=1")
	p.cmd.Env = append(os.Environ(), agentProcessEnv+"="+natsURL)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
	})
	return p
}

// stop stops the process as an orchestrator would (SIGTERM) and fails the
// test unless it drains and exits 0.
func (p *agentProcess) stop(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
	case <-time.After(time.Minute):
		t.Fatalf("agent process %d did not exit a minute after SIGTERM; its output:\n%s", p.cmd.Process.Pid, p.out)
	}
	if p.err != nil {
		t.Fatalf("agent process %d: %v; its output:\n%s", p.cmd.Process.Pid, p.err, p.out)
	}
}

// callPath is one way of calling an agent: an a2a-go client per agent.
type callPath struct {
	name    string
	clients map[string]*a2aclient.Client
}

// ledger records what every call got.
type ledger struct {
	mu    sync.Mutex
	ok    map[string]int // by "path agent"
	byPID map[int]int    // scribe's answers by the process that gave them
	errs  []string
}

func (l *ledger) fail(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.errs = append(l.errs, fmt.Sprintf(format, args...))
}

func (l *ledger) answeredBy(pid int) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.byPID[pid]
}

// TestHeterogeneousPools (issue 13): a real agentd --demo (in-process, on
// a server of its own) and a separate agent process serving its own SDK
// agent (scribe) share one bus; the agent process is stopped and started
// again several times while callers keep calling echo, worker and scribe
// with the a2a-go client, through agentd's gateway and over the bus
// (a2anats, auto and durable). Every call is answered, by the process that
// hosts the agent: echo and worker by agentd (their exact answers), scribe
// by one of the agent process's runs (its PID in the answer), each run
// answering some; never "no handler", never lost answers, nothing
// dead-lettered; the two processes are members of two pools, each with its
// own agents.
func TestHeterogeneousPools(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("stops its agent process with SIGTERM")
	}
	const (
		restarts = 4
		callers  = 6
		perRun   = 4 // scribe answers from each run before it is stopped
	)
	srv := embeddedtest.RunServer(t)
	cfg := testConfig(t)
	cfg.NATS = srv.ClientURL()
	cfg.Demo = true
	cfg.DemoDelay = 100 * time.Millisecond
	d := startDaemon(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	bus := a2anatstest.ConnectBus(t, srv)
	reg, err := a2anats.NewRegistry(ctx, bus)
	if err != nil {
		t.Fatal(err)
	}
	procs := []*agentProcess{startAgentProcess(t, srv.ClientURL())}
	// The first run declares scribe's pool and registers its card; both
	// stay when it stops.
	for {
		pools, err := bus.Pools(ctx)
		if declares(pools, scribe, agentbus.DefaultPartitions, scribe) {
			if _, err := reg.Card(ctx, scribe); err == nil {
				break
			}
		}
		select {
		case <-procs[0].done:
			t.Fatalf("the agent process exited at start: %v\n%s", procs[0].err, procs[0].out)
		case <-ctx.Done():
			t.Fatalf("scribe's pool and card not in the registry: %v %v\n%s", pools, err, procs[0].out)
		case <-time.After(20 * time.Millisecond):
		}
	}

	agents := []string{"echo", "worker", scribe}
	paths := []callPath{{name: "gateway"}, {name: "bus-auto"}, {name: "bus-durable"}}
	for i := range paths {
		paths[i].clients = map[string]*a2aclient.Client{}
		for _, a := range agents {
			var c *a2aclient.Client
			switch paths[i].name {
			case "gateway":
				card, err := agentcard.DefaultResolver.Resolve(ctx, "http://"+d.HTTPAddr()+"/a2a/"+a)
				if err != nil {
					t.Fatalf("resolve %s's card at the gateway: %v", a, err)
				}
				c, err = a2aclient.NewFromCard(ctx, card)
				if err != nil {
					t.Fatal(err)
				}
			default:
				mode := agentbus.Auto
				if paths[i].name == "bus-durable" {
					mode = agentbus.Durable
				}
				card, err := reg.Card(ctx, a)
				if err != nil {
					t.Fatal(err)
				}
				if c, err = a2aclient.NewFromCard(ctx, card, a2anats.WithTransport(bus, a2anats.ClientMode(mode))); err != nil {
					t.Fatal(err)
				}
			}
			paths[i].clients[a] = c
		}
	}

	l := &ledger{ok: map[string]int{}, byPID: map[int]int{}}
	stopCalls := make(chan struct{})
	var wg sync.WaitGroup
	for g := range callers {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stopCalls:
					return
				case <-ctx.Done():
					return
				default:
				}
				p := paths[(g+i)%len(paths)]
				a := agents[(g+i/len(paths))%len(agents)]
				call(ctx, l, p, a, fmt.Sprintf("c%d-%d", g, i))
			}
		})
	}

	// Run after run: let each answer some of scribe's calls, then stop it
	// while calls are in flight, and start the next one after a moment of
	// downtime (the calls made meanwhile wait for it).
	for run := 0; ; run++ {
		p := procs[run]
		pid := p.cmd.Process.Pid
		for l.answeredBy(pid) < perRun {
			select {
			case <-p.done:
				t.Fatalf("agent process %d exited: %v\n%s", pid, p.err, p.out)
			case <-ctx.Done():
				t.Fatalf("agent process %d answered %d calls in time; errors so far: %v\n%s", pid, l.answeredBy(pid), l.errs, p.out)
			case <-time.After(10 * time.Millisecond):
			}
		}
		if run == 0 {
			checkPools(ctx, t, bus, cfg.Pool)
		}
		if run == restarts {
			break
		}
		p.stop(t)
		time.Sleep(200 * time.Millisecond)
		procs = append(procs, startAgentProcess(t, srv.ClientURL()))
	}
	close(stopCalls)
	wg.Wait()
	procs[restarts].stop(t)

	l.mu.Lock()
	defer l.mu.Unlock()
	t.Logf("answered calls by path and agent: %v; scribe's answers by process: %v", l.ok, l.byPID)
	if len(l.errs) > 0 {
		t.Errorf("%d calls failed; the first ones:\n%s", len(l.errs), strings.Join(l.errs[:min(len(l.errs), 10)], "\n"))
	}
	for _, p := range paths {
		for _, a := range agents {
			if l.ok[p.name+" "+a] == 0 {
				t.Errorf("no call to %s through %s was answered", a, p.name)
			}
		}
	}
	for _, p := range procs {
		if out := p.out.String(); strings.Contains(out, "no handler") || strings.Contains(out, "panic") {
			t.Errorf("agent process %d's output:\n%s", p.cmd.Process.Pid, out)
		}
	}
	js, err := jetstream.New(bus.Conn())
	if err != nil {
		t.Fatal(err)
	}
	dlq, err := js.Stream(ctx, agentbus.DeadLetterStreamName)
	if err != nil {
		t.Fatal(err)
	}
	if n := dlq.CachedInfo().State.Msgs; n != 0 {
		t.Errorf("%d dead letters, want none", n)
	}
}

// call makes one call to agent through path and records its outcome: an
// error, or an answer that is not the hosting process's, is a failure.
func call(ctx context.Context, l *ledger, path callPath, agent, text string) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	res, err := path.clients[agent].SendMessage(ctx, &a2a.SendMessageRequest{Message: a2a.NewMessage(a2a.MessageRoleUser, a2a.NewTextPart(text))})
	if err != nil {
		l.fail("%s %s %q: %v", path.name, agent, text, err)
		return
	}
	var got string
	switch r := res.(type) {
	case *a2a.Message:
		got = demoagent.Text(r)
	case *a2a.Task:
		if r.Status.State != a2a.TaskStateCompleted || len(r.Artifacts) != 1 {
			l.fail("%s %s %q: task %s, %d artifacts", path.name, agent, text, r.Status.State, len(r.Artifacts))
			return
		}
		got = demoagent.Text(&a2a.Message{Parts: r.Artifacts[0].Parts})
	default:
		l.fail("%s %s %q: result %T", path.name, agent, text, res)
		return
	}
	pid := 0
	switch agent {
	case "echo":
		if got != text {
			err = errors.New("not echo's answer")
		}
	case "worker":
		if got != "done: "+text {
			err = errors.New("not worker's answer")
		}
	case scribe:
		who, said, _ := strings.Cut(got, ": ")
		if name, n, _ := strings.Cut(who, " "); name != scribe || said != text {
			err = errors.New("not scribe's answer")
		} else if pid, _ = strconv.Atoi(n); pid == 0 || pid == os.Getpid() {
			err = errors.New("not answered by the agent process")
		}
	}
	if err != nil {
		l.fail("%s %s %q: answer %q: %v", path.name, agent, text, got, err)
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ok[path.name+" "+agent]++
	if pid != 0 {
		l.byPID[pid]++
	}
}

// declares reports whether pools holds pool, with partitions partitions,
// serving agents.
func declares(pools map[agentbus.PoolConfig][]string, pool string, partitions int, agents ...string) bool {
	for c, a := range pools {
		if c.Name == pool {
			return c.Partitions == partitions && slices.Equal(a, agents)
		}
	}
	return false
}

// checkPools waits until the bus's live members are agentd's, in its pool
// with echo and worker, and the agent process's, in pool scribe with
// scribe alone.
func checkPools(ctx context.Context, t *testing.T, bus *agentbus.Bus, agentdPool string) {
	t.Helper()
	var members []agentbus.Member
	var err error
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		members, err = bus.Members(ctx)
		if err != nil {
			continue
		}
		var pools []string
		good := true
		for _, m := range members {
			pools = append(pools, m.Pool)
			switch m.Pool {
			case agentdPool:
				good = good && slices.Equal(m.Agents, []string{"echo", "tck", "worker"})
			case scribe:
				good = good && slices.Equal(m.Agents, []string{scribe})
			default:
				good = false
			}
		}
		if good && slices.Equal(slices.Compact(pools), []string{agentdPool, scribe}) {
			return
		}
	}
	t.Fatalf("members %+v (%v); want agentd's in pool %s serving echo, tck and worker, and one in pool scribe serving scribe", members, err, agentdPool)
}
