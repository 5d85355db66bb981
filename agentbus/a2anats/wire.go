package a2anats

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/a2abus/a2abus/codec"
	"github.com/a2aproject/a2a-go/v2/a2a"
)

// The A2A methods a call envelope can carry: its Kind is KindPrefix and
// the method's name, as the JSON-RPC binding spells it.
const (
	MethodSendMessage          = "SendMessage"
	MethodSendStreamingMessage = "SendStreamingMessage"
	MethodGetTask              = "GetTask"
	MethodListTasks            = "ListTasks"
	MethodCancelTask           = "CancelTask"
	MethodSubscribeToTask      = "SubscribeToTask"
	MethodGetTaskPushConfig    = "GetTaskPushNotificationConfig"
	MethodCreateTaskPushConfig = "CreateTaskPushNotificationConfig"
	MethodListTaskPushConfigs  = "ListTaskPushNotificationConfigs"
	MethodDeleteTaskPushConfig = "DeleteTaskPushNotificationConfig"
	MethodGetExtendedAgentCard = "GetExtendedAgentCard"
)

// Envelope kinds of the binding. A call's Kind is KindPrefix+method; the
// answers to a call carry its ID as their CorrelationID and one of the
// other kinds.
const (
	KindPrefix = "a2a."
	// KindResult is the one answer of a unary method: its JSON result.
	KindResult = "a2a.result"
	// KindEvent is one event of a streaming method (its type in
	// HeaderEvent).
	KindEvent = "a2a.event"
	// KindEnd ends a stream of events.
	KindEnd = "a2a.end"
	// KindError ends a call with an error (HeaderError, HeaderCode).
	KindError = "a2a.error"
)

// Headers of the binding's answers.
const (
	// HeaderSeq numbers the answers to one call from 1, so that a
	// requester sees a gap (a reply lost on the way) instead of a stream
	// silently missing an event.
	HeaderSeq = "a2a-seq"
	// HeaderCode is the JSON-RPC error code of a KindError answer, so
	// that the requester gets back the same A2A error (task not found,
	// not cancelable, ...) the agent returned.
	HeaderCode = "a2a-code"
	// HeaderError is the error's text (agentbus.HeaderError).
	HeaderError = "error"
)

// HeaderServicePrefix starts the headers that carry a call's service
// parameters (A2A's transport-independent headers, such as A2A-Version
// and A2A-Extensions): "svc:<lowercased name>", the values joined by
// newlines.
const HeaderServicePrefix = "svc:"

// HeaderEvent names the type of the A2A object an a2a.event or a2a.result
// answer of SendMessage carries, as a StreamResponse names it: message,
// task, statusUpdate or artifactUpdate.
const HeaderEvent = "a2a-event"

// setService writes the service parameters svc into h.
func setService(h *codec.Headers, svc map[string][]string) {
	for k, v := range svc {
		h.Set(HeaderServicePrefix+strings.ToLower(k), strings.Join(v, "\n"))
	}
}

// service reads the service parameters of a call's headers.
func service(h codec.Headers) map[string][]string {
	var svc map[string][]string
	for _, kv := range h {
		if k, ok := strings.CutPrefix(kv.Key, HeaderServicePrefix); ok {
			if svc == nil {
				svc = map[string][]string{}
			}
			svc[k] = strings.Split(kv.Value, "\n")
		}
	}
	return svc
}

// eventKind returns the StreamResponse name of ev's type.
func eventKind(ev a2a.Event) (string, error) {
	switch ev.(type) {
	case *a2a.Message:
		return "message", nil
	case *a2a.Task:
		return "task", nil
	case *a2a.TaskStatusUpdateEvent:
		return "statusUpdate", nil
	case *a2a.TaskArtifactUpdateEvent:
		return "artifactUpdate", nil
	}
	return "", fmt.Errorf("%w: unknown event type %T", a2a.ErrInternalError, ev)
}

// decodeEvent decodes the JSON of an event of the type kind names.
func decodeEvent(kind string, raw []byte) (a2a.Event, error) {
	var ev a2a.Event
	switch kind {
	case "message":
		ev = new(a2a.Message)
	case "task":
		ev = new(a2a.Task)
	case "statusUpdate":
		ev = new(a2a.TaskStatusUpdateEvent)
	case "artifactUpdate":
		ev = new(a2a.TaskArtifactUpdateEvent)
	default:
		return nil, fmt.Errorf("unknown event type %q", kind)
	}
	if err := json.Unmarshal(raw, ev); err != nil {
		return nil, err
	}
	return ev, nil
}

// payloadBytes returns env's payload as bytes: the binding writes JSON as
// a msgpack bin (or str, from other writers).
func payloadBytes(env *codec.Envelope) ([]byte, error) {
	switch p := env.Payload.(type) {
	case []byte:
		return p, nil
	case string:
		return []byte(p), nil
	case nil:
		return nil, fmt.Errorf("%w: no payload", a2a.ErrInvalidRequest)
	default:
		return nil, fmt.Errorf("%w: payload is a %T, want JSON bytes", a2a.ErrInvalidRequest, p)
	}
}

// errorCodes are the JSON-RPC codes of the A2A errors, as the A2A
// specification numbers them (section 8).
var errorCodes = []struct {
	code int
	err  error
}{
	{-32700, a2a.ErrParseError},
	{-32600, a2a.ErrInvalidRequest},
	{-32601, a2a.ErrMethodNotFound},
	{-32602, a2a.ErrInvalidParams},
	{-32603, a2a.ErrInternalError},
	{-32000, a2a.ErrServerError},
	{-32001, a2a.ErrTaskNotFound},
	{-32002, a2a.ErrTaskNotCancelable},
	{-32003, a2a.ErrPushNotificationNotSupported},
	{-32004, a2a.ErrUnsupportedOperation},
	{-32005, a2a.ErrUnsupportedContentType},
	{-32006, a2a.ErrInvalidAgentResponse},
	{-32007, a2a.ErrExtendedCardNotConfigured},
	{-32008, a2a.ErrExtensionSupportRequired},
	{-32009, a2a.ErrVersionNotSupported},
	{-31401, a2a.ErrUnauthenticated},
	{-31403, a2a.ErrUnauthorized},
}

// ErrorCode returns the JSON-RPC code of err, as the A2A specification
// numbers its errors: that of the first A2A error it wraps, else -32603
// (internal error).
func ErrorCode(err error) int {
	for _, c := range errorCodes {
		if errors.Is(err, c.err) {
			return c.code
		}
	}
	return -32603
}

// remoteError rebuilds the error an agent returned from an error answer:
// an *a2a.Error wrapping the A2A error of its code, with the agent's text.
func remoteError(agentID string, env *codec.Envelope) error {
	text := env.Headers.Get(HeaderError)
	sentinel := a2a.ErrInternalError
	if code, err := strconv.Atoi(env.Headers.Get(HeaderCode)); err == nil {
		for _, c := range errorCodes {
			if c.code == code {
				sentinel = c.err
				break
			}
		}
	}
	if text == "" {
		text = sentinel.Error()
	}
	return &a2a.Error{Err: sentinel, Message: text, Details: map[string]any{"agent": agentID}}
}
