package grpcbinding_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"

	"github.com/a2abus/a2abus/internal/demoagent"
	"github.com/a2abus/a2abus/internal/grpcbinding"
	"github.com/a2aproject/a2a-go/v2/a2a"
	a2apb "github.com/a2aproject/a2a-go/v2/a2apb/v1"
	"github.com/a2aproject/a2a-go/v2/a2asrv"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// TestStatus: each A2A error has the specification's status code, and the
// A2A ones an ErrorInfo with their reason (the a2a-go client reads them
// back: TestGRPCBinding in internal/gateway).
func TestStatus(t *testing.T) {
	for _, tc := range []struct {
		err    error
		code   codes.Code
		reason string
	}{
		{a2a.ErrTaskNotFound, codes.NotFound, "TASK_NOT_FOUND"},
		{a2a.ErrTaskNotCancelable, codes.FailedPrecondition, "TASK_NOT_CANCELABLE"},
		{a2a.ErrPushNotificationNotSupported, codes.Unimplemented, "PUSH_NOTIFICATION_NOT_SUPPORTED"},
		{a2a.ErrUnsupportedOperation, codes.Unimplemented, "UNSUPPORTED_OPERATION"},
		{a2a.ErrUnsupportedContentType, codes.InvalidArgument, "CONTENT_TYPE_NOT_SUPPORTED"},
		{a2a.ErrInvalidAgentResponse, codes.Internal, "INVALID_AGENT_RESPONSE"},
		{a2a.ErrExtendedCardNotConfigured, codes.FailedPrecondition, "EXTENDED_AGENT_CARD_NOT_CONFIGURED"},
		{a2a.ErrExtensionSupportRequired, codes.FailedPrecondition, "EXTENSION_SUPPORT_REQUIRED"},
		{a2a.ErrVersionNotSupported, codes.Unimplemented, "VERSION_NOT_SUPPORTED"},
		{a2a.ErrInvalidParams, codes.InvalidArgument, ""},
		{a2a.ErrUnauthenticated, codes.Unauthenticated, ""},
		{a2a.ErrUnauthorized, codes.PermissionDenied, ""},
		{errors.New("disk on fire"), codes.Internal, ""},
	} {
		err := grpcbinding.Status(fmt.Errorf("wrapped: %w", tc.err))
		st := status.Convert(err)
		var reason string
		for _, d := range st.Details() {
			if info, ok := d.(*errdetails.ErrorInfo); ok && info.Domain == grpcbinding.ErrorDomain {
				reason = info.Reason
			}
		}
		if st.Code() != tc.code || reason != tc.reason {
			t.Errorf("%v: %v %q, want %v %q", tc.err, st.Code(), reason, tc.code, tc.reason)
		}
	}
	if grpcbinding.Status(nil) != nil {
		t.Error("Status(nil) is not nil")
	}
}

// serve serves h over the binding and returns a client.
func serve(t testing.TB, h a2asrv.RequestHandler) a2apb.A2AServiceClient {
	t.Helper()
	s := grpc.NewServer()
	grpcbinding.New(grpcbinding.Single(h)).Register(s)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.Serve(ln) }()
	t.Cleanup(s.Stop)
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return a2apb.NewA2AServiceClient(conn)
}

// TestSingle: a message and its answer; a request without a message or a
// task ID refused as an invalid argument; an A2A error as its status.
func TestSingle(t *testing.T) {
	c := serve(t, a2asrv.NewHandler(demoagent.Echo{}))
	ctx := context.Background()
	res, err := c.SendMessage(ctx, &a2apb.SendMessageRequest{Message: &a2apb.Message{
		MessageId: "m1", Role: a2apb.Role_ROLE_USER, Parts: []*a2apb.Part{{Content: &a2apb.Part_Text{Text: "hi"}}},
	}})
	if err != nil || len(res.GetMessage().GetParts()) != 1 || res.GetMessage().GetParts()[0].GetText() != "hi" {
		t.Fatalf("SendMessage: %v, %v", res, err)
	}
	if _, err := c.SendMessage(ctx, &a2apb.SendMessageRequest{}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("SendMessage without a message: %v, want InvalidArgument", err)
	}
	if _, err := c.GetTask(ctx, &a2apb.GetTaskRequest{}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("GetTask without an ID: %v, want InvalidArgument", err)
	}
	if _, err := c.GetTask(ctx, &a2apb.GetTaskRequest{Id: "none"}); status.Code(err) != codes.NotFound {
		t.Fatalf("GetTask of no task: %v, want NotFound", err)
	}
}

// versioned is the SDK's handler, refusing a GetTask that asks for an A2A
// version other than 1.0 in its service parameters.
type versioned struct{ a2asrv.RequestHandler }

func (v versioned) GetTask(ctx context.Context, req *a2a.GetTaskRequest) (*a2a.Task, error) {
	cc, ok := a2asrv.CallContextFrom(ctx)
	if !ok {
		return nil, errors.New("no call context")
	}
	if got, _ := cc.ServiceParams().Get("A2A-Version"); len(got) != 1 || got[0] != "1.0" {
		return nil, fmt.Errorf("%w: %q", a2a.ErrVersionNotSupported, got)
	}
	return v.RequestHandler.GetTask(ctx, req)
}

// TestServiceParams: the call's metadata are its service parameters.
func TestServiceParams(t *testing.T) {
	c := serve(t, versioned{a2asrv.NewHandler(demoagent.Echo{})})
	for version, want := range map[string]codes.Code{"0.3": codes.Unimplemented, "1.0": codes.NotFound} {
		ctx := metadata.AppendToOutgoingContext(context.Background(), "A2A-Version", version)
		if _, err := c.GetTask(ctx, &a2apb.GetTaskRequest{Id: "none"}); status.Code(err) != want {
			t.Errorf("GetTask asking for A2A %s: %v, want %v", version, err, want)
		}
	}
}

// FuzzSendMessage: any bytes a client sends as a SendMessageRequest are
// answered, never a panic.
func FuzzSendMessage(f *testing.F) {
	seed, _ := proto.Marshal(&a2apb.SendMessageRequest{Tenant: "t", Message: &a2apb.Message{
		MessageId: "m1", Role: a2apb.Role_ROLE_USER, Parts: []*a2apb.Part{{Content: &a2apb.Part_Text{Text: "hi"}}},
	}})
	f.Add(seed)
	f.Add([]byte{})
	svc := grpcbinding.New(grpcbinding.Single(a2asrv.NewHandler(demoagent.Echo{})))
	f.Fuzz(func(t *testing.T, b []byte) {
		var req a2apb.SendMessageRequest
		if proto.Unmarshal(b, &req) != nil {
			return
		}
		if res, err := svc.SendMessage(context.Background(), &req); err == nil && res == nil {
			t.Fatal("no answer and no error")
		}
	})
}
