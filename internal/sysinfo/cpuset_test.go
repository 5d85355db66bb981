package sysinfo

import (
	"errors"
	"runtime"
	"slices"
	"testing"
)

func TestParseCPUList(t *testing.T) {
	for _, tt := range []struct {
		in      string
		want    []int
		wantErr bool
	}{
		{"0", []int{0}, false},
		{"0-3", []int{0, 1, 2, 3}, false},
		{"0-1,8,10-11\n", []int{0, 1, 8, 10, 11}, false},
		{"3,1,1-2", []int{1, 2, 3}, false},
		{"", nil, true},
		{"a", nil, true},
		{"3-1", nil, true},
		{"-1", nil, true},
		{"0-99999", nil, true},
		{"1,,2", nil, true},
	} {
		got, err := ParseCPUList(tt.in)
		if (err != nil) != tt.wantErr || !slices.Equal(got, tt.want) {
			t.Errorf("ParseCPUList(%q) = %v, %v; want %v (error %v)", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func FuzzParseCPUList(f *testing.F) {
	f.Add("0-3,8")
	f.Add("1,,2")
	f.Fuzz(func(t *testing.T, s string) {
		cpus, err := ParseCPUList(s)
		if err == nil && (len(cpus) == 0 || !slices.IsSorted(cpus) || cpus[0] < 0 || cpus[len(cpus)-1] > maxCPU) {
			t.Fatalf("ParseCPUList(%q) = %v", s, cpus)
		}
	})
}

// TestBindCPUs binds the process to its first CPU, checks, and restores.
func TestBindCPUs(t *testing.T) {
	cpus, err := AffinityCPUs()
	if errors.Is(err, ErrAffinityUnsupported) {
		if _, err := BindCPUs([]int{0}); !errors.Is(err, ErrAffinityUnsupported) {
			t.Fatalf("BindCPUs where unsupported: %v", err)
		}
		return
	}
	if err != nil || len(cpus) == 0 {
		t.Fatalf("AffinityCPUs: %v, %v", cpus, err)
	}
	procs := runtime.GOMAXPROCS(0)
	before, err := BindCPUs(cpus[:1])
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if _, err := BindCPUs(before); err != nil {
			t.Error(err)
		}
		runtime.GOMAXPROCS(procs)
	}()
	if !slices.Equal(before, cpus) {
		t.Errorf("BindCPUs reported %v before, want %v", before, cpus)
	}
	if now, err := AffinityCPUs(); err != nil || !slices.Equal(now, cpus[:1]) {
		t.Errorf("bound to %v (%v), want %v", now, err, cpus[:1])
	}
	if runtime.GOMAXPROCS(0) != 1 {
		t.Errorf("GOMAXPROCS %d after binding to one CPU", runtime.GOMAXPROCS(0))
	}
	if _, err := BindCPUs(nil); err == nil {
		t.Error("binding to no CPUs succeeded")
	}
	if n, err := NUMANodeCPUs(0); err == nil && len(n) == 0 {
		t.Error("NUMA node 0 has no CPUs")
	}
	if _, err := NUMANodeCPUs(-1); err == nil {
		t.Error("NUMA node -1 accepted")
	}
}
