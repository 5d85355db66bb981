// Package demoagent holds the demo A2A agents agentd hosts with --demo, as
// A2A SDK agent executors: echo answers with the text it got, worker runs
// a task that completes after a delay (and can be canceled meanwhile), and
// tck, the conformance agent, does what the A2A conformance kit scripts for
// the messageId prefix of each message (.ci/tck runs the kit against it).
// The tests and benchmarks use them too.
//
// The executors are safe for concurrent use.
package demoagent
