// Package agentbus is the client library A2A agents and the a2abus daemons
// use to talk over NATS JetStream: connect, send, handle, and provision the
// streams.
//
// Every agent belongs to a pool, a named set of interchangeable members
// that serve it. Sending finds the agent's pool in the pool registry (KV
// bucket a2abus_pools, watched and cached), hashes the envelope's ordering
// key (its agent and conversation) to one of the pool's partitions, and
// batches envelopes per agent and partition: each batch is one JetStream
// message on a2a.in.<pool>.<partition>.<agent>, deduplicated by a batch ID.
// Send returns once the batch is stored:
//
//	bus, err := agentbus.Connect(ctx, agentbus.WithURL(url))
//	if err != nil {
//		return err
//	}
//	defer bus.Close(ctx)
//	err = bus.Send(ctx, &codec.Envelope{From: "planner", To: "weather", Message: msg})
//
// Receiving registers handlers by agent ID and serves them as one member of
// a pool: Serve declares the pool and its agents, joins the pool's members
// and pulls the partitions that bounded-load rendezvous hashing assigns it,
// one durable pull consumer per partition. Envelopes of one key are handled
// one at a time in send order, across members, hand-overs and
// redeliveries; different keys in parallel. A batch is acknowledged once
// all its envelopes were handled; failures are retried in place (so later
// envelopes of the key wait) and dead-lettered with their reason after the
// last attempt:
//
//	bus.Handle("weather", func(ctx context.Context, env *codec.Envelope) error { ... })
//	err = bus.Serve(ctx) // pool "weather", until ctx ends
//
// Ownership is fenced by the server (a partition's consumer hands out one
// batch at a time) and by a hold on each batch that its member renews with
// confirmed progress acks and gives up before the server could redeliver
// it: see member.go and docs/ownership.md.
//
// Request and Reply are A2A's request/reply round trip, in three modes:
// Durable (stored like any message), Direct (core NATS to the member that
// pulls the request's partition) and Auto (direct, stored when nobody
// pulls it). The A2A protocol binding over the bus, for the A2A Go SDK, is
// in the a2anats subpackage.
//
// Members report in their heartbeats what the scaler reads (Members); the
// scaler's wanted member count per pool is in a KV bucket too
// (SetScaleTarget, WatchScaleTarget), and agentd runs its share of its
// pool's count.
//
// All exported functions and methods are safe for concurrent use unless
// specified otherwise. Several Serve calls may run on one Bus, each a
// member of its own.
package agentbus
