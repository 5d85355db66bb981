package placement

import (
	"fmt"
	"math"
	"testing"
)

// TestJumpHashVectors checks the published values of the reference
// implementation (Guava's Hashing.consistentHash and dgryski/go-jump use the
// same vectors).
func TestJumpHashVectors(t *testing.T) {
	golden100 := []int{0, 55, 62, 8, 45, 59, 86, 97, 82, 59, 73, 37, 17, 56, 86, 21, 90, 37, 38, 83}
	for key, want := range golden100 {
		if got := JumpHash(uint64(key), 100); got != want {
			t.Errorf("JumpHash(%d, 100) = %d, want %d", key, got, want)
		}
	}
	tests := []struct {
		key     uint64
		buckets int
		want    int
	}{
		{10863919174838991, 11, 6},
		{2016238256797177309, 11, 3},
		{1673758223894951030, 11, 5},
		{2, 100001, 80343},
		{2201, 100001, 22152},
		{2202, 100001, 15018},
	}
	for _, tt := range tests {
		if got := JumpHash(tt.key, tt.buckets); got != tt.want {
			t.Errorf("JumpHash(%d, %d) = %d, want %d", tt.key, tt.buckets, got, tt.want)
		}
	}
}

func TestJumpHashBadBuckets(t *testing.T) {
	for _, n := range []int{0, -1, -1 << 40, math.MaxInt32 + 1, 1 << 40, math.MaxInt} {
		if got := JumpHash(42, n); got != -1 {
			t.Errorf("JumpHash(42, %d) = %d, want -1", n, got)
		}
		if got := JumpHashString("a", n); got != -1 {
			t.Errorf("JumpHashString(a, %d) = %d, want -1", n, got)
		}
	}
	if got := JumpHash(42, 1); got != 0 {
		t.Errorf("JumpHash(42, 1) = %d, want 0", got)
	}
	for _, key := range []uint64{0, 1, 42, ^uint64(0)} {
		if got := JumpHash(key, math.MaxInt32); got < 0 || got >= math.MaxInt32 {
			t.Errorf("JumpHash(%d, MaxInt32) = %d, out of range", key, got)
		}
	}
}

// TestJumpHashMonotone checks consistency: growing n to n+1 buckets moves a
// key only into the new bucket.
func TestJumpHashMonotone(t *testing.T) {
	for k := range 2000 {
		key := fmt.Sprintf("agent-%d", k)
		prev := JumpHashString(key, 1)
		for n := 2; n <= 300; n++ {
			b := JumpHashString(key, n)
			if b < 0 || b >= n {
				t.Fatalf("JumpHashString(%q, %d) = %d, out of range", key, n, b)
			}
			if b != prev && b != n-1 {
				t.Fatalf("JumpHashString(%q): %d buckets → %d, %d buckets → %d, not the new bucket", key, n-1, prev, n, b)
			}
			prev = b
		}
	}
}
