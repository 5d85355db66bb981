// Package faults is the fault-injection suite and the soak of a2abus: real
// agentbus publishers and consumers on a real 3-node embedded NATS cluster
// (file store, R3 stream), faults injected from outside, and a ledger that
// books every send and every handled envelope to say what was lost and
// what was handled twice.
//
// Run the suite with
//
//	go test -tags=faults -count=1 ./internal/faults/
//
// The package's own files are the harness, untagged so that the soak
// command uses them too: Cluster (nodes behind TCP proxies that cut routes
// and client connections), Consumer (a member that can be stopped or
// killed mid-batch), Publish (paced bursts with application retries) and
// Ledger.
//
// All exported functions and methods are safe for concurrent use unless
// specified otherwise.
package faults
