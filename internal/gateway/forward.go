package gateway

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"strings"

	"github.com/a2aproject/a2a-go/v2/a2a"
	"github.com/a2aproject/a2a-go/v2/a2aclient"
	"github.com/a2aproject/a2a-go/v2/a2asrv"
)

// forward is an a2asrv.RequestHandler that makes each call with an
// a2aclient.Transport: the SDK's server bindings on one side, any of its
// client transports on the other. Its calls end, with ErrClosed, when
// closing is canceled.
type forward struct {
	t       a2aclient.Transport
	closing context.Context
	// version is the A2A version the binding serves: a call asking for
	// another one (A2A-Version) gets ErrVersionNotSupported. A call that
	// names none is served.
	version string
}

var _ a2asrv.RequestHandler = forward{}

// ErrClosed ends the calls in flight when a gateway closes.
var ErrClosed = errors.New("gateway: closed: agentd is stopping")

// bind returns ctx, canceled with ErrClosed when the gateway closes.
func (f forward) bind(ctx context.Context) (context.Context, context.CancelFunc) {
	if f.closing == nil {
		return ctx, func() {}
	}
	ctx, cancel := context.WithCancelCause(ctx)
	stop := context.AfterFunc(f.closing, func() { cancel(ErrClosed) })
	return ctx, func() {
		stop()
		cancel(nil)
	}
}

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

// checkVersion refuses a call that asks for an A2A version other than
// the one its binding serves ("1.0" and "1.0.2" ask for 1.0).
func (f forward) checkVersion(ctx context.Context) error {
	cc, ok := a2asrv.CallContextFrom(ctx)
	if !ok || f.version == "" {
		return nil
	}
	asked, _ := cc.ServiceParams().Get(a2a.SvcParamVersion)
	for _, v := range asked {
		if v = strings.TrimSpace(v); v != "" && v != f.version && !strings.HasPrefix(v, f.version+".") {
			return a2a.NewError(a2a.ErrVersionNotSupported, fmt.Sprintf("A2A-Version %q: this endpoint serves A2A %s", v, f.version))
		}
	}
	return nil
}

// unary makes a one-answer call bound to the gateway's life.
func unary[Req, Res any](f forward, ctx context.Context, req Req, call func(context.Context, a2aclient.ServiceParams, Req) (Res, error)) (Res, error) {
	if err := f.checkVersion(ctx); err != nil {
		var zero Res
		return zero, err
	}
	ctx, stop := f.bind(ctx)
	defer stop()
	return call(ctx, params(ctx), req)
}

// stream makes a streaming call bound to the gateway's life.
func stream[Req any](f forward, ctx context.Context, req Req, call func(context.Context, a2aclient.ServiceParams, Req) iter.Seq2[a2a.Event, error]) iter.Seq2[a2a.Event, error] {
	return func(yield func(a2a.Event, error) bool) {
		if err := f.checkVersion(ctx); err != nil {
			yield(nil, err)
			return
		}
		ctx, stop := f.bind(ctx)
		defer stop()
		for ev, err := range call(ctx, params(ctx), req) {
			if err != nil && context.Cause(ctx) == ErrClosed {
				err = a2a.NewError(a2a.ErrServerError, ErrClosed.Error())
			}
			if !yield(ev, err) {
				return
			}
		}
	}
}

func (f forward) GetTask(ctx context.Context, req *a2a.GetTaskRequest) (*a2a.Task, error) {
	return unary(f, ctx, req, f.t.GetTask)
}

func (f forward) ListTasks(ctx context.Context, req *a2a.ListTasksRequest) (*a2a.ListTasksResponse, error) {
	return unary(f, ctx, req, f.t.ListTasks)
}

func (f forward) CancelTask(ctx context.Context, req *a2a.CancelTaskRequest) (*a2a.Task, error) {
	return unary(f, ctx, req, f.t.CancelTask)
}

func (f forward) SendMessage(ctx context.Context, req *a2a.SendMessageRequest) (a2a.SendMessageResult, error) {
	return unary(f, ctx, req, f.t.SendMessage)
}

func (f forward) SubscribeToTask(ctx context.Context, req *a2a.SubscribeToTaskRequest) iter.Seq2[a2a.Event, error] {
	return stream(f, ctx, req, f.t.SubscribeToTask)
}

func (f forward) SendStreamingMessage(ctx context.Context, req *a2a.SendMessageRequest) iter.Seq2[a2a.Event, error] {
	return stream(f, ctx, req, f.t.SendStreamingMessage)
}

func (f forward) GetTaskPushConfig(ctx context.Context, req *a2a.GetTaskPushConfigRequest) (*a2a.TaskPushConfig, error) {
	return unary(f, ctx, req, f.t.GetTaskPushConfig)
}

func (f forward) ListTaskPushConfigs(ctx context.Context, req *a2a.ListTaskPushConfigRequest) ([]*a2a.TaskPushConfig, error) {
	return unary(f, ctx, req, f.t.ListTaskPushConfigs)
}

func (f forward) CreateTaskPushConfig(ctx context.Context, req *a2a.CreateTaskPushConfigRequest) (*a2a.TaskPushConfig, error) {
	return unary(f, ctx, req, f.t.CreateTaskPushConfig)
}

func (f forward) DeleteTaskPushConfig(ctx context.Context, req *a2a.DeleteTaskPushConfigRequest) error {
	_, err := unary(f, ctx, req, func(ctx context.Context, p a2aclient.ServiceParams, req *a2a.DeleteTaskPushConfigRequest) (struct{}, error) {
		return struct{}{}, f.t.DeleteTaskPushConfig(ctx, p, req)
	})
	return err
}

func (f forward) GetExtendedAgentCard(ctx context.Context, req *a2a.GetExtendedAgentCardRequest) (*a2a.AgentCard, error) {
	return unary(f, ctx, req, f.t.GetExtendedAgentCard)
}
