package demoagent_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/a2abus/a2abus/internal/demoagent"
	"github.com/a2aproject/a2a-go/v2/a2a"
	"github.com/a2aproject/a2a-go/v2/a2asrv"
)

func execCtx(text string) *a2asrv.ExecutorContext {
	return &a2asrv.ExecutorContext{
		Message: a2a.NewMessage(a2a.MessageRoleUser, a2a.NewTextPart(text)),
		TaskID:  a2a.NewTaskID(), ContextID: a2a.NewContextID(),
	}
}

func TestEcho(t *testing.T) {
	var got []a2a.Event
	for ev, err := range (demoagent.Echo{}).Execute(context.Background(), execCtx("hi")) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, ev)
	}
	if len(got) != 1 || demoagent.Text(got[0].(*a2a.Message)) != "hi" {
		t.Fatalf("echo yielded %#v", got)
	}
}

func TestWorker(t *testing.T) {
	var states []string
	for ev, err := range (demoagent.Worker{Delay: time.Millisecond}).Execute(context.Background(), execCtx("job")) {
		if err != nil {
			t.Fatal(err)
		}
		switch e := ev.(type) {
		case *a2a.Task:
			states = append(states, string(e.Status.State))
		case *a2a.TaskStatusUpdateEvent:
			states = append(states, string(e.Status.State))
		case *a2a.TaskArtifactUpdateEvent:
			states = append(states, demoagent.Text(&a2a.Message{Parts: e.Artifact.Parts}))
		}
	}
	want := []string{"TASK_STATE_SUBMITTED", "TASK_STATE_WORKING", "done: job", "TASK_STATE_COMPLETED"}
	if len(states) != len(want) {
		t.Fatalf("worker yielded %v, want %v", states, want)
	}
	for i := range want {
		if states[i] != want[i] {
			t.Fatalf("worker yielded %v, want %v", states, want)
		}
	}

	// Canceled while working: it stops with the context's error.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var last error
	for ev, err := range (demoagent.Worker{Delay: time.Minute}).Execute(ctx, execCtx("long")) {
		if _, ok := ev.(*a2a.TaskStatusUpdateEvent); ok {
			cancel()
		}
		last = err
	}
	if !errors.Is(last, context.Canceled) {
		t.Fatalf("worker canceled while working ended with %v", last)
	}
}
