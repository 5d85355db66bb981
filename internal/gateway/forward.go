package gateway

import (
	"context"
	"iter"
	"strings"

	"github.com/a2aproject/a2a-go/v2/a2a"
	"github.com/a2aproject/a2a-go/v2/a2aclient"
	"github.com/a2aproject/a2a-go/v2/a2asrv"
)

// forward is an a2asrv.RequestHandler that makes each call with an
// a2aclient.Transport: the SDK's server bindings on one side, any of its
// client transports on the other.
type forward struct {
	t a2aclient.Transport
}

var _ a2asrv.RequestHandler = forward{}

// params returns the A2A service parameters of the incoming call (A2A-*
// headers): other headers, credentials among them, are not passed on.
func params(ctx context.Context) a2aclient.ServiceParams {
	cc, ok := a2asrv.CallContextFrom(ctx)
	if !ok {
		return nil
	}
	var out a2aclient.ServiceParams
	for k, v := range cc.ServiceParams().List() {
		if strings.HasPrefix(strings.ToLower(k), "a2a-") {
			if out == nil {
				out = a2aclient.ServiceParams{}
			}
			out[k] = v
		}
	}
	return out
}

func (f forward) GetTask(ctx context.Context, req *a2a.GetTaskRequest) (*a2a.Task, error) {
	return f.t.GetTask(ctx, params(ctx), req)
}

func (f forward) ListTasks(ctx context.Context, req *a2a.ListTasksRequest) (*a2a.ListTasksResponse, error) {
	return f.t.ListTasks(ctx, params(ctx), req)
}

func (f forward) CancelTask(ctx context.Context, req *a2a.CancelTaskRequest) (*a2a.Task, error) {
	return f.t.CancelTask(ctx, params(ctx), req)
}

func (f forward) SendMessage(ctx context.Context, req *a2a.SendMessageRequest) (a2a.SendMessageResult, error) {
	return f.t.SendMessage(ctx, params(ctx), req)
}

func (f forward) SubscribeToTask(ctx context.Context, req *a2a.SubscribeToTaskRequest) iter.Seq2[a2a.Event, error] {
	return f.t.SubscribeToTask(ctx, params(ctx), req)
}

func (f forward) SendStreamingMessage(ctx context.Context, req *a2a.SendMessageRequest) iter.Seq2[a2a.Event, error] {
	return f.t.SendStreamingMessage(ctx, params(ctx), req)
}

func (f forward) GetTaskPushConfig(ctx context.Context, req *a2a.GetTaskPushConfigRequest) (*a2a.TaskPushConfig, error) {
	return f.t.GetTaskPushConfig(ctx, params(ctx), req)
}

func (f forward) ListTaskPushConfigs(ctx context.Context, req *a2a.ListTaskPushConfigRequest) ([]*a2a.TaskPushConfig, error) {
	return f.t.ListTaskPushConfigs(ctx, params(ctx), req)
}

func (f forward) CreateTaskPushConfig(ctx context.Context, req *a2a.CreateTaskPushConfigRequest) (*a2a.TaskPushConfig, error) {
	return f.t.CreateTaskPushConfig(ctx, params(ctx), req)
}

func (f forward) DeleteTaskPushConfig(ctx context.Context, req *a2a.DeleteTaskPushConfigRequest) error {
	return f.t.DeleteTaskPushConfig(ctx, params(ctx), req)
}

func (f forward) GetExtendedAgentCard(ctx context.Context, req *a2a.GetExtendedAgentCardRequest) (*a2a.AgentCard, error) {
	return f.t.GetExtendedAgentCard(ctx, params(ctx), req)
}
