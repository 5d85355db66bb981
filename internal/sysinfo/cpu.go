package sysinfo

import (
	"bufio"
	"bytes"
	"math"
	"math/bits"
	"os"
	"runtime"
	"strconv"
	"time"
)

// CPUs returns how many CPUs this process may use: GOMAXPROCS, or the
// cgroup's CPU quota where that is lower (the Go runtime rounds a quota up
// and uses at least 2, so a 1-CPU container would otherwise count double).
func CPUs() float64 {
	n := float64(runtime.GOMAXPROCS(0))
	if q, ok := cgroupQuota(); ok && q < n {
		return q
	}
	return n
}

// cgroupQuota reads the CPU quota of this process's cgroup (v2 cpu.max, or
// v1 cpu.cfs_quota_us over cpu.cfs_period_us), in CPUs; ok is false when
// there is none or it cannot be read.
func cgroupQuota() (float64, bool) {
	if b, err := os.ReadFile("/sys/fs/cgroup/cpu.max"); err == nil {
		return parseCPUMax(b)
	}
	q, err1 := os.ReadFile("/sys/fs/cgroup/cpu/cpu.cfs_quota_us")
	p, err2 := os.ReadFile("/sys/fs/cgroup/cpu/cpu.cfs_period_us")
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return parseCPUMax(append(append(bytes.TrimSpace(q), ' '), p...))
}

// parseCPUMax reads "QUOTA PERIOD" (QUOTA "max" or -1: no quota).
func parseCPUMax(b []byte) (float64, bool) {
	f := bytes.Fields(b)
	if len(f) != 2 {
		return 0, false
	}
	quota, err1 := strconv.ParseFloat(string(f[0]), 64)
	period, err2 := strconv.ParseFloat(string(f[1]), 64)
	if err1 != nil || err2 != nil || !(quota > 0) || !(period > 0) || math.IsInf(quota, 0) || math.IsInf(period, 0) {
		return 0, false
	}
	return quota / period, true
}

// Meter measures the process's CPU use and the host's between two calls
// of Sample. Not safe for concurrent use; the zero Meter is ready.
type Meter struct {
	at        time.Time
	proc      time.Duration // process CPU time at `at`
	hostBusy  uint64        // host jiffies busy and total at `at`
	hostTotal uint64
}

// Sample returns the process's CPU use since the last call as a fraction of
// the CPUs it may use (CPUs), and the host's busy fraction; -1 for what
// this platform cannot tell, and for both on the first call.
func (m *Meter) Sample(now time.Time) (proc, host float64) {
	proc, host = -1, -1
	pt, pok := ProcessCPUTime()
	busy, total, hok := hostCPUTimes()
	if !m.at.IsZero() {
		if wall := now.Sub(m.at); pok && m.proc > 0 && wall > 0 {
			proc = clamp01(float64(pt-m.proc) / float64(wall) / CPUs())
		}
		if hok && m.hostTotal > 0 && total > m.hostTotal && busy >= m.hostBusy {
			host = clamp01(float64(busy-m.hostBusy) / float64(total-m.hostTotal))
		}
	}
	m.at = now
	if pok {
		m.proc = pt
	}
	if hok {
		m.hostBusy, m.hostTotal = busy, total
	}
	return proc, host
}

func clamp01(x float64) float64 { return min(max(x, 0), 1) }

// hostCPUTimes reads the host's busy and total CPU time, in jiffies, from
// the first line of /proc/stat; ok is false where there is none.
func hostCPUTimes() (busy, total uint64, ok bool) {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return 0, 0, false
	}
	defer f.Close()
	line, err := bufio.NewReader(f).ReadBytes('\n')
	if err != nil {
		return 0, 0, false
	}
	return parseProcStat(line)
}

// parseProcStat reads the aggregate "cpu" line of /proc/stat: user nice
// system idle iowait irq softirq steal ...; idle and iowait are not busy.
func parseProcStat(line []byte) (busy, total uint64, ok bool) {
	fields := bytes.Fields(line)
	if len(fields) < 5 || string(fields[0]) != "cpu" {
		return 0, 0, false
	}
	var idle, carry uint64
	for i, f := range fields[1:] {
		if i >= 8 { // guest times are already counted in user and nice
			break
		}
		v, err := strconv.ParseUint(string(f), 10, 64)
		if err != nil {
			return 0, 0, false
		}
		if total, carry = bits.Add64(total, v, 0); carry != 0 {
			return 0, 0, false
		}
		if i == 3 || i == 4 {
			idle += v // no carry: idle ≤ total
		}
	}
	return total - idle, total, total > 0
}
