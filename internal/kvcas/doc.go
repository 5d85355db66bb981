// Package kvcas holds what a compare-and-set on a replicated JetStream KV
// bucket needs beyond nats.go's KV.
//
// Get reads a key from its stream's leader. A KV bucket's stream allows
// direct gets, which any replica answers: a replica that has not caught up
// answers with an older revision, or none, so a compare-and-set made on
// such a read fails for no reason and a key just written may seem not to
// exist. Get asks the stream leader instead (the JetStream API's message
// get, which only the leader answers), so that a process reads its own
// writes on R1 and R3 alike. It needs the permission to get any message of
// the stream.
//
// Conflict tells the two refusals of a compare-and-set apart, and
// RetryBusy retries a write the server refused only because another write
// to the key was still in process, or that no stream received (a bucket
// whose R3 stream has no leader yet). Transient says which errors of a
// JetStream API request are worth asking again while a cluster elects.
//
// The functions are safe for concurrent use.
package kvcas
