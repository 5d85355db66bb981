// Package codeccmd implements `agentd codec decode|encode`: a frame in and
// its value as JSON out, or JSON in and a frame out, following the JSON
// mapping of package codec (bin as {"$bytes": "<base64>"}, exact 64-bit
// integers, map keys as strings, key order kept). Operators use it on
// messages fetched with `nats stream get`; other languages test against it.
//
// Example (cmd/agentd):
//
//	case "codec":
//		os.Exit(codeccmd.Run(ctx, os.Args[2:], os.Stdin, os.Stdout, os.Stderr))
//
// Run is safe to call concurrently with distinct readers and writers.
package codeccmd
