// Package agentbus is the client library A2A agents and the a2abus daemons
// use to talk over NATS JetStream: connect, send, handle, and provision the
// streams.
//
// Sending batches envelopes per destination agent and stores each batch as
// one JetStream message on a2a.in.<group>.<agent>, deduplicated by a batch
// ID; Send returns once the batch is stored:
//
//	bus, err := agentbus.Connect(ctx, agentbus.WithURL(url))
//	if err != nil {
//		return err
//	}
//	defer bus.Close(ctx)
//	err = bus.Send(ctx, &codec.Envelope{From: "planner", To: "weather", Message: msg})
//
// Receiving registers handlers by agent ID and serves the consumer groups:
// one durable pull consumer per group, envelopes handled in order per agent
// and in parallel across agents, a batch acknowledged once all its
// envelopes were handled, failures retried in place (so later messages to
// the agent wait) and dead-lettered with their reason after the last
// attempt:
//
//	bus.Handle("weather", func(ctx context.Context, env *codec.Envelope) error { ... })
//	err = bus.Serve(ctx) // until ctx ends
//
// Request and Reply are A2A's request/reply round trip, in three modes:
// Durable (stored like any message), Direct (core NATS to the consumer that
// owns the agent's group) and Auto (direct, stored when no consumer owns
// the group). The A2A protocol binding over the bus, for the A2A Go SDK, is
// in the a2anats subpackage.
//
// Each Serve call is one consumer: it joins the members bucket, whose
// heartbeats carry what the scaler reads (Members), and takes the groups
// that bounded-load rendezvous hashing assigns it. The scaler's wanted
// consumer count is in a KV bucket too (SetScaleTarget, WatchScaleTarget);
// agentd runs that many Serve calls across its hosts.
//
// All exported functions and methods are safe for concurrent use unless
// specified otherwise. Several Serve calls may run on one Bus, except that
// a ServeGroups call runs alone.
package agentbus
