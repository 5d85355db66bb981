package sysinfo

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
)

// ErrAffinityUnsupported is returned by BindCPUs where this platform cannot
// bind a process to CPUs.
var ErrAffinityUnsupported = errors.New("sysinfo: CPU affinity is not supported on this platform")

// maxCPU bounds the CPU numbers ParseCPUList accepts.
const maxCPU = 4095

// ParseCPUList reads a CPU list as the kernel writes them ("0-3,8,10-11"),
// into the sorted CPU numbers.
func ParseCPUList(s string) ([]int, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, errors.New("sysinfo: empty CPU list")
	}
	var cpus []int
	for part := range strings.SplitSeq(s, ",") {
		lo, hi, isRange := strings.Cut(strings.TrimSpace(part), "-")
		a, err := strconv.Atoi(lo)
		if err != nil || a < 0 || a > maxCPU {
			return nil, fmt.Errorf("sysinfo: CPU list %q: %q is not a CPU number 0..%d", s, lo, maxCPU)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil || b < a || b > maxCPU {
				return nil, fmt.Errorf("sysinfo: CPU list %q: bad range %q", s, part)
			}
		}
		for c := a; c <= b; c++ {
			cpus = append(cpus, c)
		}
	}
	slices.Sort(cpus)
	return slices.Compact(cpus), nil
}

// NUMANodeCPUs returns the CPUs of NUMA node n, from sysfs.
func NUMANodeCPUs(n int) ([]int, error) {
	if n < 0 {
		return nil, fmt.Errorf("sysinfo: NUMA node %d", n)
	}
	b, err := os.ReadFile(fmt.Sprintf("/sys/devices/system/node/node%d/cpulist", n))
	if err != nil {
		return nil, fmt.Errorf("sysinfo: NUMA node %d: %w", n, err)
	}
	return ParseCPUList(string(b))
}
