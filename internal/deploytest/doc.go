// Package deploytest starts the three-server deployment as plain processes
// from the shipped configuration and checks what the README promises of it.
//
// It has no code of its own outside its tests, which build behind the tag
// deploy because they take a minute or two:
//
//	go test -tags deploy -count=1 -v ./internal/deploytest/
//	go test -tags deploy -count=1 -v ./internal/deploytest/ -args -deploy.requests 3000
//
// The test runs three real nats-server v2.15.2 processes on
// deploy/nats-cluster.conf (which includes nats.conf), each given its name,
// store directory and routes in the environment and its ports with flags, as
// three servers on one machine need; an `agentd --demo` per server (built from
// ./cmd/agentd, its --nats listing its own server first) and scalerd (built
// from ./cmd/scalerd; A2ABUS_DEPLOY_BIN names a directory of agentd and
// scalerd binaries to run instead, such as an older build's). It takes
// nats-server from A2ABUS_NATS_SERVER, else from PATH if that one is
// v2.15.2, else installs it with `go install` into a temporary directory,
// and fails saying what to install when it cannot.
//
// It checks, in this order:
//
//   - a server alone answers /healthz?js-enabled-only=true with 200 but
//     /healthz?js-meta-only=true (the compose health check) with 503, and
//     the three elect a meta leader;
//   - readiness: each agentd, started alone, is polled on /readyz from its
//     start; at its first 200 the JetStream API must show waiting pulls on
//     the partition consumers of pool agentd;
//   - the three agentds together: each on its own server, the A2A and
//     dead-letter streams, the KV buckets and the partition consumers R3;
//   - a round trip to echo through every agentd's A2A gateway (JSON-RPC
//     SendMessage and the 0.3 message/send) and with `agentd send --wait`
//     against every server; 60 SendMessage calls to worker, all COMPLETED
//     with their artifact, each read back with GetTask from another agentd;
//   - cross-server request/reply: durable requests to echo, whose
//     partitions the agentds consume on all three servers, from one
//     long-lived bus client on nats-1 and from a new bus client per request
//     on nats-2 (-deploy.requests each, A2ABUS_DEPLOY_REQUESTS, default
//     1000, 3000 in the full run), and from `agentd send --wait --nats
//     <nats-3>` processes (-deploy.cli-requests, default 150): none lost;
//   - a kill -9 of the A2A stream leader's server while two publishers
//     (one connected to that server, one to another) send durable messages
//     to an agent the test serves, and `agentd send` processes start
//     around the kill: no acknowledged send lost, a new leader, sends
//     acknowledged again, every agentd ready again and the server, once
//     restarted, current again. The figures (time to a new stream leader,
//     until each publisher's sends are acknowledged again, until each
//     `agentd send` stored its message, until every agentd answers /readyz
//     200 again, until the restarted server is current) are logged, not
//     asserted.
//
// Nothing is mocked: the servers, agentd and scalerd are the real binaries,
// and the test's own clients are agentbus and nats.go over TCP.
package deploytest
