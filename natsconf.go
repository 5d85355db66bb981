package a2abus

import _ "embed"

// NATSConf is the text of the repository's nats.conf: the NATS server
// configuration the compose cluster mounts and the embedded server loads by
// default. Do not modify it; it is shared by every caller.
//
//go:embed nats.conf
var NATSConf string
