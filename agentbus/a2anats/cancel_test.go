package a2anats_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/a2abus/a2abus/agentbus"
	"github.com/a2abus/a2abus/agentbus/a2anats"
	"github.com/a2abus/a2abus/agentbus/a2anats/a2anatstest"
	"github.com/a2abus/a2abus/embedded/embeddedtest"
	"github.com/a2abus/a2abus/internal/demoagent"
	"github.com/a2aproject/a2a-go/v2/a2a"
	"github.com/a2aproject/a2a-go/v2/a2asrv"
)

// TestCancelRightAfterInputRequired (the conformance kit's
// CORE-CANCEL-001): a task that asked for input is canceled by the next
// call. The SDK answers the message as soon as the task asks for input,
// while its execution is still ending; a cancel that meets that execution
// is sent into it, the execution ends in input-required, and the SDK
// refuses the cancel as TaskNotCancelable though the task can be canceled.
// The Server asks again: every cancel here succeeds.
func TestCancelRightAfterInputRequired(t *testing.T) {
	srv := embeddedtest.RunServer(t)
	reg := a2anatstest.Host(t, srv, map[string]a2asrv.AgentExecutor{"tck": demoagent.TCK{}})
	bus := a2anatstest.ConnectBus(t, srv)
	ctx := testCtx(t, 2*time.Minute)
	for _, m := range []struct {
		name string
		mode agentbus.RequestMode
	}{{"direct", agentbus.Direct}, {"durable", agentbus.Durable}} {
		mode := m.name
		c := client(t, bus, reg, "tck", a2anats.ClientMode(m.mode))
		refused := 0
		const rounds = 100
		for i := range rounds {
			msg := a2a.NewMessage(a2a.MessageRoleUser, a2a.NewTextPart("needs input"))
			msg.ID = fmt.Sprintf("tck-input-required-%s-%d", mode, i)
			res, err := c.SendMessage(ctx, &a2a.SendMessageRequest{Message: msg})
			if err != nil {
				t.Fatal(err)
			}
			task, ok := res.(*a2a.Task)
			if !ok || task.Status.State != a2a.TaskStateInputRequired {
				t.Fatalf("%s: answer %#v, want a task in input-required", mode, res)
			}
			canceled, err := c.CancelTask(ctx, &a2a.CancelTaskRequest{ID: task.ID})
			if errors.Is(err, a2a.ErrTaskNotCancelable) {
				refused++
				continue
			}
			if err != nil || canceled.Status.State != a2a.TaskStateCanceled {
				t.Fatalf("%s: cancel: %+v, %v", mode, canceled, err)
			}
		}
		if refused > 0 {
			t.Errorf("%s: %d of %d cancels right after input-required were refused as TaskNotCancelable", mode, refused, rounds)
		}
	}
}
