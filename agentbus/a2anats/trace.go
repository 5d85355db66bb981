package a2anats

import (
	"context"
	"strconv"
	"strings"

	"github.com/a2abus/a2abus/codec"
	"github.com/a2abus/a2abus/internal/tracing"
	"github.com/a2aproject/a2a-go/v2/a2a"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// Tracing. A call's trace context travels in its envelope (agentbus), and
// each of its answers carries the context of the span that sent it, so a
// trace runs from the caller through the bus to the agent's executor and
// back. When the TracerProvider is on, the binding adds the A2A spans of
// the OpenTelemetry A2A conventions (in development): a CLIENT span named
// after the method (SendMessage, ...) around each call the Client makes,
// with an event per answer it gets (a stream's events among them), and a
// SERVER span around each call the Server runs, whose context the agent's
// handler (the SDK's executor) gets; both carry a2a.method.name,
// gen_ai.agent.id, and the message, task and context IDs the request and
// its answers name.

// ClientTracerProvider makes the Client's spans with tp (default: the
// bus's, agentbus.WithTracerProvider).
func ClientTracerProvider(tp trace.TracerProvider) ClientOption {
	return func(c *Client) error {
		c.tracer = tracing.New(tp)
		return nil
	}
}

// ServerTracerProvider makes the Server's spans with tp (default: the
// bus's, agentbus.WithTracerProvider).
func ServerTracerProvider(tp trace.TracerProvider) ServerOption {
	return func(s *Server) error {
		s.tracer = tracing.New(tp)
		return nil
	}
}

// startCall starts the span of an A2A call to or by agent; nil when
// tracing is off.
func startCall(ctx context.Context, tr *tracing.Tracer, kind trace.SpanKind, method, agent string, params any) (context.Context, trace.Span) {
	t, on := tr.Get()
	if !on {
		return ctx, nil
	}
	ctx, span := t.Start(ctx, method, trace.WithSpanKind(kind))
	if !span.IsRecording() {
		return ctx, nil
	}
	span.SetAttributes(tracing.A2AMethod.String(method), tracing.AgentID.String(agent))
	noteParams(span, params)
	return ctx, span
}

// noteParams records the IDs a request names.
func noteParams(span trace.Span, params any) {
	if span == nil {
		return
	}
	var task a2a.TaskID
	switch p := params.(type) {
	case *a2a.SendMessageRequest:
		if m := p.Message; m != nil {
			span.SetAttributes(tracing.A2AMessageID.String(m.ID))
			if m.ContextID != "" {
				span.SetAttributes(tracing.A2AContextID.String(m.ContextID))
			}
			task = m.TaskID
		}
	case *a2a.GetTaskRequest:
		task = p.ID
	case *a2a.CancelTaskRequest:
		task = p.ID
	case *a2a.SubscribeToTaskRequest:
		task = p.ID
	case *a2a.GetTaskPushConfigRequest:
		task = p.TaskID
	case *a2a.CreateTaskPushConfigRequest:
		task = p.TaskID
	case *a2a.ListTaskPushConfigRequest:
		task = p.TaskID
	case *a2a.DeleteTaskPushConfigRequest:
		task = p.TaskID
	case *a2a.ListTasksRequest:
		if p.ContextID != "" {
			span.SetAttributes(tracing.A2AContextID.String(p.ContextID))
		}
	}
	if task != "" {
		span.SetAttributes(tracing.A2ATaskID.String(string(task)))
	}
}

// noteEvent records the task, its state and its context an answer names.
func noteEvent(span trace.Span, ev any) {
	if span == nil {
		return
	}
	var (
		task      a2a.TaskID
		contextID string
		state     a2a.TaskState
	)
	switch e := ev.(type) {
	case *a2a.Task:
		task, contextID, state = e.ID, e.ContextID, e.Status.State
	case *a2a.Message:
		task, contextID = e.TaskID, e.ContextID
	case *a2a.TaskStatusUpdateEvent:
		task, contextID, state = e.TaskID, e.ContextID, e.Status.State
	case *a2a.TaskArtifactUpdateEvent:
		task, contextID = e.TaskID, e.ContextID
	}
	if task != "" {
		span.SetAttributes(tracing.A2ATaskID.String(string(task)))
	}
	if contextID != "" {
		span.SetAttributes(tracing.A2AContextID.String(contextID))
	}
	if state != "" {
		span.SetAttributes(tracing.A2ATaskState.String(string(state)))
	}
}

// noteAnswer records an answer to a call as an event of its client span.
func noteAnswer(ctx context.Context, env *codec.Envelope) {
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		return
	}
	seq, _ := strconv.Atoi(env.Headers.Get(HeaderSeq))
	attrs := []attribute.KeyValue{tracing.A2AAnswerSeq.Int(seq), tracing.A2AAnswerKind.String(strings.TrimPrefix(env.Kind, KindPrefix))}
	if ev := env.Headers.Get(HeaderEvent); ev != "" {
		attrs = append(attrs, tracing.A2AAnswerEvent.String(ev))
	}
	opts := []trace.EventOption{trace.WithAttributes(attrs...)}
	span.AddEvent("a2a.answer", opts...)
}

// endCall ends a call's span (nil: none) with its outcome: err, or the
// JSON-RPC code of the error the call was answered with ("ok" if none).
func endCall(span trace.Span, err error, code string) {
	if span == nil {
		return
	}
	switch {
	case err != nil:
		span.SetAttributes(tracing.ErrorType.String(strconv.Itoa(ErrorCode(err))))
		span.SetStatus(codes.Error, err.Error())
	case code != "" && code != "ok":
		span.SetAttributes(tracing.ErrorType.String(code))
		span.SetStatus(codes.Error, "answered with error "+code)
	}
	span.End()
}
