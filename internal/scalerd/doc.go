// Package scalerd is the scaler daemon's command line behind cmd/scalerd.
// For now it has one command, "scalerd sim", which replays load traces
// against a simulated consumer pool under the a2abus scaling policy and a
// KEDA/HPA-style baseline and prints what each cost. The daemon itself
// (watching JetStream and setting the desired consumer count) is not built
// yet: plain "scalerd" prints the usage and exits 2.
//
// Main is the whole program; cmd/scalerd only wires it to the process:
//
//	os.Exit(scalerd.Main(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.LookupEnv))
//
// Main is safe to call concurrently with distinct writers.
package scalerd
