package demoagent

import (
	"context"
	"iter"
	"strings"
	"time"

	"github.com/a2aproject/a2a-go/v2/a2a"
	"github.com/a2aproject/a2a-go/v2/a2asrv"
)

// Text returns the text parts of m joined, or "" for a nil message.
func Text(m *a2a.Message) string {
	if m == nil {
		return ""
	}
	var b strings.Builder
	for _, p := range m.Parts {
		if p != nil {
			b.WriteString(p.Text())
		}
	}
	return b.String()
}

// Echo is the echo agent: it answers a message with a message holding the
// text it got, and has no tasks.
type Echo struct{}

var _ a2asrv.AgentExecutor = Echo{}

// Execute implements a2asrv.AgentExecutor.
func (Echo) Execute(_ context.Context, ec *a2asrv.ExecutorContext) iter.Seq2[a2a.Event, error] {
	return func(yield func(a2a.Event, error) bool) {
		yield(a2a.NewMessage(a2a.MessageRoleAgent, a2a.NewTextPart(Text(ec.Message))), nil)
	}
}

// Cancel implements a2asrv.AgentExecutor: echo has no task to cancel.
func (Echo) Cancel(context.Context, *a2asrv.ExecutorContext) iter.Seq2[a2a.Event, error] {
	return func(yield func(a2a.Event, error) bool) {
		yield(nil, a2a.ErrTaskNotCancelable)
	}
}

// Worker is the worker agent: each message starts a task that is
// submitted, then working, and after Delay gets an artifact "done: <text>"
// and completes. Canceling the task ends it at once.
type Worker struct {
	Delay time.Duration
}

var _ a2asrv.AgentExecutor = Worker{}

// Execute implements a2asrv.AgentExecutor.
func (w Worker) Execute(ctx context.Context, ec *a2asrv.ExecutorContext) iter.Seq2[a2a.Event, error] {
	return func(yield func(a2a.Event, error) bool) {
		if ec.StoredTask == nil {
			if !yield(a2a.NewSubmittedTask(ec, ec.Message), nil) {
				return
			}
		}
		if !yield(a2a.NewStatusUpdateEvent(ec, a2a.TaskStateWorking, nil), nil) {
			return
		}
		if err := sleep(ctx, w.Delay); err != nil {
			yield(nil, err)
			return
		}
		if !yield(a2a.NewArtifactEvent(ec, a2a.NewTextPart("done: "+Text(ec.Message))), nil) {
			return
		}
		yield(a2a.NewStatusUpdateEvent(ec, a2a.TaskStateCompleted, nil), nil)
	}
}

// Cancel implements a2asrv.AgentExecutor.
func (Worker) Cancel(_ context.Context, ec *a2asrv.ExecutorContext) iter.Seq2[a2a.Event, error] {
	return func(yield func(a2a.Event, error) bool) {
		yield(a2a.NewStatusUpdateEvent(ec, a2a.TaskStateCanceled, nil), nil)
	}
}

// sleep waits d, or until ctx ends (its cause).
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// Card returns the agent card of a demo agent (its interfaces are added by
// whoever serves it).
func Card(agentID, description string) *a2a.AgentCard {
	return &a2a.AgentCard{
		Name:               agentID,
		Description:        description,
		Version:            "1.0.0",
		DefaultInputModes:  []string{"text/plain"},
		DefaultOutputModes: []string{"text/plain"},
		Capabilities:       a2a.AgentCapabilities{Streaming: true},
		Skills: []a2a.AgentSkill{{
			ID: agentID, Name: agentID, Description: description, Tags: []string{"demo"},
		}},
	}
}
