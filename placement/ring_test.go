package placement

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/cespare/xxhash/v2"
)

func TestRingEmpty(t *testing.T) {
	var zero Ring
	fresh, err := NewRing()
	if err != nil {
		t.Fatal(err)
	}
	var nilSnap *Snapshot
	for name, r := range map[string]interface {
		Lookup(string) (string, bool)
		Len() int
		Members() []string
	}{"zero Ring": &zero, "NewRing": fresh, "nil Snapshot": nilSnap, "Snapshot": fresh.Snapshot()} {
		if m, ok := r.Lookup("k"); ok || m != "" {
			t.Errorf("%s: Lookup = %q, %v; want \"\", false", name, m, ok)
		}
		if r.Len() != 0 || len(r.Members()) != 0 {
			t.Errorf("%s: Len = %d, Members = %v; want empty", name, r.Len(), r.Members())
		}
	}
	for m := range fresh.Snapshot().Successors("k") {
		t.Errorf("Successors of an empty ring yielded %q", m)
	}
	if zero.VirtualNodes() != DefaultVirtualNodes || zero.Snapshot().VirtualNodes() != DefaultVirtualNodes {
		t.Errorf("zero Ring has %d virtual nodes, want %d", zero.VirtualNodes(), DefaultVirtualNodes)
	}
	if err := zero.Add("a"); err != nil {
		t.Fatal(err)
	}
	if m, ok := zero.Lookup("k"); !ok || m != "a" {
		t.Errorf("zero Ring after Add(a): Lookup = %q, %v", m, ok)
	}
}

func TestRingErrors(t *testing.T) {
	tests := []struct {
		name    string
		op      func(r *Ring) error
		wantErr error
	}{
		{"add empty name", func(r *Ring) error { return r.Add("x", "") }, ErrInvalidMember},
		{"add twice in one call", func(r *Ring) error { return r.Add("x", "x") }, ErrInvalidMember},
		{"add existing", func(r *Ring) error { return r.Add("x", "a") }, ErrMemberExists},
		{"remove unknown", func(r *Ring) error { return r.Remove("a", "x") }, ErrUnknownMember},
		{"remove twice in one call", func(r *Ring) error { return r.Remove("a", "a") }, ErrInvalidMember},
		{"remove empty name", func(r *Ring) error { return r.Remove("") }, ErrInvalidMember},
		{"set with duplicate", func(r *Ring) error { return r.Set([]string{"x", "y", "x"}) }, ErrInvalidMember},
		{"set with empty name", func(r *Ring) error { return r.Set([]string{"x", ""}) }, ErrInvalidMember},
		{"add nothing", func(r *Ring) error { return r.Add() }, nil},
		{"remove nothing", func(r *Ring) error { return r.Remove() }, nil},
		{"set the same", func(r *Ring) error { return r.Set([]string{"c", "b", "a"}) }, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newTestRing(t, 10, "a", "b", "c")
			before := r.Snapshot()
			if err := tt.op(r); !errors.Is(err, tt.wantErr) {
				t.Fatalf("got %v, want %v", err, tt.wantErr)
			}
			// Failed and empty changes publish nothing.
			if after := r.Snapshot(); after != before {
				t.Errorf("snapshot changed: version %d → %d, members %v", before.Version(), after.Version(), after.Members())
			}
		})
	}
}

func TestNewRingOptions(t *testing.T) {
	tests := []struct {
		name    string
		vnodes  int
		wantErr error
	}{
		{"one", 1, nil},
		{"default", DefaultVirtualNodes, nil},
		{"max", MaxVirtualNodes, nil},
		{"zero", 0, ErrInvalidOption},
		{"negative", -5, ErrInvalidOption},
		{"too many", MaxVirtualNodes + 1, ErrInvalidOption},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := NewRing(WithVirtualNodes(tt.vnodes))
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("NewRing(WithVirtualNodes(%d)) error %v, want %v", tt.vnodes, err, tt.wantErr)
			}
			if err == nil && r.VirtualNodes() != tt.vnodes {
				t.Errorf("VirtualNodes() = %d, want %d", r.VirtualNodes(), tt.vnodes)
			}
		})
	}
}

func TestRingVersion(t *testing.T) {
	r := newTestRing(t, 5)
	steps := []struct {
		op   func() error
		want uint64
	}{
		{func() error { return r.Add("a", "b") }, 1},
		{func() error { return r.Add("c") }, 2},
		{func() error { return r.Set([]string{"a", "b", "c"}) }, 2},
		{func() error { return r.Remove("b") }, 3},
		{func() error { return r.Set(nil) }, 4},
	}
	for i, s := range steps {
		if err := s.op(); err != nil {
			t.Fatal(err)
		}
		if v := r.Snapshot().Version(); v != s.want {
			t.Errorf("step %d: version %d, want %d", i, v, s.want)
		}
	}
}

// TestRingMinimalMovement checks that adding a member moves keys only to it,
// and removing one moves only its keys, about 1/n of them either way.
func TestRingMinimalMovement(t *testing.T) {
	keys := agents(100_000)
	for _, n := range []int{3, 10, 100} {
		t.Run(fmt.Sprint("members=", n), func(t *testing.T) {
			members := memberNames("consumer-", n)
			r := newTestRing(t, DefaultVirtualNodes, members...)
			before := r.Snapshot()

			// Add one member.
			if err := r.Add("newcomer"); err != nil {
				t.Fatal(err)
			}
			moved := 0
			for _, k := range keys {
				was, _ := before.Lookup(k)
				now, _ := r.Lookup(k)
				if was != now {
					if now != "newcomer" {
						t.Fatalf("key %q moved from %q to %q, not to the new member", k, was, now)
					}
					moved++
				}
			}
			frac, ideal := float64(moved)/float64(len(keys)), 1/float64(n+1)
			t.Logf("add:    %d → %d members moved %.4f of keys (ideal %.4f)", n, n+1, frac, ideal)
			if frac < ideal/2 || frac > ideal*1.5 {
				t.Errorf("add moved %.4f of keys, want about %.4f", frac, ideal)
			}

			// Remove a member that was there from the start.
			if err := r.Set(members); err != nil {
				t.Fatal(err)
			}
			gone := members[n/2]
			if err := r.Remove(gone); err != nil {
				t.Fatal(err)
			}
			moved = 0
			for _, k := range keys {
				was, _ := before.Lookup(k)
				now, _ := r.Lookup(k)
				if was != now {
					if was != gone {
						t.Fatalf("key %q moved from %q to %q, but %q was removed", k, was, now, gone)
					}
					moved++
				} else if now == gone {
					t.Fatalf("key %q still on removed member %q", k, gone)
				}
			}
			frac, ideal = float64(moved)/float64(len(keys)), 1/float64(n)
			t.Logf("remove: %d → %d members moved %.4f of keys (ideal %.4f)", n, n-1, frac, ideal)
			if frac < ideal/2 || frac > ideal*1.5 {
				t.Errorf("remove moved %.4f of keys, want about %.4f", frac, ideal)
			}
		})
	}
}

// TestRingDeterminism checks that the answers depend only on the members
// and the virtual node count, not on the order or path of changes, and that
// they match pinned values: senders on different hosts and versions must
// agree.
func TestRingDeterminism(t *testing.T) {
	members := memberNames("c", 20)
	keys := agents(5000)

	ref := newTestRing(t, DefaultVirtualNodes, members...)
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := range 5 {
		r := newTestRing(t, DefaultVirtualNodes)
		shuffled := slices.Clone(members)
		rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		for _, m := range shuffled {
			if err := r.Add(m); err != nil {
				t.Fatal(err)
			}
		}
		// A detour: remove and re-add a few.
		if err := r.Remove(shuffled[:3]...); err != nil {
			t.Fatal(err)
		}
		if err := r.Add(shuffled[:3]...); err != nil {
			t.Fatal(err)
		}
		a, b := ref.Snapshot().t, r.Snapshot().t
		if !slices.Equal(a.members, b.members) || !slices.Equal(a.hashes, b.hashes) || !slices.Equal(a.owners, b.owners) {
			t.Fatalf("trial %d: ring built in order %v differs from the reference", trial, shuffled)
		}
		for _, k := range keys {
			want, _ := ref.Lookup(k)
			if got, _ := r.Lookup(k); got != want {
				t.Fatalf("trial %d: Lookup(%q) = %q, reference %q", trial, k, got, want)
			}
		}
	}

	// Pinned answers: a change here remaps live traffic.
	pinned := map[string]string{
		"agent-0":   "c7",
		"agent-1":   "c8",
		"planner-1": "c6",
		"echo":      "c5",
		"worker_42": "c18",
	}
	for k, want := range pinned {
		if got, _ := ref.Lookup(k); got != want {
			t.Errorf("Lookup(%q) = %q, pinned %q", k, got, want)
		}
	}
}

func TestRingLookupAllocs(t *testing.T) {
	r := newTestRing(t, DefaultVirtualNodes, memberNames("c", 10)...)
	s := r.Snapshot()
	if n := testing.AllocsPerRun(1000, func() { _, _ = r.Lookup("agent-12345") }); n != 0 {
		t.Errorf("Ring.Lookup: %v allocs, want 0", n)
	}
	if n := testing.AllocsPerRun(1000, func() { _, _ = s.Lookup("agent-12345") }); n != 0 {
		t.Errorf("Snapshot.Lookup: %v allocs, want 0", n)
	}
}

func TestRingBalance(t *testing.T) {
	keys := agents(100_000)
	for _, n := range []int{10, 100} {
		r := newTestRing(t, DefaultVirtualNodes, memberNames("c", n)...)
		idx := map[string]int{}
		for i, m := range r.Members() {
			idx[m] = i
		}
		counts := make([]int, n)
		for _, k := range keys {
			m, _ := r.Lookup(k)
			counts[idx[m]]++
		}
		mm := maxOverMean(counts)
		t.Logf("%d members, %d vnodes: max/mean keys per member %.3f", n, DefaultVirtualNodes, mm)
		if mm > 1.5 {
			t.Errorf("%d members: max/mean %.3f, want below 1.5", n, mm)
		}
	}
}

func TestSuccessors(t *testing.T) {
	members := memberNames("c", 8)
	r := newTestRing(t, 20, members...)
	s := r.Snapshot()
	for _, k := range agents(500) {
		order := slices.Collect(s.Successors(k))
		if len(order) != len(members) {
			t.Fatalf("Successors(%q) = %v, want each of %d members once", k, order, len(members))
		}
		sorted := slices.Sorted(slices.Values(order))
		if !slices.Equal(sorted, s.Members()) {
			t.Fatalf("Successors(%q) = %v, want each member once", k, order)
		}
		if owner, _ := s.Lookup(k); order[0] != owner {
			t.Fatalf("Successors(%q) starts with %q, Lookup = %q", k, order[0], owner)
		}
	}
	// The second successor is the owner once the first one leaves.
	for _, k := range agents(50) {
		order := slices.Collect(s.Successors(k))
		without := newTestRing(t, 20, members...)
		if err := without.Remove(order[0]); err != nil {
			t.Fatal(err)
		}
		if got, _ := without.Lookup(k); got != order[1] {
			t.Fatalf("key %q: owner after removing %q is %q, Successors said %q", k, order[0], got, order[1])
		}
	}
	// Breaking out early stops the walk.
	n := 0
	for range s.Successors("k") {
		n++
		break
	}
	if n != 1 {
		t.Errorf("break after the first successor: %d yielded", n)
	}
}

// TestRingConcurrent runs lookups while members come and go. Run it with
// -race: the lookups take no lock.
func TestRingConcurrent(t *testing.T) {
	r := newTestRing(t, 50, "stable")
	universe := map[string]bool{"stable": true}
	churn := memberNames("churn-", 8)
	for _, m := range churn {
		universe[m] = true
	}
	keys := agents(256)

	var stop atomic.Bool
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			for i := 0; !stop.Load(); i++ {
				k := keys[i%len(keys)]
				m, ok := r.Lookup(k)
				if !ok || !universe[m] {
					errs <- fmt.Errorf("Lookup(%q) = %q, %v during churn", k, m, ok)
					return
				}
				s := r.Snapshot()
				if got, _ := s.Lookup(k); !s.Has(got) {
					errs <- fmt.Errorf("snapshot %d: owner %q of %q not a member", s.Version(), got, k)
					return
				}
			}
		})
	}
	for i := range 300 {
		m := churn[i%len(churn)]
		var err error
		switch i % 3 {
		case 0:
			err = r.Add(m)
		case 1:
			err = r.Remove(m)
		default:
			err = r.Set(append([]string{"stable"}, churn[:i%len(churn)]...))
		}
		if err != nil && !errors.Is(err, ErrMemberExists) && !errors.Is(err, ErrUnknownMember) {
			t.Error(err)
		}
	}
	stop.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// referenceOwner computes the owner of key straight from the documented
// contract, without a table: the member of the smallest point at or after
// xxhash64(key), ties to the smaller name, wrapping to the smallest point.
func referenceOwner(members []string, vnodes int, key string) string {
	type pt struct {
		h    uint64
		name string
	}
	less := func(a, b pt) bool { return a.h < b.h || (a.h == b.h && a.name < b.name) }
	h := xxhash.Sum64String(key)
	var after, lowest *pt
	for _, m := range members {
		for i := range vnodes {
			p := pt{xxhash.Sum64String(m + "#" + strconv.Itoa(i)), m}
			if lowest == nil || less(p, *lowest) {
				lowest = &p
			}
			if p.h >= h && (after == nil || less(p, *after)) {
				after = &p
			}
		}
	}
	if after != nil {
		return after.name
	}
	return lowest.name
}

func TestRingMatchesReference(t *testing.T) {
	members := memberNames("c", 20)
	r := newTestRing(t, 30, members...)
	for _, k := range append(agents(300), "planner-1", "echo", "worker_42", "") {
		got, _ := r.Lookup(k)
		if want := referenceOwner(members, 30, k); got != want {
			t.Fatalf("Lookup(%q) = %q, reference %q", k, got, want)
		}
	}
	// A key hashing past the last point wraps to the first.
	s := r.Snapshot()
	last := s.t.hashes[len(s.t.hashes)-1]
	if i := s.t.point(last + 1); i != 0 && last != ^uint64(0) {
		t.Errorf("point(%d) = %d, want 0 (wrap-around)", last+1, i)
	}
}
