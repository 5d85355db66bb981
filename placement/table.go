package placement

import (
	"cmp"
	"slices"
	"strconv"

	"github.com/cespare/xxhash/v2"
)

// table is an immutable consistent-hash ring: the sorted points of every
// member's virtual nodes. It backs both Snapshot (members named by strings)
// and Groups with SchemeRing (members are group numbers).
//
// Point i (0 <= i < vnodes) of member m sits at xxhash64(m + "#" + decimal(i)).
// A key k belongs to the member of the first point at or after
// xxhash64(k), wrapping around past the largest point. Points at equal
// positions are ordered by member name, so the answer never depends on the
// order in which members were added. This derivation is part of the wire
// contract: every sender must compute the same owner, whatever its version.
type table struct {
	members []string // sorted, unique
	hashes  []uint64 // point positions, ascending
	owners  []int32  // owners[i] is the index in members of point i's member
	vnodes  int
}

// newTable builds the ring of members, which must be sorted and unique, with
// vnodes points each. It costs O(P log P) for P = len(members)*vnodes points.
func newTable(members []string, vnodes int) *table {
	type point struct {
		hash  uint64
		owner int32
	}
	pts := make([]point, 0, len(members)*vnodes)
	var buf []byte
	for m, name := range members {
		buf = append(buf[:0], name...)
		buf = append(buf, '#')
		base := len(buf)
		for i := range vnodes {
			buf = strconv.AppendInt(buf[:base], int64(i), 10)
			pts = append(pts, point{hash: xxhash.Sum64(buf), owner: int32(m)})
		}
	}
	// members is sorted, so ordering ties by owner index orders them by name.
	slices.SortFunc(pts, func(a, b point) int {
		if c := cmp.Compare(a.hash, b.hash); c != 0 {
			return c
		}
		return cmp.Compare(a.owner, b.owner)
	})
	t := &table{
		members: members,
		hashes:  make([]uint64, len(pts)),
		owners:  make([]int32, len(pts)),
		vnodes:  vnodes,
	}
	for i, p := range pts {
		t.hashes[i] = p.hash
		t.owners[i] = p.owner
	}
	return t
}

// point returns the index of the first point at or after h, wrapping around.
// The table must not be empty. It runs in O(log P) and does not allocate.
func (t *table) point(h uint64) int {
	i, _ := slices.BinarySearch(t.hashes, h)
	if i == len(t.hashes) {
		i = 0
	}
	return i
}

// owner returns the index in t.members of the member that owns h. The table
// must not be empty.
func (t *table) owner(h uint64) int {
	return int(t.owners[t.point(h)])
}
