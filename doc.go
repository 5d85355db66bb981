// Package a2abus is the root of the a2abus module: a high-performance
// messaging layer for A2A (Agent2Agent) agents on NATS JetStream.
//
// The root package holds only what belongs to the repository as a whole: the
// NATS server configuration in nats.conf, compiled in so that agentd's
// embedded server runs the same settings as the compose cluster. The working
// parts live in the sub-packages: embedded (an in-process NATS server),
// codec, batcher, agentbus, placement and scaler.
//
// Everything exported here is read-only and safe for concurrent use.
package a2abus
