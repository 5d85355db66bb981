package sysinfo

import (
	"runtime"
	"testing"
	"time"
)

func TestParseProcStat(t *testing.T) {
	tests := []struct {
		name        string
		line        string
		busy, total uint64
		ok          bool
	}{
		{"linux 5", "cpu  100 5 50 800 20 3 2 1 7 0\n", 161, 981, true},
		{"old kernel, four fields", "cpu 10 0 10 80\n", 20, 100, true},
		{"a per-CPU line", "cpu0 1 2 3 4 5\n", 0, 0, false},
		{"not a number", "cpu 1 x 3 4 5\n", 0, 0, false},
		{"too short", "cpu 1 2\n", 0, 0, false},
		{"all zero", "cpu 0 0 0 0 0\n", 0, 0, false},
		{"overflowing sum", "cpu 10 0 0 18446744073709551610 0\n", 0, 0, false},
		{"empty", "", 0, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			busy, total, ok := parseProcStat([]byte(tt.line))
			if busy != tt.busy || total != tt.total || ok != tt.ok {
				t.Errorf("parseProcStat(%q) = %d, %d, %v; want %d, %d, %v", tt.line, busy, total, ok, tt.busy, tt.total, tt.ok)
			}
		})
	}
}

func FuzzParseProcStat(f *testing.F) {
	f.Add([]byte("cpu  100 5 50 800 20 3 2 1 7 0\n"))
	f.Add([]byte("cpu 18446744073709551615 1 1 1 1\n"))
	f.Fuzz(func(t *testing.T, line []byte) {
		busy, total, ok := parseProcStat(line)
		if ok && busy > total {
			t.Fatalf("busy %d > total %d", busy, total)
		}
	})
}

func TestCPUMeter(t *testing.T) {
	var m Meter
	now := time.Now()
	if proc, host := m.Sample(now); proc != -1 || host != -1 {
		t.Fatalf("first sample %v %v, want unknown", proc, host)
	}
	for end := time.Now().Add(50 * time.Millisecond); time.Now().Before(end); { // burn some CPU
	}
	proc, host := m.Sample(time.Now())
	if _, ok := ProcessCPUTime(); ok && (proc <= 0 || proc > 1) {
		t.Errorf("process CPU %v after a busy loop, want in (0, 1]", proc)
	}
	if _, _, ok := hostCPUTimes(); ok && (host < 0 || host > 1) {
		t.Errorf("host CPU %v, want in [0, 1]", host)
	}
}

func TestParseCPUMax(t *testing.T) {
	tests := []struct {
		in   string
		want float64
		ok   bool
	}{
		{"max 100000\n", 0, false},
		{"50000 100000\n", 0.5, true},
		{"200000 100000", 2, true},
		{"-1 100000", 0, false}, // cgroup v1: no quota
		{"100000", 0, false},
		{"x 100000", 0, false},
		{"100 0", 0, false},
		{"NaN 100000", 0, false},
	}
	for _, tt := range tests {
		got, ok := parseCPUMax([]byte(tt.in))
		if got != tt.want || ok != tt.ok {
			t.Errorf("parseCPUMax(%q) = %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
	if n := CPUs(); n <= 0 || n > float64(runtime.GOMAXPROCS(0)) {
		t.Errorf("CPUs() = %v with GOMAXPROCS %d", n, runtime.GOMAXPROCS(0))
	}
}

func FuzzParseCPUMax(f *testing.F) {
	f.Add([]byte("50000 100000"))
	f.Add([]byte("max 100000"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if q, ok := parseCPUMax(b); ok && !(q > 0) {
			t.Fatalf("quota %v from %q", q, b)
		}
	})
}
