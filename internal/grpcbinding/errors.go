package grpcbinding

import (
	"context"
	"errors"

	"github.com/a2aproject/a2a-go/v2/a2a"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// ErrorDomain is the domain of the ErrorInfo detail of A2A errors.
const ErrorDomain = "a2a-protocol.org"

// statuses maps the A2A errors to their gRPC status codes and ErrorInfo
// reasons (A2A 1.0, section 5.4). The errors JSON-RPC defines (invalid
// request, method not found, invalid params, internal, parse) have codes
// but no reason.
var statuses = []struct {
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
	{a2a.ErrUnauthenticated, codes.Unauthenticated, ""},
	{a2a.ErrUnauthorized, codes.PermissionDenied, ""},
	{a2a.ErrInvalidRequest, codes.InvalidArgument, ""},
	{a2a.ErrInvalidParams, codes.InvalidArgument, ""},
	{a2a.ErrParseError, codes.InvalidArgument, ""},
	{a2a.ErrMethodNotFound, codes.Unimplemented, ""},
	{context.Canceled, codes.Canceled, ""},
	{context.DeadlineExceeded, codes.DeadlineExceeded, ""},
}

// Status returns err as a gRPC status error: a status error as it is, an
// A2A error with its code and ErrorInfo, anything else as Internal.
func Status(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	code, reason := codes.Internal, ""
	for _, s := range statuses {
		if errors.Is(err, s.err) {
			code, reason = s.code, s.reason
			break
		}
	}
	st := status.New(code, err.Error())
	if reason == "" {
		return st.Err()
	}
	info := &errdetails.ErrorInfo{Reason: reason, Domain: ErrorDomain}
	var ae *a2a.Error
	if errors.As(err, &ae) {
		for k, v := range ae.Details {
			if s, ok := v.(string); ok {
				if info.Metadata == nil {
					info.Metadata = map[string]string{}
				}
				info.Metadata[k] = s
			}
		}
	}
	if with, derr := st.WithDetails(info); derr == nil {
		st = with
	}
	return st.Err()
}
