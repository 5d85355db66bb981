// Package embeddedtest gives tests a real NATS server with JetStream, run
// in-process by package embedded: RunServer for one server, Cluster for n
// servers routed on loopback with clustered JetStream. Everything is torn
// down by t.Cleanup.
//
//	func TestSomething(t *testing.T) {
//		srv := embeddedtest.RunServer(t)
//		nc := embeddedtest.Connect(t, srv)
//		...
//	}
//
// The servers log errors to the test log; set A2ABUS_TEST_NATS_LOG to debug,
// info or warn for more. NewCerts makes a certificate authority, a server
// (and route) certificate and a client certificate for TLS tests.
//
// The helpers take a testing.TB and must be called from the test's
// goroutine; a TestCluster's methods are safe for concurrent use.
package embeddedtest
