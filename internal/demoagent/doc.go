// Package demoagent holds the demo A2A agents agentd hosts with --demo, as
// A2A SDK agent executors: echo answers with the text it got, worker runs
// a task that completes after a delay (and can be canceled meanwhile).
// The tests and benchmarks use them too.
//
// The executors are safe for concurrent use.
package demoagent
