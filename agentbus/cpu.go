package agentbus

import (
	"bufio"
	"bytes"
	"os"
	"runtime"
	"strconv"
	"time"
)

// cpuMeter measures the process's CPU use and the host's between two calls
// of sample. Not safe for concurrent use.
type cpuMeter struct {
	at        time.Time
	proc      time.Duration // process CPU time at `at`
	hostBusy  uint64        // host jiffies busy and total at `at`
	hostTotal uint64
}

// sample returns the process's CPU use since the last call as a fraction of
// the CPUs it may use (GOMAXPROCS), and the host's busy fraction; -1 for
// what this platform cannot tell, and for both on the first call.
func (m *cpuMeter) sample(now time.Time) (proc, host float64) {
	proc, host = -1, -1
	pt, pok := processCPUTime()
	busy, total, hok := hostCPUTimes()
	if !m.at.IsZero() {
		if wall := now.Sub(m.at); pok && m.proc > 0 && wall > 0 {
			proc = clamp01(float64(pt-m.proc) / float64(wall) / float64(runtime.GOMAXPROCS(0)))
		}
		if hok && m.hostTotal > 0 && total > m.hostTotal {
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
	var idle uint64
	for i, f := range fields[1:] {
		if i >= 8 { // guest times are already counted in user and nice
			break
		}
		v, err := strconv.ParseUint(string(f), 10, 64)
		if err != nil {
			return 0, 0, false
		}
		total += v
		if i == 3 || i == 4 {
			idle += v
		}
	}
	return total - idle, total, total > 0
}
