package a2anats_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/a2abus/a2abus/agentbus"
	"github.com/a2abus/a2abus/agentbus/a2anats"
	"github.com/a2abus/a2abus/agentbus/a2anats/a2anatstest"
	"github.com/a2abus/a2abus/embedded/embeddedtest"
	"github.com/a2abus/a2abus/internal/demoagent"
	"github.com/a2aproject/a2a-go/v2/a2a"
	"github.com/a2aproject/a2a-go/v2/a2asrv"
	"github.com/nats-io/nats.go/jetstream"
)

// storedCalls returns how many calls wait in the A2A stream: stored and
// not acknowledged (it is a work queue).
func storedCalls(t *testing.T, ctx context.Context, js jetstream.JetStream) uint64 {
	t.Helper()
	s, err := js.Stream(ctx, agentbus.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

// TestStoredCallAckedWhenItEnds (issue 14): a durable call is
// acknowledged when it has ended, not when it started: while the agent
// works on it (a 2 s task, as an LLM call takes) it stays in the A2A
// stream, held by its member; once answered it is gone.
func TestStoredCallAckedWhenItEnds(t *testing.T) {
	srv := embeddedtest.RunServer(t)
	reg := agents(t, srv, 2*time.Second)
	bus := a2anatstest.ConnectBus(t, srv)
	js, err := jetstream.New(bus.Conn())
	if err != nil {
		t.Fatal(err)
	}
	c := client(t, bus, reg, "worker", a2anats.ClientMode(agentbus.Durable))
	ctx := testCtx(t, time.Minute)

	type result struct {
		res a2a.SendMessageResult
		err error
	}
	done := make(chan result, 1)
	go func() {
		res, err := c.SendMessage(ctx, text("slow job"))
		done <- result{res, err}
	}()
	// The call has started when its task is stored as working.
	var running bool
	for !running {
		select {
		case r := <-done:
			t.Fatalf("the call ended before it was seen running: %v, %v", r.res, r.err)
		case <-time.After(20 * time.Millisecond):
		}
		list, err := client(t, bus, reg, "worker").ListTasks(ctx, &a2a.ListTasksRequest{})
		if err != nil {
			t.Fatal(err)
		}
		running = len(list.Tasks) == 1 && list.Tasks[0].Status.State == a2a.TaskStateWorking
	}
	if n := storedCalls(t, ctx, js); n != 1 {
		t.Fatalf("while the call runs the A2A stream holds %d calls, want it (1): acknowledged at its start, it would be lost with its member", n)
	}
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	task, ok := r.res.(*a2a.Task)
	if !ok || task.Status.State != a2a.TaskStateCompleted {
		t.Fatalf("result %#v, want the completed task", r.res)
	}
	// The ack follows the answer.
	for n := storedCalls(t, ctx, js); n != 0; n = storedCalls(t, ctx, js) {
		select {
		case <-ctx.Done():
			t.Fatalf("the answered call is still in the A2A stream (%d calls)", n)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// TestDurableCancelBesideItsTask (issue 14): a durable client's cancel of
// a running task is answered while the task's stored call still runs,
// although the pool has a single partition: the partition's next batch
// waits for the call's, so a stored cancel would wait behind the very task
// it cancels. The task then ends canceled, and the stream of its call says
// so.
func TestDurableCancelBesideItsTask(t *testing.T) {
	srv := embeddedtest.RunServer(t)
	ctx := testCtx(t, time.Minute)
	host := a2anatstest.ConnectBus(t, srv)
	tasks, err := a2anats.NewTaskStore(ctx, host, "worker", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	s, err := a2anats.Handle(host, "worker", a2asrv.NewHandler(demoagent.Worker{Delay: 10 * time.Minute}, a2asrv.WithTaskStore(tasks)),
		a2anats.ServerLogger(embeddedtest.Logger(t)))
	if err != nil {
		t.Fatal(err)
	}
	a2anatstest.ServePartitions(t, host, "one-partition", 1, s)

	bus := a2anatstest.ConnectBus(t, srv)
	c, err := a2anats.NewClient(bus, a2anats.ClientMode(agentbus.Durable))
	if err != nil {
		t.Fatal(err)
	}
	tr, err := c.Transport("worker")
	if err != nil {
		t.Fatal(err)
	}
	events := make(chan a2a.Event, 16)
	streamErr := make(chan error, 1)
	go func() {
		defer close(events)
		for ev, err := range tr.SendStreamingMessage(ctx, nil, text("long job")) {
			if err != nil {
				streamErr <- err
				return
			}
			events <- ev
		}
	}()
	var taskID a2a.TaskID
	for taskID == "" {
		select {
		case ev, ok := <-events:
			if !ok {
				t.Fatalf("the stream ended before the task started: %v", <-streamErr)
			}
			if task, ok := ev.(*a2a.Task); ok {
				taskID = task.ID
			}
		case <-ctx.Done():
			t.Fatal("no task within a minute")
		}
	}
	cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	canceled, err := tr.CancelTask(cctx, nil, &a2a.CancelTaskRequest{ID: taskID})
	if err != nil {
		t.Fatalf("cancel while the task's stored call runs: %v (a stored cancel waits behind its task)", err)
	}
	if canceled.Status.State != a2a.TaskStateCanceled {
		t.Fatalf("after cancel: %s", canceled.Status.State)
	}
	var last a2a.Event
	for ev := range events {
		last = ev
	}
	select {
	case err := <-streamErr:
		t.Fatalf("the canceled task's stream: %v", err)
	default:
	}
	if st, ok := last.(*a2a.TaskStatusUpdateEvent); !ok || st.Status.State != a2a.TaskStateCanceled {
		t.Fatalf("the stream's last event %#v, want the canceled status", last)
	}
}

// TestCallToAgentNotHosted (issue 14): a call to an agent declared in a
// pool whose member has no handler for it ends with an A2A error that says
// so, naming the agent and the member, instead of lost answers.
func TestCallToAgentNotHosted(t *testing.T) {
	srv := embeddedtest.RunServer(t)
	ctx := testCtx(t, time.Minute)
	bus := a2anatstest.ConnectBus(t, srv)
	// ghost is declared in the pool before its member starts, which serves
	// only echo.
	if _, err := bus.Declare(ctx, agentbus.PoolConfig{Name: "one-partition", Partitions: 1}, "ghost"); err != nil {
		t.Fatal(err)
	}
	host := a2anatstest.ConnectBus(t, srv)
	s, err := a2anats.Handle(host, "echo", a2asrv.NewHandler(demoagent.Echo{}))
	if err != nil {
		t.Fatal(err)
	}
	a2anatstest.ServePartitions(t, host, "one-partition", 1, s)
	c, err := a2anats.NewClient(bus, a2anats.ClientMode(agentbus.Durable))
	if err != nil {
		t.Fatal(err)
	}
	tr, err := c.Transport("ghost")
	if err != nil {
		t.Fatal(err)
	}
	_, err = tr.SendMessage(ctx, nil, text("anyone?"))
	var aerr *a2a.Error
	if !errors.As(err, &aerr) {
		t.Fatalf("call to an agent nobody hosts: %v (%T), want an *a2a.Error", err, err)
	}
	if errors.Is(err, a2anats.ErrEventsLost) || !strings.Contains(aerr.Message, "no handler for agent ghost on member ") ||
		!strings.Contains(aerr.Message, "of pool one-partition") {
		t.Fatalf("call to an agent nobody hosts: %q, want it to name the agent, the member and the pool", aerr.Message)
	}
}
