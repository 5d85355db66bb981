// Command tckdirect serves the conformance agent (demoagent.TCK) with the
// A2A Go SDK alone, over JSON-RPC and HTTP+JSON, with the SDK's in-memory
// task store and its push notifications (configs in memory, posted inline
// by push.HTTPPushSender), and over gRPC with the project's gRPC binding of
// the same handler (the SDK serves gRPC for A2A 0.3 only): the baseline the
// conformance kit's result through the bus is compared with (.ci/tck runs
// the kit against both).
//
//	go run ./internal/demoagent/tckdirect -listen 127.0.0.1:9999 -grpc 127.0.0.1:9998
//	../shared/a2a-tck/run http://127.0.0.1:9999
package main
