// Package embedded runs a NATS server with JetStream inside the calling
// process: the default server of agentd and the server every test uses.
//
// Start returns only once the server accepts connections and JetStream is
// enabled. Connect gives an in-process connection that skips the network;
// ClientURL gives the URL other processes use.
//
//	srv, err := embedded.Start(ctx, embedded.WithStoreDir("data/jetstream"))
//	if err != nil {
//		return err
//	}
//	defer srv.Shutdown(context.Background())
//	nc, err := srv.Connect()
//
// Settings come from three layers, later ones winning: the package defaults,
// a NATS configuration file (WithConfigFile, or WithConfig for text such as
// a2abus.NATSConf) parsed by the server's own parser, and the options given
// to Start. Listeners (client, monitoring and cluster ports) are always the
// options' business: a configuration file's cluster block is ignored unless
// WithCluster is given, so the compose cluster's nats.conf runs a single
// embedded server unchanged.
//
// All methods of Server are safe for concurrent use. Shutdown is idempotent.
package embedded
