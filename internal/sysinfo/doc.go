// Package sysinfo reads what the a2abus daemons report about their host:
// the CPUs a process may use (cgroup quotas included) and the process's and
// host's CPU use over time.
//
//	var m sysinfo.Meter
//	m.Sample(time.Now())             // primes the meter
//	proc, host := m.Sample(time.Now()) // fractions in [0, 1], or -1 if unknown
//
// CPUs is safe for concurrent use; a Meter is not.
package sysinfo
