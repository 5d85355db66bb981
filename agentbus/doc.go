// Package agentbus is the client library A2A agents and the a2abus daemons
// use to talk over NATS JetStream.
//
// This first part provisions the streams the bus runs on and exports a
// connection's statistics to Prometheus:
//
//	js, _ := jetstream.New(nc)
//	if err := agentbus.EnsureStreams(ctx, js, agentbus.StreamConfig{Replicas: 3}); err != nil {
//		return err // for example a stream whose retention cannot be changed
//	}
//	reg.MustRegister(agentbus.NewConnCollector(nc, "agentd"))
//
// All exported functions and methods are safe for concurrent use unless
// specified otherwise.
package agentbus
