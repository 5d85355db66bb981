package grpcbinding

import (
	"context"
	"fmt"
	"iter"

	"github.com/a2aproject/a2a-go/v2/a2a"
	a2apb "github.com/a2aproject/a2a-go/v2/a2apb/v1"
	"github.com/a2aproject/a2a-go/v2/a2apb/v1/pbconv"
	"github.com/a2aproject/a2a-go/v2/a2asrv"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/emptypb"
)

// A Resolver returns the handler of a call whose request names tenant,
// and the tenant the handler is to see (the same, or what is left of it
// once the resolver has used a part to choose the handler). Its error is
// the call's answer.
type Resolver func(ctx context.Context, tenant string) (h a2asrv.RequestHandler, rest string, err error)

// Single is the Resolver of one handler: every call goes to h, with its
// tenant as it came.
func Single(h a2asrv.RequestHandler) Resolver {
	return func(_ context.Context, tenant string) (a2asrv.RequestHandler, string, error) {
		return h, tenant, nil
	}
}

// Service is the A2AService of the handlers a Resolver finds.
type Service struct {
	a2apb.UnimplementedA2AServiceServer
	resolve Resolver
}

var _ a2apb.A2AServiceServer = (*Service)(nil)

// New returns the Service of resolve's handlers.
func New(resolve Resolver) *Service { return &Service{resolve: resolve} }

// Register registers s as the A2AService of g.
func (s *Service) Register(g grpc.ServiceRegistrar) { a2apb.RegisterA2AServiceServer(g, s) }

// request is what every A2AService request is: a message with a tenant.
type request interface {
	proto.Message
	GetTenant() string
}

// route finds the handler of req, sets req's tenant to what the handler is
// to see, and returns ctx with the call's service parameters (the
// metadata).
func (s *Service) route(ctx context.Context, req request) (context.Context, a2asrv.RequestHandler, error) {
	if req == nil || !req.ProtoReflect().IsValid() {
		return ctx, nil, status.Error(codes.InvalidArgument, "empty request")
	}
	tenant := req.GetTenant()
	h, rest, err := s.resolve(ctx, tenant)
	if err != nil {
		return ctx, nil, Status(err)
	}
	if rest != tenant {
		m := req.ProtoReflect()
		m.Set(m.Descriptor().Fields().ByName("tenant"), protoreflect.ValueOfString(rest))
	}
	md, _ := metadata.FromIncomingContext(ctx)
	ctx, _ = a2asrv.NewCallContext(ctx, a2asrv.NewServiceParams(md))
	return ctx, h, nil
}

// unary serves a one-answer method: route, convert the request, call,
// convert the answer.
func unary[P request, Req, Res any, PRes any](s *Service, ctx context.Context, preq P,
	from func(P) (Req, error),
	call func(a2asrv.RequestHandler, context.Context, Req) (Res, error),
	to func(Res) (PRes, error),
) (PRes, error) {
	var zero PRes
	ctx, h, err := s.route(ctx, preq)
	if err != nil {
		return zero, err
	}
	req, err := from(preq)
	if err != nil {
		return zero, status.Error(codes.InvalidArgument, err.Error())
	}
	res, err := call(h, ctx, req)
	if err != nil {
		return zero, Status(err)
	}
	out, err := to(res)
	if err != nil {
		return zero, status.Errorf(codes.Internal, "answer: %v", err)
	}
	return out, nil
}

// stream serves a streaming method.
func stream[P request, Req any](s *Service, preq P, out grpc.ServerStreamingServer[a2apb.StreamResponse],
	from func(P) (Req, error),
	call func(a2asrv.RequestHandler, context.Context, Req) iter.Seq2[a2a.Event, error],
) error {
	ctx, h, err := s.route(out.Context(), preq)
	if err != nil {
		return err
	}
	req, err := from(preq)
	if err != nil {
		return status.Error(codes.InvalidArgument, err.Error())
	}
	for ev, err := range call(h, ctx, req) {
		if err != nil {
			return Status(err)
		}
		pb, err := pbconv.ToProtoStreamResponse(ev)
		if err != nil {
			return status.Errorf(codes.Internal, "event: %v", err)
		}
		if err := out.Send(pb); err != nil {
			return err
		}
	}
	return nil
}

func (s *Service) SendMessage(ctx context.Context, req *a2apb.SendMessageRequest) (*a2apb.SendMessageResponse, error) {
	return unary(s, ctx, req, checkedSend, a2asrv.RequestHandler.SendMessage, pbconv.ToProtoSendMessageResponse)
}

func (s *Service) SendStreamingMessage(req *a2apb.SendMessageRequest, out grpc.ServerStreamingServer[a2apb.StreamResponse]) error {
	return stream(s, req, out, checkedSend, a2asrv.RequestHandler.SendStreamingMessage)
}

// checkedSend converts a SendMessageRequest, which must carry a message.
func checkedSend(req *a2apb.SendMessageRequest) (*a2a.SendMessageRequest, error) {
	if req.GetMessage() == nil {
		return nil, fmt.Errorf("message is missing")
	}
	return pbconv.FromProtoSendMessageRequest(req)
}

func (s *Service) GetTask(ctx context.Context, req *a2apb.GetTaskRequest) (*a2apb.Task, error) {
	return unary(s, ctx, req, pbconv.FromProtoGetTaskRequest, a2asrv.RequestHandler.GetTask, pbconv.ToProtoTask)
}

func (s *Service) ListTasks(ctx context.Context, req *a2apb.ListTasksRequest) (*a2apb.ListTasksResponse, error) {
	return unary(s, ctx, req, pbconv.FromProtoListTasksRequest, a2asrv.RequestHandler.ListTasks, pbconv.ToProtoListTasksResponse)
}

func (s *Service) CancelTask(ctx context.Context, req *a2apb.CancelTaskRequest) (*a2apb.Task, error) {
	return unary(s, ctx, req, pbconv.FromProtoCancelTaskRequest, a2asrv.RequestHandler.CancelTask, pbconv.ToProtoTask)
}

func (s *Service) SubscribeToTask(req *a2apb.SubscribeToTaskRequest, out grpc.ServerStreamingServer[a2apb.StreamResponse]) error {
	return stream(s, req, out, pbconv.FromProtoSubscribeToTaskRequest, a2asrv.RequestHandler.SubscribeToTask)
}

func (s *Service) CreateTaskPushNotificationConfig(ctx context.Context, req *a2apb.TaskPushNotificationConfig) (*a2apb.TaskPushNotificationConfig, error) {
	return unary(s, ctx, req, pbconv.FromProtoCreateTaskPushConfigRequest, a2asrv.RequestHandler.CreateTaskPushConfig, pbconv.ToProtoTaskPushConfig)
}

func (s *Service) GetTaskPushNotificationConfig(ctx context.Context, req *a2apb.GetTaskPushNotificationConfigRequest) (*a2apb.TaskPushNotificationConfig, error) {
	return unary(s, ctx, req, pbconv.FromProtoGetTaskPushConfigRequest, a2asrv.RequestHandler.GetTaskPushConfig, pbconv.ToProtoTaskPushConfig)
}

func (s *Service) ListTaskPushNotificationConfigs(ctx context.Context, req *a2apb.ListTaskPushNotificationConfigsRequest) (*a2apb.ListTaskPushNotificationConfigsResponse, error) {
	return unary(s, ctx, req, pbconv.FromProtoListTaskPushConfigRequest, a2asrv.RequestHandler.ListTaskPushConfigs,
		func(configs []*a2a.TaskPushConfig) (*a2apb.ListTaskPushNotificationConfigsResponse, error) {
			return pbconv.ToProtoListTaskPushConfigResponse(&a2a.ListTaskPushConfigResponse{Configs: configs})
		})
}

func (s *Service) DeleteTaskPushNotificationConfig(ctx context.Context, req *a2apb.DeleteTaskPushNotificationConfigRequest) (*emptypb.Empty, error) {
	return unary(s, ctx, req, pbconv.FromProtoDeleteTaskPushConfigRequest,
		func(h a2asrv.RequestHandler, ctx context.Context, req *a2a.DeleteTaskPushConfigRequest) (struct{}, error) {
			return struct{}{}, h.DeleteTaskPushConfig(ctx, req)
		},
		func(struct{}) (*emptypb.Empty, error) { return &emptypb.Empty{}, nil })
}

func (s *Service) GetExtendedAgentCard(ctx context.Context, req *a2apb.GetExtendedAgentCardRequest) (*a2apb.AgentCard, error) {
	return unary(s, ctx, req, pbconv.FromProtoGetExtendedAgentCardRequest, a2asrv.RequestHandler.GetExtendedAgentCard, pbconv.ToProtoAgentCard)
}
