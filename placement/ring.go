package placement

import (
	"fmt"
	"iter"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/cespare/xxhash/v2"
)

// Ring is a consistent-hash ring over a changing set of named members. (To
// assign consumer groups to live consumers, use Assign: it bounds every
// consumer's load, which a ring alone does not.) Each member
// has VirtualNodes points on the ring (DefaultVirtualNodes unless set with
// WithVirtualNodes); a key belongs to the member of the first point at or
// after the key's xxhash64, found by binary search. Adding a member moves
// only the keys the new member takes over, about 1/n of them; removing one
// moves only the keys it owned. Member names are any non-empty strings.
//
// The positions are a contract between processes and versions: point i of
// member m sits at xxhash64(m + "#" + i in decimal), a key at xxhash64(key),
// and points at the same position order by member name.
//
// Lookups are lock-free and do not allocate: they read an immutable
// Snapshot through an atomic pointer. Add, Remove and Set are serialized,
// build a new Snapshot in O(P log P) for P points, and publish it
// atomically, so a lookup sees the membership before or after a change,
// never a mix. Two Rings with the same members and virtual node count give
// the same answers, whatever the order in which members joined.
//
// The zero Ring is an empty ring with DefaultVirtualNodes. A Ring must not be
// copied after first use.
type Ring struct {
	vnodes int
	mu     sync.Mutex // serializes Add, Remove and Set
	snap   atomic.Pointer[Snapshot]
}

// NewRing returns an empty ring.
func NewRing(opts ...RingOption) (*Ring, error) {
	o := ringOptions{vnodes: DefaultVirtualNodes}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	return &Ring{vnodes: o.vnodes}, nil
}

// VirtualNodes returns the number of points each member has on the ring.
func (r *Ring) VirtualNodes() int {
	if r.vnodes == 0 {
		return DefaultVirtualNodes
	}
	return r.vnodes
}

// Snapshot returns the current membership. It never returns nil.
func (r *Ring) Snapshot() *Snapshot {
	if s := r.snap.Load(); s != nil {
		return s
	}
	return &Snapshot{vnodes: r.VirtualNodes()}
}

// Lookup returns the member that owns key, and false if the ring is empty.
// It is lock-free, O(log P) and does not allocate.
func (r *Ring) Lookup(key string) (member string, ok bool) {
	return r.snap.Load().Lookup(key)
}

// Members returns the members, sorted.
func (r *Ring) Members() []string { return r.Snapshot().Members() }

// Len returns the number of members.
func (r *Ring) Len() int { return r.snap.Load().Len() }

// Add adds members to the ring. If any of them is empty, given twice or
// already present, Add changes nothing and returns an error wrapping
// ErrInvalidMember or ErrMemberExists.
func (r *Ring) Add(members ...string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	cur := r.Snapshot()
	add, err := checkMembers(members)
	if err != nil {
		return err
	}
	for _, m := range add {
		if cur.Has(m) {
			return fmt.Errorf("%w: %q", ErrMemberExists, m)
		}
	}
	if len(add) == 0 {
		return nil
	}
	r.publish(cur, slices.Concat(cur.members(), add))
	return nil
}

// Remove removes members from the ring. If any of them is empty, given twice
// or not present, Remove changes nothing and returns an error wrapping
// ErrInvalidMember or ErrUnknownMember.
func (r *Ring) Remove(members ...string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	cur := r.Snapshot()
	del, err := checkMembers(members)
	if err != nil {
		return err
	}
	for _, m := range del {
		if !cur.Has(m) {
			return fmt.Errorf("%w: %q", ErrUnknownMember, m)
		}
	}
	if len(del) == 0 {
		return nil
	}
	keep := make([]string, 0, cur.Len()-len(del))
	for _, m := range cur.members() {
		if _, gone := slices.BinarySearch(del, m); !gone {
			keep = append(keep, m)
		}
	}
	r.publish(cur, keep)
	return nil
}

// Set replaces the membership with members, for a caller that mirrors a
// membership list kept elsewhere (a JetStream KV bucket, for instance). If
// any member is empty or given twice, Set changes nothing and returns an
// error wrapping ErrInvalidMember. Setting the current membership again
// publishes nothing.
func (r *Ring) Set(members []string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	set, err := checkMembers(members)
	if err != nil {
		return err
	}
	cur := r.Snapshot()
	if slices.Equal(set, cur.members()) {
		return nil
	}
	r.publish(cur, set)
	return nil
}

// publish builds and stores the snapshot of members, which are unique but
// not necessarily sorted. r.mu must be held.
func (r *Ring) publish(cur *Snapshot, members []string) {
	slices.Sort(members)
	next := &Snapshot{version: cur.version + 1, vnodes: r.VirtualNodes()}
	if len(members) > 0 {
		next.t = newTable(members, next.vnodes)
	}
	r.snap.Store(next)
}

// checkMembers returns a sorted copy of members, or an error if one is empty
// or repeated.
func checkMembers(members []string) ([]string, error) {
	s := slices.Clone(members)
	slices.Sort(s)
	for i, m := range s {
		if m == "" {
			return nil, fmt.Errorf("%w: empty name", ErrInvalidMember)
		}
		if i > 0 && s[i-1] == m {
			return nil, fmt.Errorf("%w: %q given twice", ErrInvalidMember, m)
		}
	}
	return s, nil
}

// Snapshot is an immutable membership of a Ring. Its methods are safe for
// concurrent use, and a nil *Snapshot is an empty ring.
//
// A Snapshot is what an assignment that needs one consistent view works on:
// for instance a bounded-load assignment walks Successors until it finds a
// member with spare capacity. (Assign ranks members by rendezvous hashing
// instead, which moves fewer groups at the same bound: see its doc.)
type Snapshot struct {
	t       *table // nil when empty
	version uint64
	vnodes  int
}

// Version counts the changes made to the Ring up to this snapshot: 0 for a
// new Ring, one more for each Add, Remove or Set that changed it.
func (s *Snapshot) Version() uint64 {
	if s == nil {
		return 0
	}
	return s.version
}

// VirtualNodes returns the number of points each member has on the ring.
func (s *Snapshot) VirtualNodes() int {
	if s == nil || s.vnodes == 0 {
		return DefaultVirtualNodes
	}
	return s.vnodes
}

// Len returns the number of members.
func (s *Snapshot) Len() int { return len(s.members()) }

// Members returns a sorted copy of the members.
func (s *Snapshot) Members() []string { return slices.Clone(s.members()) }

// Has reports whether member is in the ring.
func (s *Snapshot) Has(member string) bool {
	_, ok := slices.BinarySearch(s.members(), member)
	return ok
}

// Lookup returns the member that owns key, and false if the ring is empty.
// It is O(log P) and does not allocate.
func (s *Snapshot) Lookup(key string) (member string, ok bool) {
	if s == nil || s.t == nil {
		return "", false
	}
	return s.t.members[s.t.owner(xxhash.Sum64String(key))], true
}

// Successors yields every member once, in the order met walking the ring
// clockwise from key: first the owner that Lookup returns, then the member
// that would own key if the owner left, and so on. It yields nothing if the
// ring is empty.
//
// This is the preference list of consistent hashing with bounded loads
// (Mirrokni, Thorup and Zadimoghaddam, 2018): a key goes to the first member
// on it that is below its capacity.
func (s *Snapshot) Successors(key string) iter.Seq[string] {
	return func(yield func(string) bool) {
		if s == nil || s.t == nil {
			return
		}
		t := s.t
		seen := make([]bool, len(t.members))
		left := len(t.members)
		for i, n := t.point(xxhash.Sum64String(key)), 0; n < len(t.owners) && left > 0; i, n = i+1, n+1 {
			if i == len(t.owners) {
				i = 0
			}
			m := t.owners[i]
			if seen[m] {
				continue
			}
			seen[m] = true
			left--
			if !yield(t.members[m]) {
				return
			}
		}
	}
}

func (s *Snapshot) members() []string {
	if s == nil || s.t == nil {
		return nil
	}
	return s.t.members
}
