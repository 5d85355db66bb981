// Package a2anats is an A2A protocol binding over the bus: A2A calls
// (SendMessage, SendStreamingMessage, GetTask, CancelTask, SubscribeToTask,
// ...) carried as envelopes to an agent's consumer and answered over core
// NATS, for the official A2A Go SDK (github.com/a2aproject/a2a-go/v2) on
// both ends. It also keeps the agents' cards (Registry), their tasks
// (TaskStore) and their tasks' push notification configs
// (TaskStore.PushConfigs) in JetStream KV buckets, and posts push
// notifications to webhooks from a bounded queue that never holds a task
// (PushSender):
//
//	handler := a2asrv.NewHandler(executor, a2asrv.WithTaskStore(tasks),
//		a2asrv.WithPushNotifications(tasks.PushConfigs(), sender.For("weather")))
//
// An agent built with the SDK's a2asrv is served on the bus unchanged:
//
//	handler := a2asrv.NewHandler(executor, a2asrv.WithTaskStore(tasks))
//	srv, err := a2anats.Handle(bus, "weather", handler)
//	...
//	err = bus.Serve(ctx)
//
// and a Go program using the SDK's a2aclient calls agents on the bus with
// one option, for any card that lists this binding (ProtocolBinding):
//
//	client, err := a2aclient.NewFromCard(ctx, card, a2anats.WithTransport(bus))
//	res, err := client.SendMessage(ctx, &a2a.SendMessageRequest{Message: msg})
//
// On the wire a call is an envelope of Kind "a2a.<Method>" whose payload
// is the request as JSON, as the JSON-RPC binding writes its params, with
// the caller's service parameters (A2A-Version, A2A-Extensions, ...) as
// "svc:<name>" headers. Its answers go to the call's ReplyTo, numbered by
// the a2a-seq header: one a2a.result for a unary method, a2a.event answers
// and an a2a.end for a stream, or an a2a.error with the JSON-RPC error code
// (a2a-code) and text, so that the caller gets back the same A2A error
// (task not found, not cancelable, ...) the agent returned. An event, and
// SendMessage's result, is the bare A2A object as JSON, its type in the
// a2a-event header (message, task, statusUpdate or artifactUpdate). A gap
// in the numbers fails the call with ErrEventsLost instead of a stream
// silently missing an event; an unnumbered error answer is the bus's own
// (agentbus: the agent's handler failed for good, or there is none) and
// ends the call with its text.
//
// Calls go over core NATS to the member that pulls the call's partition, and
// are stored in the A2A stream when none does, to wait there for one
// (agentbus.Auto, the default; ClientMode chooses Durable or Direct
// instead). A stored call is acknowledged when it has ended; if its member
// dies or stops first, the partition's next owner runs it again, in the
// task the first run created (TaskStore notes which call made each task),
// or answers with that task if it had ended. A direct call is not stored:
// if its member dies, its caller gets no answer before its deadline.
//
// All exported functions and methods are safe for concurrent use.
package a2anats
