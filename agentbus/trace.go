package agentbus

import (
	"context"
	"errors"
	"strconv"
	"strings"

	"github.com/a2abus/a2abus/codec"
	"github.com/a2abus/a2abus/internal/tracing"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// Tracing. The caller's trace context travels in each envelope's headers
// (W3C traceparent, tracestate, baggage: see tracing.Propagator), so it
// survives batching, compression, storage, redelivery and a hand-over, and
// the handler's context continues the caller's trace. Spans follow the
// OpenTelemetry messaging conventions (messaging.system nats):
//
//   - send <agent> (PRODUCER): one per envelope sent, from Send or
//     SendAsync until its batch is stored or failed, or for SendDirect
//     until it is published; its context is the one the envelope carries.
//   - publish <agent> (CLIENT): one per batch that holds a sampled
//     envelope, a child of the first such envelope's send span and linked
//     to each; its retries are events.
//   - request <agent> (CLIENT): Request, round trip; a direct request
//     carries its context.
//   - receive <agent> (CLIENT): one per stored batch a member handles
//     that holds a traced envelope, from its delivery to its ack
//     (a2abus.settle), a child of its first sampled envelope's send span
//     and linked to each.
//   - process <agent> (CONSUMER): one per handler attempt on a traced
//     envelope, a child of its send span (the caller's trace); the
//     handler's context holds it.
//   - reply (PRODUCER): one per Reply, in the replier's trace.
//   - dead-letter <agent> (PRODUCER): in the dead envelope's trace, with
//     the reason.
//
// Spans are made only when the bus's TracerProvider is on
// (tracing.Enabled); otherwise a send or a handler call makes no span and
// allocates nothing for tracing, and only carries along a trace context
// that reached it. With it on, a send whose caller is in no trace starts
// one, sampled as the provider says; a trace it starts and does not
// sample is not written into the envelope, and an envelope that carries
// no trace is received and processed without spans: the bus continues
// traces and starts them only where messages start. So a bus sampling 1%
// pays for the 1%: the other envelopes carry no header and make no span
// downstream.

// WithTracerProvider makes the bus's spans with tp (default: the global
// provider, as set by otel.SetTracerProvider at the time of each span).
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(c *config) error {
		c.tracer = tracing.New(tp)
		return nil
	}
}

// TracerProvider returns the provider the bus makes its spans with, for
// the layers above it (a2anats) to make theirs: the one WithTracerProvider
// gave, or one that hands out the global provider's tracers as it is at
// each call.
func (b *Bus) TracerProvider() trace.TracerProvider { return b.cfg.tracer.Provider() }

// Start options of the spans, made once.
var (
	producerSpan = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindProducer)}
	consumerSpan = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindConsumer)}
	clientSpan   = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindClient)}
)

// sendItem is one encoded envelope waiting for its batch, and its send
// span while it is recorded.
type sendItem struct {
	buf  *codec.Buffer
	span trace.Span // nil unless recording
}

// startSend starts the send span of env, to subject, and writes its
// context (or, without tracing, the context ctx carries) into env's
// headers. The span is nil when tracing is off.
func (b *Bus) startSend(ctx context.Context, env *codec.Envelope, subject string, direct bool) trace.Span {
	t, on := b.cfg.tracer.Get()
	if !on {
		tracing.Inject(ctx, &env.Headers)
		return nil
	}
	// The span is named once it is known to record: an unsampled send
	// makes no name (nor options) of its own.
	root := !trace.SpanContextFromContext(ctx).IsValid()
	ctx, span := t.Start(ctx, "send", producerSpan...)
	if !span.IsRecording() {
		// An unsampled trace the caller is in travels on, so that the
		// spans after it keep its decision. One this send would start
		// does not: the envelope carries no context, and its consumer
		// makes no span for it (see startProcess). Most envelopes of a
		// sampled-down bus are such: they cost no header and no span
		// downstream.
		if !root {
			tracing.InjectSpan(ctx, span.SpanContext(), &env.Headers)
		}
		return nil // ends with nothing to record
	}
	tracing.InjectSpan(ctx, span.SpanContext(), &env.Headers)
	span.SetName("send " + env.To)
	span.SetAttributes(append(messagingAttrs(subject, "send", tracing.OpSend),
		tracing.MessageID.String(env.ID),
		tracing.ConversationID.String(Conversation(env)),
		tracing.Direct.Bool(direct))...)
	return span
}

// messagingAttrs are the attributes of a span on subject
// (a2a.in.<pool>.<partition>.<agent>, a2a.direct...).
func messagingAttrs(subject, opName string, op attribute.KeyValue) []attribute.KeyValue {
	attrs := make([]attribute.KeyValue, 0, 10)
	attrs = append(attrs, tracing.SystemNATS, op, tracing.OperationName.String(opName), tracing.Destination.String(subject))
	if tok := strings.Split(subject, "."); len(tok) == 5 {
		attrs = append(attrs, tracing.DestTemplate.String(tok[0]+"."+tok[1]+".{pool}.{partition}.{agent}"),
			tracing.ConsumerGroup.String(tok[2]), tracing.Partition.String(tok[3]))
	}
	return attrs
}

// endSpan ends span (nil: none) with err's status.
func endSpan(span trace.Span, err error) {
	if span == nil {
		return
	}
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

// startPublish starts the publish span of a batch for subject when one of
// its items is recorded: a child of the first one, linked to each. ctx is
// returned with it, or as it is.
func (b *Bus) startPublish(ctx context.Context, subject string, items []sendItem) (context.Context, trace.Span) {
	first := -1
	for i := range items {
		if items[i].span != nil {
			first = i
			break
		}
	}
	if first < 0 {
		return ctx, nil
	}
	t, _ := b.cfg.tracer.Get()
	links := make([]trace.Link, 0, len(items)-first)
	for _, it := range items[first:] {
		if it.span != nil {
			links = append(links, trace.Link{SpanContext: it.span.SpanContext()})
		}
	}
	_, agent := lastToken(subject)
	ctx, span := t.Start(trace.ContextWithSpan(ctx, items[first].span), "publish "+agent,
		trace.WithSpanKind(trace.SpanKindClient), trace.WithLinks(links...),
		trace.WithAttributes(append(messagingAttrs(subject, "publish", tracing.OpSend),
			tracing.BatchCount.Int(len(items)))...))
	return ctx, span
}

// noteRetry records a failed publish attempt on ctx's span.
func noteRetry(ctx context.Context, attempt int, err error) {
	if span := trace.SpanFromContext(ctx); span.IsRecording() {
		span.AddEvent("publish failed", trace.WithAttributes(attribute.Int("attempt", attempt), attribute.String("error", err.Error())))
	}
}

// startProcess starts the process span of one handler attempt on env,
// delivered on subject: a child of the trace context env carries. ctx is
// returned with that context (the handler's), and the span, nil when
// tracing is off.
func (b *Bus) startProcess(ctx context.Context, env *codec.Envelope, subject string, delivered int) (context.Context, trace.Span) {
	receive := trace.SpanFromContext(ctx).SpanContext()
	ctx = tracing.Extract(ctx, env.Headers)
	t, on := b.cfg.tracer.Get()
	if !on {
		return ctx, nil
	}
	if !trace.SpanContextFromContext(ctx).IsValid() {
		// The sender traced nothing (or sampled away the trace its send
		// would have started): the bus continues traces, it starts none
		// on the consumer's side.
		return ctx, nil
	}
	ctx, span := t.Start(ctx, "process", consumerSpan...)
	if !span.IsRecording() {
		return ctx, span
	}
	span.SetName("process " + env.To)
	if receive.IsValid() && !receive.Equal(trace.SpanContextFromContext(ctx)) {
		span.AddLink(trace.Link{SpanContext: receive})
	}
	span.SetAttributes(append(messagingAttrs(subject, "process", tracing.OpProcess),
		tracing.MessageID.String(env.ID),
		tracing.ConversationID.String(Conversation(env)),
		tracing.Direct.Bool(delivered == 0),
		tracing.DeliveryCount.Int(delivered),
		tracing.HandlerAttempt.Int(int(env.Attempt)+1))...)
	return ctx, span
}

// startReceive starts the receive span of msg, a stored batch of envs,
// when tracing is on: a child of its first sampled envelope's trace,
// linked to every envelope's.
func (b *Bus) startReceive(ctx context.Context, msg jetstream.Msg, envs []codec.Envelope, delivered int) (context.Context, trace.Span) {
	t, on := b.cfg.tracer.Get()
	if !on {
		return ctx, nil
	}
	subject := msg.Subject()
	var (
		links  []trace.Link
		parent trace.SpanContext
	)
	for i := range envs {
		sc := tracing.Parent(envs[i].Headers)
		if !sc.IsValid() {
			continue
		}
		links = append(links, trace.Link{SpanContext: sc})
		if !parent.IsValid() && sc.IsSampled() {
			parent = sc
		}
	}
	if len(links) == 0 {
		return ctx, nil // no envelope is traced: no trace to continue
	}
	if !parent.IsValid() {
		parent = links[0].SpanContext
	}
	pctx := trace.ContextWithRemoteSpanContext(ctx, parent)
	_, agent := lastToken(subject)
	_, span := t.Start(pctx, "receive "+agent, trace.WithSpanKind(trace.SpanKindClient), trace.WithLinks(links...))
	if span.IsRecording() {
		span.SetAttributes(append(messagingAttrs(subject, "receive", tracing.OpReceive),
			tracing.BatchCount.Int(len(envs)),
			tracing.DeliveryCount.Int(delivered),
			tracing.StreamSequence.Int64(int64(streamSeq(msg))))...)
	}
	return trace.ContextWithSpan(ctx, span), span
}

// lastToken splits a subject at its last dot.
func lastToken(subject string) (string, string) {
	i := strings.LastIndexByte(subject, '.')
	return subject[:max(i, 0)], subject[i+1:]
}

// settle ends a receive span (nil: none) with what became of its batch.
func settle(span trace.Span, how string) {
	if span == nil {
		return
	}
	span.SetAttributes(tracing.Settle.String(how))
	span.End()
}

// startReply starts the reply span of resp, answering req, and writes its
// context (or the one ctx carries) into resp's headers.
func (b *Bus) startReply(ctx context.Context, req, resp *codec.Envelope) trace.Span {
	t, on := b.cfg.tracer.Get()
	if !on {
		tracing.Inject(ctx, &resp.Headers)
		return nil
	}
	ctx, span := t.Start(ctx, "reply", producerSpan...)
	tracing.Inject(ctx, &resp.Headers)
	if !span.IsRecording() {
		span.End()
		return nil
	}
	span.SetAttributes(tracing.SystemNATS, tracing.OpSend, tracing.OperationName.String("reply"),
		tracing.Destination.String(req.ReplyTo), tracing.DestTemporary.Bool(true),
		tracing.MessageID.String(resp.ID), attribute.String("messaging.message.correlation_id", req.ID))
	return span
}

// natsHeaders is a propagation carrier over NATS message headers, with
// their keys as written (NATS headers are case-sensitive).
type natsHeaders nats.Header

func (h natsHeaders) Get(key string) string { return nats.Header(h).Get(key) }

func (h natsHeaders) Set(key, value string) { h[key] = []string{value} }

func (h natsHeaders) Keys() []string {
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	return keys
}

// startDeadLetter starts the dead-letter span of env (nil: a whole stored
// message) in its trace, and writes its context into the dead letter's
// NATS headers.
func (b *Bus) startDeadLetter(ctx context.Context, env *codec.Envelope, agent, reason string, dl *nats.Msg) (context.Context, trace.Span) {
	if env != nil {
		ctx = tracing.Extract(ctx, env.Headers)
	}
	t, on := b.cfg.tracer.Get()
	var span trace.Span
	if on {
		ctx, span = t.Start(ctx, "dead-letter "+agent, trace.WithSpanKind(trace.SpanKindProducer),
			trace.WithAttributes(tracing.SystemNATS, tracing.OpSend, tracing.OperationName.String("dead-letter"),
				tracing.Destination.String(dl.Subject), tracing.DeadLetterReason.String(reason)))
		if env != nil {
			span.SetAttributes(tracing.MessageID.String(env.ID))
		}
	}
	if trace.SpanContextFromContext(ctx).IsValid() {
		tracing.Propagator.Inject(ctx, natsHeaders(dl.Header))
	}
	return ctx, span
}

// startRequest starts the request span of env when tracing is on.
func (b *Bus) startRequest(ctx context.Context, env *codec.Envelope, mode RequestMode) (context.Context, trace.Span) {
	t, on := b.cfg.tracer.Get()
	if !on {
		return ctx, nil
	}
	ctx, span := t.Start(ctx, "request", clientSpan...)
	if !span.IsRecording() {
		return ctx, nil
	}
	span.SetName("request " + env.To)
	span.SetAttributes(tracing.SystemNATS, tracing.OpSend, tracing.OperationName.String("request"),
		tracing.RequestMode.String(mode.String()))
	return ctx, span
}

// String returns durable, direct or auto.
func (m RequestMode) String() string {
	switch m {
	case Durable:
		return "durable"
	case Direct:
		return "direct"
	case Auto:
		return "auto"
	}
	return "mode(" + strconv.Itoa(int(m)) + ")"
}

// errDeadLetterNotStored is the status of a dead-letter span whose dead
// letter was not stored (the batch goes back to the stream).
var errDeadLetterNotStored = errors.New("agentbus: dead letter not stored; the batch is released")

// streamSeq returns a stored message's stream sequence, or 0.
func streamSeq(msg jetstream.Msg) uint64 {
	if md, err := msg.Metadata(); err == nil {
		return md.Sequence.Stream
	}
	return 0
}
