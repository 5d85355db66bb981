package a2abus

import _ "embed"

// NATSConf is the text of the repository's nats.conf: the settings every
// NATS server of a2abus has (limits, JetStream limits), with no host, port,
// directory or route in it. The embedded server loads it by default and
// takes those from its own options; a server of the cluster runs
// deploy/nats-cluster.conf, which includes nats.conf and adds them. It has
// no include directives, so that it parses from memory. Do not modify it;
// it is shared by every caller.
//
//go:embed nats.conf
var NATSConf string
