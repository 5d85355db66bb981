// Package faults is the fault-injection suite and the soak of a2abus: real
// agentbus publishers and consumers on a real 3-node embedded NATS cluster
// (file store, R3 stream), faults injected from outside, and a ledger that
// books every send and every handled envelope to say what was lost and
// what was handled twice.
//
// # The suite
//
//	go test -tags=faults -count=1 ./internal/faults/
//
// Six scenarios, each on a cluster of its own: a consumer killed in the
// middle of a batch, the stream leader's node restarted, every node
// restarted, the stream leader's node cut off from its routes, slow
// consumers (a batch takes longer than the ack wait), and a reconnect
// storm of publishers. After each the load stops and the run drains; then
// every acknowledged send must have been handled (0 lost), every handled
// envelope must have been sent, every duplicate must carry its message's
// first envelope ID (0 duplicates by idempotency key), and handling a
// message twice is allowed only where the at-least-once contract allows
// it: the scenario crashed a consumer or a server (acks lost with them),
// or the publisher itself sent the message again after a failed Send.
// Each scenario logs its counts (with -v), and the run prints a summary.
//
// # The soak
//
//	go run ./internal/faults/cmd/soak --duration 10m
//
// runs mixed load (publishers through proxies, three consumers) with one
// fault per interval (--interval, default 20 s), in turn: a consumer
// killed and replaced, the stream leader restarted, a node's routes cut
// for 5 s, a publisher reconnect storm, a slow consumer, every node
// restarted. It prints one line per interval: heap in use and goroutines
// (after a GC), sends acknowledged, envelopes handled, duplicates, and
// acknowledged messages not handled yet. Then it drains and prints the
// verdict: memory flat, goroutines flat, loss zero (exit status 1 when one
// fails). -v logs the servers' and buses' warnings to stderr.
//
// # The harness
//
// The package's untagged files are the harness, shared by both: Cluster
// (nodes whose routes and client connections pass through Proxy, so that
// a node can be cut off and every client dropped), Consumer (a member that
// can be stopped, slowed, or killed mid-batch: its connection closed with
// its batches unacknowledged and its handlers doing nothing more, as a
// crashed process), Publish (paced bursts, with application retries that
// resend the same envelope) and Ledger.
//
// All exported functions and methods are safe for concurrent use unless
// specified otherwise.
package faults
