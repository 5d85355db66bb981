package a2anats_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"iter"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"regexp"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/a2abus/a2abus/agentbus"
	"github.com/a2abus/a2abus/agentbus/a2anats"
	"github.com/a2abus/a2abus/agentbus/a2anats/a2anatstest"
	"github.com/a2abus/a2abus/embedded"
	"github.com/a2abus/a2abus/embedded/embeddedtest"
	"github.com/a2abus/a2abus/internal/demoagent"
	"github.com/a2aproject/a2a-go/v2/a2a"
	"github.com/a2aproject/a2a-go/v2/a2aclient"
	"github.com/a2aproject/a2a-go/v2/a2asrv"
	"github.com/nats-io/nats.go/jetstream"
)

// memberProcessEnv, set to a NATS URL, turns the test binary into a member
// process of TestStoredCallOutlivesItsMember (see TestHelperMemberProcess).
const memberProcessEnv = "A2ABUS_TEST_A2ANATS_MEMBER"

// plodder is the agent of those processes: it works on a task for
// plodTime, as an LLM call takes seconds.
const (
	plodder  = "plodder"
	plodTime = 3 * time.Second
)

// TestHelperMemberProcess is not a test of its own: it is a member process
// of TestStoredCallOutlivesItsMember and TestPushConfigOutlivesItsMember,
// which serves plodder with the A2A SDK's handler, the KV task store and
// push notifications (configs in KV, a PushSender), on Serve's defaults
// (member TTL, ack wait, partitions), until it is killed or stopped.
func TestHelperMemberProcess(t *testing.T) {
	url := os.Getenv(memberProcessEnv)
	if url == "" {
		t.Skip("a member process of TestStoredCallOutlivesItsMember; runs only when it starts it")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	bus, err := agentbus.Connect(ctx, agentbus.WithURL(url), agentbus.WithLogger(log))
	if err != nil {
		t.Fatal(err)
	}
	tasks, err := a2anats.NewTaskStore(ctx, bus, plodder, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	sender, err := a2anats.NewPushSender(a2anats.PushLogger(log))
	if err != nil {
		t.Fatal(err)
	}
	s, err := a2anats.Handle(bus, plodder, a2asrv.NewHandler(plodExec{pid: os.Getpid()}, a2asrv.WithTaskStore(tasks),
		a2asrv.WithPushNotifications(tasks.PushConfigs(), sender.For(plodder))), a2anats.ServerLogger(log))
	if err != nil {
		t.Fatal(err)
	}
	if err := bus.Serve(ctx); err != nil {
		t.Fatalf("Serve: %v", err)
	}
	cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = s.Close(cctx)
	_ = sender.Close(cctx)
	_ = bus.Close(cctx)
}

// plodExec prints "started <pid> <task>" when it starts on a task, works
// for plodTime and completes the task with the artifact "done by <pid>".
type plodExec struct{ pid int }

func (e plodExec) Execute(ctx context.Context, ec *a2asrv.ExecutorContext) iter.Seq2[a2a.Event, error] {
	return func(yield func(a2a.Event, error) bool) {
		fmt.Printf("started %d %s\n", e.pid, ec.TaskID)
		if ec.StoredTask == nil && !yield(a2a.NewSubmittedTask(ec, ec.Message), nil) {
			return
		}
		if !yield(a2a.NewStatusUpdateEvent(ec, a2a.TaskStateWorking, nil), nil) {
			return
		}
		select {
		case <-time.After(plodTime):
		case <-ctx.Done():
			yield(nil, context.Cause(ctx))
			return
		}
		if !yield(a2a.NewArtifactEvent(ec, a2a.NewTextPart(fmt.Sprintf("done by %d", e.pid))), nil) {
			return
		}
		yield(a2a.NewStatusUpdateEvent(ec, a2a.TaskStateCompleted, nil), nil)
	}
}

func (plodExec) Cancel(context.Context, *a2asrv.ExecutorContext) iter.Seq2[a2a.Event, error] {
	return func(yield func(a2a.Event, error) bool) { yield(nil, a2a.ErrTaskNotCancelable) }
}

// memberProcess is one member process and what it printed.
type memberProcess struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	out  bytes.Buffer
	done chan struct{}
}

func (p *memberProcess) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.Write(b)
}

func (p *memberProcess) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

var startedLine = regexp.MustCompile(`(?m)^started (\d+) (\S+)$`)

// started returns the tasks the process started on, in order.
func (p *memberProcess) started() []string {
	var tasks []string
	for _, m := range startedLine.FindAllStringSubmatch(p.output(), -1) {
		tasks = append(tasks, m[2])
	}
	return tasks
}

func startMember(t *testing.T, url string) *memberProcess {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	p := &memberProcess{done: make(chan struct{})}
	p.cmd = exec.Command(exe, "-test.run=^TestHelperMemberProcess$", "-test.count=1")
	p.cmd.Env = append(os.Environ(), memberProcessEnv+"="+url)
	p.cmd.Stdout, p.cmd.Stderr = p, p
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
	})
	return p
}

// TestStoredCallOutlivesItsMember (issue 14): two member processes serve
// plodder; a durable SendMessage starts on one of them, which is killed
// (SIGKILL) mid-call. The call is run again by the other member, on the
// default member TTL and ack wait, in the task the first run created (the
// KV task store lets the new run see it): the caller gets one answer, the
// task it names is the first run's, completed by the surviving process;
// nothing is dead-lettered and nothing is left in the A2A stream.
func TestStoredCallOutlivesItsMember(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("kills a member process with SIGKILL")
	}
	srv := embeddedtest.RunServer(t)
	ctx := testCtx(t, 2*time.Minute)
	bus, members := plodders(t, ctx, srv)
	tr := durablePlodder(t, bus)
	answers := make(chan callResult, 2)
	go func() {
		res, err := tr.SendMessage(ctx, nil, &a2a.SendMessageRequest{Message: a2a.NewMessage(a2a.MessageRoleUser, a2a.NewTextPart("plod on"))})
		answers <- callResult{res, err}
	}()
	first, survivor, firstTask := startedCall(t, ctx, bus, members, answers)
	if err := first.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-first.done

	r := <-answers
	if r.err != nil {
		t.Fatalf("the call whose member was killed mid-call: %v\nsurvivor's output:\n%s", r.err, survivor.output())
	}
	task, ok := r.res.(*a2a.Task)
	if !ok {
		t.Fatalf("result %#v, want a task", r.res)
	}
	pid := strconv.Itoa(survivor.cmd.Process.Pid)
	if string(task.ID) != firstTask || task.Status.State != a2a.TaskStateCompleted ||
		len(task.Artifacts) != 1 || demoagent.Text(&a2a.Message{Parts: task.Artifacts[0].Parts}) != "done by "+pid {
		t.Fatalf("answer: task %s %s %v, want the first run's task %s completed \"done by %s\"", task.ID, task.Status.State, task.Artifacts, firstTask, pid)
	}
	if got := survivor.started(); len(got) != 1 || got[0] != firstTask {
		t.Fatalf("the surviving member started on tasks %v, want the first run's task %s once", got, firstTask)
	}
	select {
	case r := <-answers:
		t.Fatalf("a second answer: %v, %v", r.res, r.err)
	case <-time.After(100 * time.Millisecond):
	}

	js, err := jetstream.New(bus.Conn())
	if err != nil {
		t.Fatal(err)
	}
	dlq, err := js.Stream(ctx, agentbus.DeadLetterStreamName)
	if err == nil {
		info, err := dlq.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.State.Msgs != 0 {
			t.Fatalf("%d dead letters", info.State.Msgs)
		}
	}
	for n := storedCalls(t, ctx, js); n != 0; n = storedCalls(t, ctx, js) {
		select {
		case <-ctx.Done():
			t.Fatalf("%d calls left in the A2A stream", n)
		case <-time.After(20 * time.Millisecond):
		}
	}
	sc := bufio.NewScanner(bytes.NewReader([]byte(survivor.output())))
	for sc.Scan() {
		t.Logf("survivor: %s", sc.Text())
	}
}

// callResult is what a call answered.
type callResult struct {
	res a2a.SendMessageResult
	err error
}

// plodders declares plodder's pool (the one Serve makes by default for a
// process of one agent), starts two member processes serving it and waits
// until both joined. It returns a bus of the test's and the members.
func plodders(t *testing.T, ctx context.Context, srv *embedded.Server) (*agentbus.Bus, []*memberProcess) {
	t.Helper()
	bus := a2anatstest.ConnectBus(t, srv)
	if _, err := bus.Declare(ctx, agentbus.PoolConfig{Name: plodder}, plodder); err != nil {
		t.Fatal(err)
	}
	members := []*memberProcess{startMember(t, srv.ClientURL()), startMember(t, srv.ClientURL())}
	for {
		ms, err := bus.Members(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(ms) == 2 {
			return bus, members
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the member processes did not join within 2 minutes:\n%s\n%s", members[0].output(), members[1].output())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// durablePlodder returns a transport to plodder whose calls are stored.
func durablePlodder(t *testing.T, bus *agentbus.Bus) a2aclient.Transport {
	t.Helper()
	c, err := a2anats.NewClient(bus, a2anats.ClientMode(agentbus.Durable))
	if err != nil {
		t.Fatal(err)
	}
	tr, err := c.Transport(plodder)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// startedCall waits until one of the members started on the call's task
// and the task is stored (a run killed before it stored anything leaves
// nothing to go on with, and is run anew), and returns that member, the
// other and the task's ID. An answer before fails the test.
func startedCall(t *testing.T, ctx context.Context, bus *agentbus.Bus, members []*memberProcess, answers <-chan callResult) (first, survivor *memberProcess, task string) {
	t.Helper()
	for first == nil {
		for i, m := range members {
			if len(m.started()) > 0 {
				first, survivor = m, members[1-i]
			}
		}
		select {
		case r := <-answers:
			t.Fatalf("answered before it was seen started: %v, %v", r.res, r.err)
		case <-ctx.Done():
			t.Fatalf("the call did not start:\n%s\n%s", members[0].output(), members[1].output())
		case <-time.After(10 * time.Millisecond):
		}
	}
	task = first.started()[0]
	js, err := jetstream.New(bus.Conn())
	if err != nil {
		t.Fatal(err)
	}
	tasks, err := js.KeyValue(ctx, a2anats.TasksBucket)
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := tasks.Get(ctx, plodder+"."+task); err == nil {
			return first, survivor, task
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the first run's task %s was never stored:\n%s", task, first.output())
		case <-time.After(5 * time.Millisecond):
		}
	}
}
