//go:build unix

package sysinfo

import (
	"syscall"
	"time"
)

// ProcessCPUTime returns the CPU time (user and system) this process used.
func ProcessCPUTime() (time.Duration, bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}
