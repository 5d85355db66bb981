package placement

import (
	"math"

	"github.com/cespare/xxhash/v2"
)

// JumpHash maps key to a bucket in [0, buckets) with the jump consistent
// hash of Lamping and Veach ("A Fast, Minimal Memory, Consistent Hash
// Algorithm", 2014). Keys spread evenly over the buckets, and going from n
// to n+1 buckets moves exactly the keys that land in the new bucket, about
// 1/(n+1) of them; shrinking from n+1 to n moves only the keys of the last
// bucket. Buckets can only be added or removed at the end: to take out an
// arbitrary member, use a Ring.
//
// It needs no memory and runs in O(ln buckets) steps. Like the reference
// implementation it takes up to 2^31-1 buckets; if buckets is outside
// 1..2^31-1, JumpHash returns -1.
func JumpHash(key uint64, buckets int) int {
	if buckets < 1 || buckets > math.MaxInt32 {
		return -1
	}
	b, j := int64(-1), int64(0)
	for j < int64(buckets) {
		b = j
		key = key*2862933555777941757 + 1
		j = int64(float64(b+1) * (float64(int64(1)<<31) / float64((key>>33)+1)))
	}
	return int(b)
}

// JumpHashString is JumpHash of the 64-bit xxhash of key. It does not
// allocate.
func JumpHashString(key string, buckets int) int {
	return JumpHash(xxhash.Sum64String(key), buckets)
}
