package agentd

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/a2abus/a2abus/agentbus"
	"github.com/a2abus/a2abus/agentbus/a2anats"
	"github.com/a2abus/a2abus/agentbus/a2anats/a2anatstest"
	"github.com/a2abus/a2abus/embedded/embeddedtest"
	"github.com/a2abus/a2abus/internal/demoagent"
	"github.com/a2aproject/a2a-go/v2/a2a"
	"github.com/nats-io/nats.go/jetstream"
)

// TestShutdownHandsRunningCallsOn (issue 14): agentd is stopped as SIGTERM
// stops it while its worker agent runs a durable call of 10 s. The call is
// neither failed nor dead-lettered: it goes back to the A2A stream, and
// the next agentd of the pool runs it on in the task the first one
// created. The caller gets one answer, the task completed.
func TestShutdownHandsRunningCallsOn(t *testing.T) {
	srv := embeddedtest.RunServer(t)
	cfg := testConfig(t)
	cfg.NATS = srv.ClientURL()
	cfg.Demo = true
	cfg.DemoDelay = 10 * time.Second
	first := NewDaemon(cfg, testLogger(t))
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := first.Start(sctx); err != nil {
		t.Fatal(err)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = first.Shutdown(context.Background())
		}
	})

	ctx, cancelTest := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancelTest()
	bus := a2anatstest.ConnectBus(t, srv)
	c, err := a2anats.NewClient(bus, a2anats.ClientMode(agentbus.Durable))
	if err != nil {
		t.Fatal(err)
	}
	tr, err := c.Transport("worker")
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		res a2a.SendMessageResult
		err error
	}
	answers := make(chan result, 2)
	go func() {
		res, err := tr.SendMessage(ctx, nil, &a2a.SendMessageRequest{Message: a2a.NewMessage(a2a.MessageRoleUser, a2a.NewTextPart("long job"))})
		answers <- result{res, err}
	}()
	// The call runs once its task is stored as working.
	var taskID a2a.TaskID
	for taskID == "" {
		list, err := tr.ListTasks(ctx, nil, &a2a.ListTasksRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if len(list.Tasks) == 1 && list.Tasks[0].Status.State == a2a.TaskStateWorking {
			taskID = list.Tasks[0].ID
		}
		select {
		case r := <-answers:
			t.Fatalf("answered before it was seen running: %v, %v", r.res, r.err)
		case <-time.After(20 * time.Millisecond):
		}
	}

	// SIGTERM, as main gives it: the default drain and what follows.
	shctx, shcancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout())
	err = first.Shutdown(shctx)
	shcancel()
	stopped = true
	if err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	select {
	case r := <-answers:
		t.Fatalf("the running call was answered at shutdown: %v, %v (want it handed to the next agentd)", r.res, r.err)
	default:
	}
	js, err := jetstream.New(bus.Conn())
	if err != nil {
		t.Fatal(err)
	}
	if s, err := js.Stream(ctx, agentbus.DeadLetterStreamName); err == nil {
		info, err := s.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.State.Msgs != 0 {
			t.Fatalf("%d dead letters after the shutdown", info.State.Msgs)
		}
	} else if !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Fatal(err)
	}
	stream, err := js.Stream(ctx, agentbus.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 1 {
		t.Fatalf("the A2A stream holds %d calls after the shutdown, want the unfinished one", info.State.Msgs)
	}

	cfg.Data = t.TempDir()
	startDaemon(t, cfg)
	r := <-answers
	if r.err != nil {
		t.Fatalf("the call handed over at shutdown: %v", r.err)
	}
	task, ok := r.res.(*a2a.Task)
	if !ok || task.ID != taskID || task.Status.State != a2a.TaskStateCompleted ||
		len(task.Artifacts) != 1 || demoagent.Text(&a2a.Message{Parts: task.Artifacts[0].Parts}) != "done: long job" {
		t.Fatalf("answer %#v, want task %s completed with \"done: long job\"", r.res, taskID)
	}
	select {
	case r := <-answers:
		t.Fatalf("a second answer: %v, %v", r.res, r.err)
	case <-time.After(100 * time.Millisecond):
	}
}
