// Package bench holds the scenarios of `agentd bench`: each runs the a2abus
// path and its anchor (raw nats.go JetStream, core NATS) side by side on
// the same server in one run and reports both with their ratio, so that a
// figure is never read without its baseline.
//
// Scenarios are not safe for concurrent use with each other on one server:
// they purge the streams they use.
package bench
