//go:build !linux

package sysinfo

// BindCPUs is not supported on this platform.
func BindCPUs(cpus []int) (before []int, err error) { return nil, ErrAffinityUnsupported }

// AffinityCPUs is not supported on this platform.
func AffinityCPUs() ([]int, error) { return nil, ErrAffinityUnsupported }
