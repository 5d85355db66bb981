package demoagent_test

import (
	"context"
	"testing"

	"github.com/a2abus/a2abus/internal/demoagent"
	"github.com/a2aproject/a2a-go/v2/a2a"
	"github.com/a2aproject/a2a-go/v2/a2asrv"
)

// TestTCKScripts: the conformance agent does what the kit's scenarios say
// for a few of its prefixes, through the SDK's own handler.
func TestTCKScripts(t *testing.T) {
	ctx := context.Background()
	h := a2asrv.NewHandler(demoagent.TCK{})
	send := func(id string) (a2a.SendMessageResult, error) {
		msg := a2a.NewMessage(a2a.MessageRoleUser, a2a.NewTextPart("hi"))
		msg.ID = id
		return h.SendMessage(ctx, &a2a.SendMessageRequest{Message: msg})
	}
	res, err := send("tck-complete-task-1")
	task, ok := res.(*a2a.Task)
	if err != nil || !ok || task.Status.State != a2a.TaskStateCompleted || demoagent.Text(task.Status.Message) != "Hello from TCK" {
		t.Fatalf("tck-complete-task: %#v, %v; want a task completed with \"Hello from TCK\"", res, err)
	}
	res, err = send("tck-artifact-data-1")
	task, ok = res.(*a2a.Task)
	if err != nil || !ok || len(task.Artifacts) != 1 || task.Artifacts[0].Parts[0].Data() == nil {
		t.Fatalf("tck-artifact-data: %#v, %v; want a task with a data artifact", res, err)
	}
	res, err = send("tck-input-required-1")
	if task, ok = res.(*a2a.Task); err != nil || !ok || task.Status.State != a2a.TaskStateInputRequired {
		t.Fatalf("tck-input-required: %#v, %v", res, err)
	}
	res, err = send("tck-message-response-1")
	if msg, ok := res.(*a2a.Message); err != nil || !ok || demoagent.Text(msg) != "Direct message response" {
		t.Fatalf("tck-message-response: %#v, %v", res, err)
	}
	if _, err = send("tck-reject-task-1"); err == nil {
		t.Fatalf("tck-reject-task: %v, want an error", err)
	}
	var chunks []*a2a.TaskArtifactUpdateEvent
	msg := a2a.NewMessage(a2a.MessageRoleUser, a2a.NewTextPart("hi"))
	msg.ID = "tck-stream-artifact-chunked-1"
	for ev, err := range h.SendStreamingMessage(ctx, &a2a.SendMessageRequest{Message: msg}) {
		if err != nil {
			t.Fatal(err)
		}
		if a, ok := ev.(*a2a.TaskArtifactUpdateEvent); ok {
			chunks = append(chunks, a)
		}
	}
	if len(chunks) != 2 || chunks[0].Artifact.ID != chunks[1].Artifact.ID || chunks[0].Append || !chunks[1].Append || !chunks[1].LastChunk {
		t.Fatalf("chunked artifact: %d chunks, want two of one artifact, the second appended and last", len(chunks))
	}
}
