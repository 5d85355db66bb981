package demoagent

import (
	"context"
	"errors"
	"iter"
	"strings"
	"time"

	"github.com/a2aproject/a2a-go/v2/a2a"
	"github.com/a2aproject/a2a-go/v2/a2asrv"
)

// tckLongTask is how long the task of a "test-resubscribe-message-id"
// message works before it completes: twice the kit's streaming timeout, so
// that a client subscribes to it while it runs.
const tckLongTask = 4 * time.Second

// errTCKRejected is the error of a "tck-reject-task" message.
var errTCKRejected = errors.New("rejected")

// TCK is the conformance agent: it does what the A2A conformance kit
// (a2a-tck) scripts for the messageId prefix of the message it gets (the
// kit's scenarios/*.feature), and completes any other message with the
// text "Unhandled messageId prefix: <id>".
type TCK struct{}

var _ a2asrv.AgentExecutor = TCK{}

// tckStep is one event of a scripted task: an event made for the task,
// or a pause.
type tckStep struct {
	event func(a2a.TaskInfoProvider) a2a.Event
	pause time.Duration
}

func status(state a2a.TaskState, text string) tckStep {
	return tckStep{event: func(t a2a.TaskInfoProvider) a2a.Event {
		var msg *a2a.Message
		if text != "" {
			msg = a2a.NewMessageForTask(a2a.MessageRoleAgent, t, a2a.NewTextPart(text))
		}
		return a2a.NewStatusUpdateEvent(t, state, msg)
	}}
}

func artifact(parts ...*a2a.Part) tckStep {
	return tckStep{event: func(t a2a.TaskInfoProvider) a2a.Event { return a2a.NewArtifactEvent(t, parts...) }}
}

var (
	working  = status(a2a.TaskStateWorking, "")
	complete = status(a2a.TaskStateCompleted, "")
)

func textFile() *a2a.Part {
	return &a2a.Part{Content: a2a.Raw("tck"), Filename: "output.txt", MediaType: "text/plain"}
}

// tckScripts are the kit's scenarios, longest prefix first where one is
// the prefix of another ("tck-stream-artifact-chunked", whose chunks share
// an artifact ID, is built per task by script).
var tckScripts = []struct {
	prefix string
	steps  []tckStep
}{
	{"test-resubscribe-message-id", []tckStep{working, {pause: tckLongTask}, complete}},
	{"tck-stream-artifact-text", []tckStep{working, artifact(a2a.NewTextPart("Streamed text content")), complete}},
	{"tck-stream-artifact-file", []tckStep{working, artifact(textFile()), complete}},
	{"tck-stream-ordering-001", []tckStep{working, artifact(a2a.NewTextPart("Ordered output")), complete}},
	{"tck-stream-001", []tckStep{working, artifact(a2a.NewTextPart("Stream hello from TCK")), complete}},
	{"tck-stream-002", []tckStep{complete}},
	{"tck-stream-003", []tckStep{working, artifact(a2a.NewTextPart("Stream task lifecycle")), complete}},
	{"tck-artifact-file-url", []tckStep{artifact(&a2a.Part{Content: a2a.URL("https://example.com/output.txt"), Filename: "output.txt", MediaType: "text/plain"}), complete}},
	{"tck-artifact-text", []tckStep{artifact(a2a.NewTextPart("Generated text content")), complete}},
	{"tck-artifact-file", []tckStep{artifact(textFile()), complete}},
	{"tck-artifact-data", []tckStep{artifact(a2a.NewDataPart(map[string]any{"key": "value", "count": 42})), complete}},
	{"tck-input-required", []tckStep{status(a2a.TaskStateInputRequired, "")}},
	{"tck-complete-task", []tckStep{status(a2a.TaskStateCompleted, "Hello from TCK")}},
}

// script returns the steps of a task started by the message id.
func script(id string) []tckStep {
	if strings.HasPrefix(id, "tck-stream-artifact-chunked") {
		chunk := a2a.NewArtifactID()
		return []tckStep{working,
			{event: func(t a2a.TaskInfoProvider) a2a.Event {
				ev := a2a.NewArtifactEvent(t, a2a.NewTextPart("chunk-1 "))
				ev.Artifact.ID = chunk
				return ev
			}},
			{event: func(t a2a.TaskInfoProvider) a2a.Event {
				ev := a2a.NewArtifactUpdateEvent(t, chunk, a2a.NewTextPart("chunk-2"))
				ev.LastChunk = true
				return ev
			}},
			complete}
	}
	for _, s := range tckScripts {
		if strings.HasPrefix(id, s.prefix) {
			return s.steps
		}
	}
	return []tckStep{status(a2a.TaskStateCompleted, "Unhandled messageId prefix: "+id)}
}

// Execute implements a2asrv.AgentExecutor.
func (TCK) Execute(ctx context.Context, ec *a2asrv.ExecutorContext) iter.Seq2[a2a.Event, error] {
	return func(yield func(a2a.Event, error) bool) {
		id := ""
		if ec.Message != nil {
			id = ec.Message.ID
		}
		switch {
		case strings.HasPrefix(id, "tck-message-response"):
			yield(a2a.NewMessage(a2a.MessageRoleAgent, a2a.NewTextPart("Direct message response")), nil)
			return
		case strings.HasPrefix(id, "tck-reject-task"):
			yield(nil, errTCKRejected)
			return
		}
		if ec.StoredTask == nil {
			if !yield(a2a.NewSubmittedTask(ec, ec.Message), nil) {
				return
			}
		}
		for _, s := range script(id) {
			if s.pause > 0 {
				if err := sleep(ctx, s.pause); err != nil {
					yield(nil, err)
					return
				}
				continue
			}
			if !yield(s.event(ec), nil) {
				return
			}
		}
	}
}

// Cancel implements a2asrv.AgentExecutor.
func (TCK) Cancel(_ context.Context, ec *a2asrv.ExecutorContext) iter.Seq2[a2a.Event, error] {
	return func(yield func(a2a.Event, error) bool) {
		yield(a2a.NewStatusUpdateEvent(ec, a2a.TaskStateCanceled, nil), nil)
	}
}

// TCKCard is the card of the conformance agent (its interfaces are added by
// whoever serves it).
func TCKCard(agentID string) *a2a.AgentCard {
	c := Card(agentID, "The A2A conformance kit's agent: does what the kit scripts for the messageId prefix of each message.")
	c.Skills[0].Tags = []string{"tck"}
	return c
}
