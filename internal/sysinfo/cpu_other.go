//go:build !unix

package sysinfo

import "time"

// ProcessCPUTime is unknown on this platform.
func ProcessCPUTime() (time.Duration, bool) { return 0, false }
