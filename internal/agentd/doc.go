// Package agentd is the per-host a2abus daemon behind cmd/agentd: it parses
// the command line, the AGENTD_* environment and the config file, starts the
// embedded NATS server unless given a URL, provisions the bus's streams and
// serves /healthz, /readyz and /metrics.
//
// Main is the whole program; cmd/agentd only wires it to the process:
//
//	os.Exit(agentd.Main(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.LookupEnv))
//
// A Daemon may be started and shut down from tests without a process. Its
// methods are safe for concurrent use, except that Start must have returned
// before Shutdown is called; Shutdown is idempotent.
package agentd
