package a2anats_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/a2abus/a2abus/agentbus"
	"github.com/a2abus/a2abus/agentbus/a2anats"
	"github.com/a2abus/a2abus/agentbus/a2anats/a2anatstest"
	"github.com/a2abus/a2abus/codec"
	"github.com/a2abus/a2abus/embedded"
	"github.com/a2abus/a2abus/embedded/embeddedtest"
	"github.com/a2abus/a2abus/internal/demoagent"
	"github.com/a2aproject/a2a-go/v2/a2a"
	"github.com/a2aproject/a2a-go/v2/a2aclient"
	"github.com/a2aproject/a2a-go/v2/a2asrv"
	"github.com/nats-io/nats.go/jetstream"
)

func testCtx(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// agents serves the demo agents echo and worker (with delay) over a bus of
// their own and returns the registry.
func agents(t *testing.T, srv *embedded.Server, delay time.Duration) *a2anats.Registry {
	return a2anatstest.Host(t, srv, map[string]a2asrv.AgentExecutor{"echo": demoagent.Echo{}, "worker": demoagent.Worker{Delay: delay}})
}

func client(t *testing.T, bus *agentbus.Bus, reg *a2anats.Registry, agent string, opts ...a2anats.ClientOption) *a2aclient.Client {
	t.Helper()
	ctx := testCtx(t, 30*time.Second)
	card, err := reg.Card(ctx, agent)
	if err != nil {
		t.Fatal(err)
	}
	c, err := a2aclient.NewFromCard(ctx, card, a2anats.WithTransport(bus, opts...))
	if err != nil {
		t.Fatalf("client from %s's card: %v", agent, err)
	}
	return c
}

func text(s string) *a2a.SendMessageRequest {
	return &a2a.SendMessageRequest{Message: a2a.NewMessage(a2a.MessageRoleUser, a2a.NewTextPart(s))}
}

func TestSendMessageBothModes(t *testing.T) {
	srv := embeddedtest.RunServer(t)
	reg := agents(t, srv, 0)
	bus := a2anatstest.ConnectBus(t, srv)
	for _, mode := range []agentbus.RequestMode{agentbus.Durable, agentbus.Direct} {
		c := client(t, bus, reg, "echo", a2anats.ClientMode(mode))
		res, err := c.SendMessage(testCtx(t, 30*time.Second), text("hello"))
		if err != nil {
			t.Fatalf("mode %d: %v", mode, err)
		}
		msg, ok := res.(*a2a.Message)
		if !ok || demoagent.Text(msg) != "hello" {
			t.Fatalf("mode %d: result %#v, want the message \"hello\"", mode, res)
		}
	}
}

func TestTaskLifecycle(t *testing.T) {
	srv := embeddedtest.RunServer(t)
	reg := agents(t, srv, 100*time.Millisecond)
	bus := a2anatstest.ConnectBus(t, srv)
	c := client(t, bus, reg, "worker")
	ctx := testCtx(t, 30*time.Second)

	// Streaming: the task, working, the artifact, completed, in order.
	taskID := a2anatstest.WorkerJob(t, ctx, c)

	// GetTask from another client reads the stored task.
	task, err := client(t, a2anatstest.ConnectBus(t, srv), reg, "worker").GetTask(ctx, &a2a.GetTaskRequest{ID: taskID})
	if err != nil {
		t.Fatal(err)
	}
	if task.Status.State != a2a.TaskStateCompleted || len(task.Artifacts) != 1 {
		t.Fatalf("task %+v, want completed with one artifact", task)
	}

	// Another agent does not know the task: each agent has its own tasks.
	if _, err := client(t, bus, reg, "echo").GetTask(ctx, &a2a.GetTaskRequest{ID: taskID}); !errors.Is(err, a2a.ErrTaskNotFound) {
		t.Fatalf("echo's GetTask of worker's task: %v, want ErrTaskNotFound", err)
	}

	// A completed task cannot be canceled; an unknown one is not found.
	_, err = c.CancelTask(ctx, &a2a.CancelTaskRequest{ID: taskID})
	if !errors.Is(err, a2a.ErrTaskNotCancelable) {
		t.Fatalf("cancel a completed task: %v, want ErrTaskNotCancelable", err)
	}
	_, err = c.GetTask(ctx, &a2a.GetTaskRequest{ID: "no-such-task"})
	if !errors.Is(err, a2a.ErrTaskNotFound) {
		t.Fatalf("get an unknown task: %v, want ErrTaskNotFound", err)
	}
}

func TestCancelRunningTask(t *testing.T) {
	srv := embeddedtest.RunServer(t)
	reg := agents(t, srv, time.Minute)
	bus := a2anatstest.ConnectBus(t, srv)
	c := client(t, bus, reg, "worker")
	ctx := testCtx(t, 30*time.Second)

	req := text("long job")
	req.Config = &a2a.SendMessageConfig{ReturnImmediately: true}
	res, err := c.SendMessage(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	task, ok := res.(*a2a.Task)
	if !ok {
		t.Fatalf("result %T, want a task", res)
	}
	// The cancel does not wait behind the running call to the same agent.
	canceled, err := c.CancelTask(ctx, &a2a.CancelTaskRequest{ID: task.ID})
	if err != nil {
		t.Fatal(err)
	}
	if canceled.Status.State != a2a.TaskStateCanceled {
		t.Fatalf("after cancel: %s", canceled.Status.State)
	}
	got, err := c.GetTask(ctx, &a2a.GetTaskRequest{ID: task.ID})
	if err != nil || got.Status.State != a2a.TaskStateCanceled {
		t.Fatalf("GetTask after cancel: %v, %v", got, err)
	}
}

// TestDirectWithoutConsumer: a direct call to an agent no pool declared
// fails at once with ErrUnknownAgent; to a declared agent whose pool has
// no member pulling, at once with ErrNoConsumer.
func TestDirectWithoutConsumer(t *testing.T) {
	srv := embeddedtest.RunServer(t)
	bus := a2anatstest.ConnectBus(t, srv)
	ctx := testCtx(t, 10*time.Second)
	if _, err := bus.Declare(ctx, agentbus.PoolConfig{Name: "idle", Partitions: a2anatstest.Partitions}, "nobody"); err != nil {
		t.Fatal(err)
	}
	c, err := a2anats.NewClient(bus, a2anats.ClientMode(agentbus.Direct))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, agent string
		wantErr     error
	}{
		{"undeclared", "stranger", agentbus.ErrUnknownAgent},
		{"declared, no member", "nobody", agentbus.ErrNoConsumer},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr, err := c.Transport(tc.agent)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := tr.SendMessage(ctx, nil, text("x")); !errors.Is(err, tc.wantErr) {
				t.Fatalf("direct call: %v, want %v", err, tc.wantErr)
			}
		})
	}
}

// TestBusErrorReply: a call whose bus handler fails for good (here a plain
// bus handler, not an a2anats Server) ends with the handler's error,
// never as answers lost.
func TestBusErrorReply(t *testing.T) {
	srv := embeddedtest.RunServer(t)
	host := a2anatstest.ConnectBus(t, srv)
	if err := host.Handle("broken", func(context.Context, *codec.Envelope) error {
		return errors.New("the model is down")
	}); err != nil {
		t.Fatal(err)
	}
	a2anatstest.Serve(t, host, a2anatstest.PoolName("broken"))
	bus := a2anatstest.ConnectBus(t, srv)
	for _, mode := range []agentbus.RequestMode{agentbus.Direct, agentbus.Durable} {
		c, err := a2anats.NewClient(bus, a2anats.ClientMode(mode))
		if err != nil {
			t.Fatal(err)
		}
		tr, err := c.Transport("broken")
		if err != nil {
			t.Fatal(err)
		}
		_, err = tr.SendMessage(testCtx(t, 30*time.Second), nil, text("x"))
		if err == nil || errors.Is(err, a2anats.ErrEventsLost) || !strings.Contains(err.Error(), "the model is down") {
			t.Fatalf("mode %d: %v, want the handler's error", mode, err)
		}
	}
}

// TestBadCalls: envelopes that are not valid calls get the A2A error that
// says why, never a hang.
func TestBadCalls(t *testing.T) {
	srv := embeddedtest.RunServer(t)
	agents(t, srv, 0)
	bus := a2anatstest.ConnectBus(t, srv)
	cases := []struct {
		name    string
		kind    string
		payload any
		want    error
	}{
		{"unknown method", "a2a.Frobnicate", []byte(`{}`), a2a.ErrMethodNotFound},
		{"not JSON", "a2a.SendMessage", []byte(`{"message":`), a2a.ErrParseError},
		{"bad params", "a2a.GetTask", []byte(`{"id":7}`), a2a.ErrInvalidParams},
		{"no params", "a2a.GetTask", []byte{}, a2a.ErrInvalidParams},
		{"no payload", "a2a.GetTask", nil, a2a.ErrInvalidRequest},
		{"not a call", "message", []byte(`{}`), a2a.ErrInvalidRequest},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// A plain bus request gets the error too, as agentbus.ErrRemote.
			reply, err := bus.Request(testCtx(t, 30*time.Second), &codec.Envelope{To: "echo", Kind: tc.kind, Payload: tc.payload}, agentbus.Durable)
			if !errors.Is(err, agentbus.ErrRemote) || reply == nil {
				t.Fatalf("request: %v, want agentbus.ErrRemote and the error answer", err)
			}
			if reply.Kind != a2anats.KindError {
				t.Fatalf("answer kind %q, want %q", reply.Kind, a2anats.KindError)
			}
			if got, want := reply.Headers.Get(a2anats.HeaderCode), wantCode(tc.want); got != want {
				t.Fatalf("code %s (%s), want %s", got, reply.Headers.Get(a2anats.HeaderError), want)
			}
		})
	}
}

func wantCode(err error) string {
	return map[error]string{
		a2a.ErrParseError: "-32700", a2a.ErrInvalidRequest: "-32600",
		a2a.ErrMethodNotFound: "-32601", a2a.ErrInvalidParams: "-32602",
	}[err]
}

// TestManyConcurrentCalls: calls from many goroutines get their own
// answers.
func TestManyConcurrentCalls(t *testing.T) {
	srv := embeddedtest.RunServer(t)
	reg := agents(t, srv, 0)
	bus := a2anatstest.ConnectBus(t, srv)
	c := client(t, bus, reg, "echo")
	ctx := testCtx(t, time.Minute)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 20 {
				want := strings.Repeat("x", i) + string(rune('a'+j))
				res, err := c.SendMessage(ctx, text(want))
				if err != nil {
					errs <- err
					return
				}
				if got := demoagent.Text(res.(*a2a.Message)); got != want {
					errs <- errors.New("answer " + got + " to " + want)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func TestAgentFromURL(t *testing.T) {
	for _, tc := range []struct {
		url, want string
		ok        bool
	}{
		{"nats://localhost:4222/a2a/echo", "echo", true},
		{a2anats.Interface("w-1", "").URL, "w-1", true},
		{"http://localhost/a2a/echo", "", false},
		{"nats://localhost/echo", "", false},
		{"nats://localhost/a2a/bad.id", "", false},
		{"nats://localhost/a2a/", "", false},
		{"::", "", false},
	} {
		got, err := a2anats.AgentFromURL(tc.url)
		if tc.ok != (err == nil) || got != tc.want {
			t.Errorf("AgentFromURL(%q) = %q, %v", tc.url, got, err)
		}
		if err != nil && !errors.Is(err, a2anats.ErrBadURL) {
			t.Errorf("AgentFromURL(%q): %v does not wrap ErrBadURL", tc.url, err)
		}
	}
}

// TestDaemonRoleCoversBuckets: agentd's narrowed role (agentbus) names
// this package's buckets, which it cannot import.
func TestDaemonRoleCoversBuckets(t *testing.T) {
	perms := strings.Join(agentbus.DaemonPermissions().Publish, " ")
	for _, b := range []string{a2anats.AgentsBucket, a2anats.TasksBucket} {
		if !strings.Contains(perms, "$KV."+b+".") || !strings.Contains(perms, "KV_"+b) {
			t.Errorf("agentd's role does not cover bucket %s: %s", b, perms)
		}
	}
}

// TestAutoWaitsForConsumer: an Auto call nobody receives is stored and
// answered once a consumer comes; with a consumer it goes direct.
func TestAutoWaitsForConsumer(t *testing.T) {
	srv := embeddedtest.RunServer(t)
	bus := a2anatstest.ConnectBus(t, srv)
	ctx := testCtx(t, time.Minute)
	// Declared in the pool agents() serves it in, before any member.
	if _, err := bus.Declare(ctx, agentbus.PoolConfig{Name: a2anatstest.PoolName("echo", "worker"), Partitions: a2anatstest.Partitions}, "echo"); err != nil {
		t.Fatal(err)
	}
	c, err := a2anats.NewClient(bus, a2anats.ClientMode(agentbus.Auto))
	if err != nil {
		t.Fatal(err)
	}
	tr, err := c.Transport("echo")
	if err != nil {
		t.Fatal(err)
	}
	js, _ := jetstream.New(embeddedtest.Connect(t, srv))
	lastSeq := func() uint64 {
		s, err := js.Stream(ctx, agentbus.StreamName)
		if err != nil {
			t.Fatal(err)
		}
		return s.CachedInfo().State.LastSeq
	}
	got := make(chan error, 1)
	go func() {
		res, err := tr.SendMessage(ctx, nil, text("later"))
		if err == nil && demoagent.Text(res.(*a2a.Message)) != "later" {
			err = errors.New("wrong answer")
		}
		got <- err
	}()
	for lastSeq() != 1 {
		time.Sleep(5 * time.Millisecond)
	}
	agents(t, srv, 0)
	if err := <-got; err != nil {
		t.Fatalf("stored Auto call: %v", err)
	}
	res, err := tr.SendMessage(ctx, nil, text("now"))
	if err != nil || demoagent.Text(res.(*a2a.Message)) != "now" {
		t.Fatalf("Auto call with a consumer: %v, %v", res, err)
	}
	if n := lastSeq(); n != 1 {
		t.Fatalf("stream's last sequence %d, want 1: the call with a consumer was stored", n)
	}
}

// TestTaskOutlivesItsConsumer: a task run by one consumer is read and
// continued by the next one that owns the agent, through the KV store.
func TestTaskOutlivesItsConsumer(t *testing.T) {
	srv := embeddedtest.RunServer(t)
	ctx := testCtx(t, time.Minute)
	hostWorker := func() (stop func()) {
		bus := a2anatstest.ConnectBus(t, srv)
		tasks, err := a2anats.NewTaskStore(ctx, bus, "worker", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		s, err := a2anats.Handle(bus, "worker", a2asrv.NewHandler(demoagent.Worker{}, a2asrv.WithTaskStore(tasks)))
		if err != nil {
			t.Fatal(err)
		}
		sctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- bus.Serve(sctx, agentbus.ServeMemberTTL(time.Second)) }()
		return func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Serve: %v", err)
			}
			_ = s.Close(ctx)
		}
	}
	callerBus := a2anatstest.ConnectBus(t, srv)
	// The pool Serve makes by default for a process with one agent: named
	// after it, DefaultPartitions. Declared first, so that the call does
	// not race the first member's declaration.
	if _, err := callerBus.Declare(ctx, agentbus.PoolConfig{Name: "worker"}, "worker"); err != nil {
		t.Fatal(err)
	}
	c, err := a2anats.NewClient(callerBus)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := c.Transport("worker")
	if err != nil {
		t.Fatal(err)
	}

	stopA := hostWorker()
	res, err := tr.SendMessage(ctx, nil, text("first"))
	if err != nil {
		t.Fatal(err)
	}
	task := res.(*a2a.Task)
	stopA()

	stopB := hostWorker()
	defer stopB()
	got, err := tr.GetTask(ctx, nil, &a2a.GetTaskRequest{ID: task.ID})
	if err != nil {
		t.Fatalf("GetTask on the next consumer: %v", err)
	}
	if got.Status.State != a2a.TaskStateCompleted || len(got.Artifacts) != 1 {
		t.Fatalf("task on the next consumer: %+v", got)
	}
	// A follow-up message to the task is judged there on its stored
	// state: completed, so refused as such (not as an unknown task).
	next := text("second")
	next.Message.TaskID = task.ID
	_, err = tr.SendMessage(ctx, nil, next)
	if !errors.Is(err, a2a.ErrInvalidParams) || !strings.Contains(err.Error(), "terminal state") {
		t.Fatalf("follow-up to a completed task on the next consumer: %v, want invalid params for its terminal state", err)
	}
}

// TestListTasks: the KV task store lists the tasks newest first, paged
// and filtered.
func TestListTasks(t *testing.T) {
	srv := embeddedtest.RunServer(t)
	reg := agents(t, srv, 0)
	c := client(t, a2anatstest.ConnectBus(t, srv), reg, "worker")
	ctx := testCtx(t, time.Minute)
	var ids []a2a.TaskID
	for i := range 3 {
		res, err := c.SendMessage(ctx, text("job "+string(rune('a'+i))))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, res.(*a2a.Task).ID)
		time.Sleep(2 * time.Millisecond) // distinct update times
	}
	page, err := c.ListTasks(ctx, &a2a.ListTasksRequest{PageSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	if page.TotalSize != 3 || len(page.Tasks) != 2 || page.NextPageToken == "" ||
		page.Tasks[0].ID != ids[2] || page.Tasks[1].ID != ids[1] {
		t.Fatalf("first page: %d of %d, next %q", len(page.Tasks), page.TotalSize, page.NextPageToken)
	}
	rest, err := c.ListTasks(ctx, &a2a.ListTasksRequest{PageSize: 2, PageToken: page.NextPageToken})
	if err != nil {
		t.Fatal(err)
	}
	if len(rest.Tasks) != 1 || rest.Tasks[0].ID != ids[0] || rest.NextPageToken != "" {
		t.Fatalf("second page: %+v", rest)
	}
	byContext, err := c.ListTasks(ctx, &a2a.ListTasksRequest{ContextID: page.Tasks[0].ContextID})
	if err != nil || len(byContext.Tasks) != 1 || byContext.Tasks[0].ID != ids[2] {
		t.Fatalf("by context: %+v, %v", byContext, err)
	}
	working, err := c.ListTasks(ctx, &a2a.ListTasksRequest{Status: a2a.TaskStateWorking})
	if err != nil || len(working.Tasks) != 0 {
		t.Fatalf("working tasks: %+v, %v", working, err)
	}
	if _, err := c.ListTasks(ctx, &a2a.ListTasksRequest{PageToken: "x"}); !errors.Is(err, a2a.ErrInvalidParams) {
		t.Fatalf("bad page token: %v", err)
	}
}

// TestAutoCallsThroughRestarts: auto calls (the client's default mode)
// made while the agent's only member stops and the next one starts are
// all answered: a call the stopping member received is handled there, one
// that nobody received is stored and handled by the next member; none
// waits for its deadline.
func TestAutoCallsThroughRestarts(t *testing.T) {
	const rounds, callers = 5, 8
	srv := embeddedtest.RunServer(t)
	ctx := testCtx(t, 2*time.Minute)
	pool := a2anatstest.PoolName("echo", "restarting")
	callerBus := a2anatstest.ConnectBus(t, srv)
	if _, err := callerBus.Declare(ctx, agentbus.PoolConfig{Name: pool, Partitions: 2}, "echo"); err != nil {
		t.Fatal(err)
	}
	c, err := a2anats.NewClient(callerBus)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := c.Transport("echo")
	if err != nil {
		t.Fatal(err)
	}
	// member serves echo on a bus of its own, as a process would, until
	// stop is called.
	member := func() (stop func()) {
		bus := a2anatstest.ConnectBus(t, srv)
		s, err := a2anats.Handle(bus, "echo", a2asrv.NewHandler(demoagent.Echo{}))
		if err != nil {
			t.Fatal(err)
		}
		sctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			done <- bus.Serve(sctx, agentbus.ServePool(pool), agentbus.ServePartitions(2), agentbus.ServeMemberTTL(time.Second))
		}()
		return func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Serve: %v", err)
			}
			if err := s.Close(ctx); err != nil {
				t.Error(err)
			}
			if err := bus.Close(ctx); err != nil {
				t.Error(err)
			}
		}
	}

	var (
		mu       sync.Mutex
		answered int
		failed   []string
	)
	quit := make(chan struct{})
	var wg sync.WaitGroup
	for g := range callers {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-quit:
					return
				case <-ctx.Done():
					return
				default:
				}
				want := fmt.Sprintf("call %d-%d", g, i)
				cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
				res, err := tr.SendMessage(cctx, nil, text(want))
				cancel()
				mu.Lock()
				if err != nil {
					failed = append(failed, fmt.Sprintf("%s: %v", want, err))
				} else if m, ok := res.(*a2a.Message); !ok || demoagent.Text(m) != want {
					failed = append(failed, fmt.Sprintf("%s: answer %#v", want, res))
				} else {
					answered++
				}
				mu.Unlock()
			}
		})
	}
	for range rounds {
		stop := member()
		time.Sleep(300 * time.Millisecond)
		stop()
		time.Sleep(50 * time.Millisecond) // calls meanwhile are stored
	}
	stop := member()
	close(quit)
	wg.Wait()
	stop()
	t.Logf("%d calls answered", answered)
	if len(failed) > 0 {
		t.Fatalf("%d calls failed, the first: %s", len(failed), strings.Join(failed[:min(len(failed), 5)], "; "))
	}
	if answered == 0 {
		t.Fatal("no call answered")
	}
}
