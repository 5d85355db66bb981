//go:build linux

package sysinfo

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"unsafe"

	"golang.org/x/sys/unix"
)

// setBits is how many CPUs a CPU set holds.
const setBits = int(unsafe.Sizeof(unix.CPUSet{})) * 8

// BindCPUs binds this process to cpus: every thread it has now (threads
// made later inherit the mask from the thread that makes them) and sets
// GOMAXPROCS to their count. It returns the CPUs the process could use
// before, so that a caller can restore them.
func BindCPUs(cpus []int) (before []int, err error) {
	var old unix.CPUSet
	if err := unix.SchedGetaffinity(0, &old); err != nil {
		return nil, fmt.Errorf("sysinfo: read CPU affinity: %w", err)
	}
	for c := range setBits {
		if old.IsSet(c) {
			before = append(before, c)
		}
	}
	var set unix.CPUSet
	for _, c := range cpus {
		if c < 0 || c >= setBits {
			return before, fmt.Errorf("sysinfo: CPU %d out of range", c)
		}
		set.Set(c)
	}
	if set.Count() == 0 {
		return before, fmt.Errorf("sysinfo: no CPUs to bind to")
	}
	// A thread that an unbound one starts while we bind inherits the old
	// mask: bind until a pass finds every thread bound.
	for pass := 0; ; pass++ {
		changed, err := bindThreads(&set)
		if err != nil {
			return before, fmt.Errorf("sysinfo: bind to CPUs %v: %w", cpus, err)
		}
		if !changed {
			break
		}
		if pass == maxBindPasses {
			return before, fmt.Errorf("sysinfo: bind to CPUs %v: threads still starting unbound after %d passes", cpus, pass)
		}
	}
	runtime.GOMAXPROCS(set.Count())
	return before, nil
}

// maxBindPasses bounds BindCPUs' passes over the threads.
const maxBindPasses = 20

// bindThreads binds every thread of the process not bound to set yet, and
// reports whether there was one.
func bindThreads(set *unix.CPUSet) (changed bool, err error) {
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return false, fmt.Errorf("list threads: %w", err)
	}
	for _, t := range tasks {
		tid, err := strconv.Atoi(t.Name())
		if err != nil {
			continue
		}
		var cur unix.CPUSet
		if err := unix.SchedGetaffinity(tid, &cur); err == nil && cur == *set {
			continue
		}
		if err := unix.SchedSetaffinity(tid, set); err != nil && err != unix.ESRCH { // ESRCH: the thread ended
			return false, fmt.Errorf("thread %d: %w", tid, err)
		}
		changed = true
	}
	return changed, nil
}

// AffinityCPUs returns the CPUs the calling thread may run on.
func AffinityCPUs() ([]int, error) {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return nil, err
	}
	var out []int
	for c := range setBits {
		if set.IsSet(c) {
			out = append(out, c)
		}
	}
	return out, nil
}
