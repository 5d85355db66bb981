package tracing

import (
	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
)

// Attributes of the bus's spans: the OpenTelemetry messaging conventions
// where they name a thing, a2abus.* where they do not.
var (
	// SystemNATS is messaging.system of every messaging span.
	SystemNATS = semconv.MessagingSystemKey.String("nats")
	// Messaging operation types.
	OpCreate  = semconv.MessagingOperationTypeCreate
	OpSend    = semconv.MessagingOperationTypeSend
	OpReceive = semconv.MessagingOperationTypeReceive
	OpProcess = semconv.MessagingOperationTypeProcess
)

// Attribute keys.
const (
	OperationName  = semconv.MessagingOperationNameKey
	Destination    = semconv.MessagingDestinationNameKey
	DestTemplate   = semconv.MessagingDestinationTemplateKey
	DestTemporary  = semconv.MessagingDestinationTemporaryKey
	Partition      = semconv.MessagingDestinationPartitionIDKey
	ConsumerGroup  = semconv.MessagingConsumerGroupNameKey
	MessageID      = semconv.MessagingMessageIDKey
	ConversationID = semconv.MessagingMessageConversationIDKey
	BodySize       = semconv.MessagingMessageBodySizeKey
	BatchCount     = semconv.MessagingBatchMessageCountKey
	ErrorType      = semconv.ErrorTypeKey

	// DeliveryCount is how many times the stored batch carrying an
	// envelope has been delivered (JetStream's count), 1 the first time.
	DeliveryCount = attribute.Key("a2abus.delivery.count")
	// HandlerAttempt is the handler attempt of an envelope in this
	// delivery, 1 for the first; above it, the attempts before failed.
	HandlerAttempt = attribute.Key("a2abus.handler.attempt")
	// Direct says a request went over core NATS to its partition's
	// member, not stored.
	Direct = attribute.Key("a2abus.direct")
	// RequestMode is agentbus's request mode: durable, direct or auto.
	RequestMode = attribute.Key("a2abus.request.mode")
	// StreamSequence is a stored batch's sequence in the A2A stream.
	StreamSequence = attribute.Key("a2abus.stream.sequence")
	// Settle is what became of a stored batch: ack, nak, term, or fenced
	// (given up to another member).
	Settle = attribute.Key("a2abus.settle")
	// DeadLetterReason is why an envelope was dead-lettered.
	DeadLetterReason = attribute.Key("a2abus.dead_letter.reason")

	// The A2A spans' attributes, as the A2A conventions of the
	// OpenTelemetry GenAI semantic conventions (in development) name them.
	A2AMethod      = attribute.Key("a2a.method.name")
	A2AMessageID   = attribute.Key("a2a.message.id")
	A2ATaskID      = attribute.Key("a2a.task.id")
	A2ATaskState   = attribute.Key("a2a.task.state")
	A2AVersion     = attribute.Key("a2a.protocol.version")
	AgentID        = attribute.Key("gen_ai.agent.id")
	A2AContextID   = attribute.Key("gen_ai.conversation.id")
	A2AAnswerSeq   = attribute.Key("a2abus.a2a.answer.seq")
	A2AAnswerKind  = attribute.Key("a2abus.a2a.answer.kind")
	A2AAnswerEvent = attribute.Key("a2abus.a2a.answer.event")
)
