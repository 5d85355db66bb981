package placement

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/cespare/xxhash/v2"
)

// mustAssign returns Assign(groups, members, opts...) or fails the test.
func mustAssign(tb interface {
	Helper()
	Fatal(...any)
}, groups int, members []string, opts ...AssignOption) *Assignment {
	tb.Helper()
	a, err := Assign(groups, members, opts...)
	if err != nil {
		tb.Fatal(err)
	}
	return a
}

// owners returns the owner of every group of a.
func owners(a *Assignment) []string {
	out := make([]string, a.Count())
	for g := range out {
		out[g] = a.Owner(g)
	}
	return out
}

func TestAssignErrors(t *testing.T) {
	ok := []string{"a", "b"}
	tests := []struct {
		name    string
		groups  int
		members []string
		opts    []AssignOption
		wantErr error
		wantMsg string
	}{
		{name: "valid", groups: 8, members: ok},
		{name: "one group", groups: 1, members: ok},
		{name: "max groups", groups: MaxGroups, members: ok},
		{name: "more members than groups", groups: 2, members: memberNames("m", 5)},
		{name: "load factor 1", groups: 8, members: ok, opts: []AssignOption{WithLoadFactor(1)}},
		{name: "huge load factor", groups: 8, members: ok, opts: []AssignOption{WithLoadFactor(math.MaxFloat64)}},
		{name: "weights", groups: 8, members: ok, opts: []AssignOption{WithWeights(map[string]float64{"a": 1e-300, "b": math.MaxFloat64})}},
		{name: "nil weights", groups: 8, members: ok, opts: []AssignOption{WithWeights(nil)}},
		{name: "zero groups", groups: 0, members: ok, wantErr: ErrInvalidOption, wantMsg: "0 groups"},
		{name: "too many groups", groups: MaxGroups + 1, members: ok, wantErr: ErrInvalidOption},
		{name: "no members", groups: 8, members: nil, wantErr: ErrNoMembers},
		{name: "empty member", groups: 8, members: []string{"a", ""}, wantErr: ErrInvalidMember, wantMsg: "empty"},
		{name: "repeated member", groups: 8, members: []string{"b", "a", "b"}, wantErr: ErrInvalidMember, wantMsg: `"b" given twice`},
		{name: "dot in member", groups: 8, members: []string{"host.1"}, wantErr: ErrInvalidMember,
			wantMsg: `placement: invalid member "host.1": character '.' (U+002E) at offset 4`},
		{name: "long member", groups: 8, members: []string{strings.Repeat("m", MaxAgentIDLen+1)}, wantErr: ErrInvalidMember, wantMsg: "129 bytes long"},
		{name: "load factor below 1", groups: 8, members: ok, opts: []AssignOption{WithLoadFactor(0.99)}, wantErr: ErrInvalidOption, wantMsg: "load factor 0.99"},
		{name: "load factor NaN", groups: 8, members: ok, opts: []AssignOption{WithLoadFactor(math.NaN())}, wantErr: ErrInvalidOption},
		{name: "load factor Inf", groups: 8, members: ok, opts: []AssignOption{WithLoadFactor(math.Inf(1))}, wantErr: ErrInvalidOption},
		{name: "zero weight", groups: 8, members: ok, opts: []AssignOption{WithWeights(map[string]float64{"a": 1, "b": 0})}, wantErr: ErrInvalidOption, wantMsg: `weight 0 for member "b"`},
		{name: "negative weight", groups: 8, members: ok, opts: []AssignOption{WithWeights(map[string]float64{"a": -1})}, wantErr: ErrInvalidOption},
		{name: "NaN weight", groups: 8, members: ok, opts: []AssignOption{WithWeights(map[string]float64{"a": math.NaN()})}, wantErr: ErrInvalidOption},
		{name: "Inf weight", groups: 8, members: ok, opts: []AssignOption{WithWeights(map[string]float64{"x": math.Inf(1)})}, wantErr: ErrInvalidOption},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := Assign(tt.groups, tt.members, tt.opts...)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Assign error %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				if a != nil || !strings.Contains(err.Error(), tt.wantMsg) {
					t.Errorf("Assign = %v, %q; want nil and a message containing %q", a, err, tt.wantMsg)
				}
				return
			}
			checkAssignment(t, a, tt.groups)
		})
	}
}

// checkAssignment checks the invariants of every assignment: each group has
// one owner, no member is over its cap, the caps leave room for every
// group, and Groups agrees with Owner.
func checkAssignment(t *testing.T, a *Assignment, groups int) {
	t.Helper()
	if a.Count() != groups {
		t.Fatalf("Count() = %d, want %d", a.Count(), groups)
	}
	seen := make([]bool, groups)
	total, capSum := 0, 0
	for _, m := range a.Members() {
		own := a.Groups(m)
		if !slices.IsSorted(own) {
			t.Errorf("Groups(%q) = %v, not sorted", m, own)
		}
		if len(own) > a.Capacity(m) {
			t.Errorf("member %q owns %d groups, over its cap %d", m, len(own), a.Capacity(m))
		}
		for _, g := range own {
			if seen[g] || a.Owner(g) != m {
				t.Fatalf("group %d: listed for %q, Owner says %q (seen twice: %v)", g, m, a.Owner(g), seen[g])
			}
			seen[g] = true
		}
		total += len(own)
		capSum += a.Capacity(m)
	}
	if total != groups || capSum < groups {
		t.Errorf("%d groups owned, caps add up to %d; want %d and at least that", total, capSum, groups)
	}
}

// TestAssignDeterminism checks that the assignment depends only on the
// member set: the same in any order, in another process, and equal to pinned
// owners (a change here moves live groups when consumers of two versions
// run side by side).
func TestAssignDeterminism(t *testing.T) {
	members := memberNames("agentd-", 10)
	ref := mustAssign(t, DefaultGroups, members)
	rng := rand.New(rand.NewPCG(3, 4))
	for trial := range 5 {
		shuffled := slices.Clone(members)
		rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		if a := mustAssign(t, DefaultGroups, shuffled); !a.Equal(ref) {
			t.Fatalf("trial %d: members in order %v give another assignment", trial, shuffled)
		}
	}

	// Another process, which has its own maps and heap layout.
	cmd := exec.Command(os.Args[0], "-test.run=^TestAssignHelperProcess$")
	cmd.Env = append(os.Environ(), "PLACEMENT_ASSIGN_HELPER="+strings.Join(members, ","))
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helper process: %v", err)
	}
	if got, want := strings.TrimSpace(string(out)), strings.Join(owners(ref), ","); !strings.HasPrefix(got, want) {
		t.Fatalf("helper process computed\n%.200s...\nthis one\n%.200s...", got, want)
	}

	pinned := map[int]string{0: "agentd-9", 1: "agentd-3", 42: "agentd-3", 101: "agentd-7", 255: "agentd-5"}
	for g, want := range pinned {
		if got := ref.Owner(g); got != want {
			t.Errorf("Owner(%d) = %q, pinned %q", g, got, want)
		}
	}
}

// TestAssignHelperProcess is not a test: TestAssignDeterminism runs it in a
// child process to print the owners of the members it is given.
func TestAssignHelperProcess(t *testing.T) {
	members := os.Getenv("PLACEMENT_ASSIGN_HELPER")
	if members == "" {
		t.Skip("helper process only")
	}
	a := mustAssign(t, DefaultGroups, strings.Split(members, ","))
	fmt.Println(strings.Join(owners(a), ","))
}

// referenceAssign is the definition of Assign written out the slow way:
// rank every (group, member) pair by the documented contract, then walk the
// pairs in rank order, giving a group to a member while both are free.
func referenceAssign(groups int, members []string, c float64, weights map[string]float64) []string {
	ms := slices.Sorted(slices.Values(members))
	w := make([]float64, len(ms))
	top, total := 0.0, 0.0
	for i, m := range ms {
		w[i] = 1
		if v, ok := weights[m]; ok {
			w[i] = v
		}
		top = max(top, w[i])
	}
	for i := range w {
		w[i] /= top
		total += w[i]
	}
	weighted := slices.ContainsFunc(w, func(x float64) bool { return x != 1 })
	if !weighted {
		total = float64(len(ms))
	}
	type pair struct {
		key   float64
		score uint64
		m, g  int
	}
	var pairs []pair
	for i, m := range ms {
		h := xxhash.Sum64String(m)
		for g := range groups {
			// The (g+1)-th output of SplitMix64 seeded with h.
			z := h + uint64(g+1)*0x9e3779b97f4a7c15
			z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
			z = (z ^ z>>27) * 0x94d049bb133111eb
			p := pair{score: z ^ z>>31, m: i, g: g}
			if weighted {
				p.key = float64(negLog2(p.score)) / w[i]
			}
			pairs = append(pairs, p)
		}
	}
	slices.SortFunc(pairs, func(a, b pair) int {
		return cmp.Or(cmp.Compare(a.key, b.key), cmp.Compare(b.score, a.score), cmp.Compare(a.m, b.m), cmp.Compare(a.g, b.g))
	})
	load := make([]int, len(ms))
	owner := make([]string, groups)
	for _, p := range pairs {
		share := 1.0
		if weighted {
			share = w[p.m]
		}
		capacity := min(math.Ceil(c*float64(groups)*share/total), float64(groups))
		if owner[p.g] == "" && float64(load[p.m]) < capacity {
			owner[p.g] = ms[p.m]
			load[p.m]++
		}
	}
	return owner
}

// TestAssignMatchesReference checks the deferred acceptance of Assign
// against the greedy walk over all pairs: the stable matching is unique, so
// they must agree group for group.
func TestAssignMatchesReference(t *testing.T) {
	tests := []struct {
		groups, members int
		c               float64
		weights         map[string]float64
	}{
		{DefaultGroups, 10, DefaultLoadFactor, nil},
		{DefaultGroups, 11, DefaultLoadFactor, nil},
		{DefaultGroups, 10, 1, nil},
		{DefaultGroups, 10, 1.25, nil},
		{DefaultGroups, 3, 1.1, nil},
		{DefaultGroups, 100, DefaultLoadFactor, nil},
		{64, 7, 1, nil},
		{10, 20, 1, nil},
		{1000, 13, 1.02, nil},
		{DefaultGroups, 10, DefaultLoadFactor, map[string]float64{"m0": 4, "m1": 2, "m7": 0.5, "stranger": 9}},
		{DefaultGroups, 4, 1, map[string]float64{"m0": 1, "m1": 2, "m2": 3, "m3": 4}},
		{100, 5, 1.25, map[string]float64{"m0": 1e-6}},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d/%d/c=%v/weights=%d", tt.groups, tt.members, tt.c, len(tt.weights)), func(t *testing.T) {
			members := memberNames("m", tt.members)
			a := mustAssign(t, tt.groups, members, WithLoadFactor(tt.c), WithWeights(tt.weights))
			checkAssignment(t, a, tt.groups)
			want := referenceAssign(tt.groups, members, tt.c, tt.weights)
			if got := owners(a); !slices.Equal(got, want) {
				for g := range got {
					if got[g] != want[g] {
						t.Fatalf("group %d: Assign gives %q, the reference %q", g, got[g], want[g])
					}
				}
			}
		})
	}
}

// TestAssignBalance checks that every member stays within its cap, and that
// the cap is what the load factor says, over member counts from 1 to more
// than there are groups.
func TestAssignBalance(t *testing.T) {
	for _, groups := range []int{1, 7, DefaultGroups, 1024} {
		for _, n := range []int{1, 2, 3, 10, 11, 50, 300} {
			for _, c := range []float64{1, DefaultLoadFactor, 1.25, 3} {
				t.Run(fmt.Sprintf("groups=%d/members=%d/c=%v", groups, n, c), func(t *testing.T) {
					a := mustAssign(t, groups, memberNames("consumer-", n), WithLoadFactor(c))
					checkAssignment(t, a, groups)
					wantCap := min(int(math.Ceil(c*float64(groups)/float64(n))), groups)
					for _, m := range a.Members() {
						if a.Capacity(m) != wantCap {
							t.Fatalf("Capacity(%q) = %d, want ceil(%v × %d / %d) = %d", m, a.Capacity(m), c, groups, n, wantCap)
						}
					}
				})
			}
		}
	}
}

// TestAssignMovement checks what moves when a member joins or leaves: with
// caps that never bind, exactly the groups the member takes or gives up, as
// with a plain rendezvous hash; with the default load factor, those plus a
// few that the caps push along.
func TestAssignMovement(t *testing.T) {
	for _, n := range []int{3, 10, 30} {
		members := memberNames("consumer-", n)
		joined := append(slices.Clone(members), "newcomer")
		for _, c := range []float64{float64(n + 1), DefaultLoadFactor} {
			t.Run(fmt.Sprintf("members=%d/c=%v", n, c), func(t *testing.T) {
				before := mustAssign(t, DefaultGroups, members, WithLoadFactor(c))
				after := mustAssign(t, DefaultGroups, joined, WithLoadFactor(c))
				moved := Moved(before, after)
				if !slices.Equal(Moved(after, before), moved) {
					t.Fatal("Moved is not symmetric")
				}
				taken := after.Groups("newcomer")
				spill := 0 // moved between old members
				for _, g := range moved {
					if after.Owner(g) != "newcomer" {
						spill++
					}
				}
				if len(moved) != len(taken)+spill {
					t.Fatalf("%d moved, %d to the newcomer, %d between others", len(moved), len(taken), spill)
				}
				ideal := float64(DefaultGroups) / float64(n+1)
				t.Logf("%d → %d members, c=%v: %d groups moved (%.2f × ideal %.1f): %d to the newcomer, %d between others",
					n, n+1, c, len(moved), float64(len(moved))/ideal, ideal, len(taken), spill)
				if c > float64(n) && spill != 0 {
					t.Errorf("caps that never bind, yet %d groups moved between old members", spill)
				}
				// Loose bounds: the inputs are fixed, so a failure is a
				// regression, not a flake.
				if float64(len(taken)) < ideal/2 || float64(len(moved)) > 2*ideal {
					t.Errorf("%d moved, %d to the newcomer; want about %.1f", len(moved), len(taken), ideal)
				}

				// Leaving is the same change backwards: a member that was
				// there from the start.
				gone := members[n/2]
				left := mustAssign(t, DefaultGroups, slices.DeleteFunc(slices.Clone(members), func(m string) bool { return m == gone }), WithLoadFactor(c))
				moved = Moved(before, left)
				spill = 0
				for _, g := range moved {
					if before.Owner(g) != gone {
						spill++
					}
				}
				if got := len(moved) - spill; got != len(before.Groups(gone)) {
					t.Errorf("%d of the leaver's %d groups moved", got, len(before.Groups(gone)))
				}
				if c > float64(n) && spill != 0 {
					t.Errorf("caps that never bind, yet %d groups moved between the remaining members", spill)
				}
				t.Logf("%d → %d members, c=%v: %d groups moved: %d of the leaver's, %d between others",
					n, n-1, c, len(moved), len(moved)-spill, spill)
			})
		}
	}
}

func TestAssignWeights(t *testing.T) {
	members := []string{"small", "medium", "large", "unlisted"}
	weights := map[string]float64{"small": 1, "medium": 2, "large": 4, "not-a-member": 100}
	const groups = 1024
	a := mustAssign(t, groups, members, WithWeights(weights))
	checkAssignment(t, a, groups)
	// Total weight 8 (unlisted counts 1): caps ceil(1.05 × 1024 × w / 8).
	for m, w := range map[string]float64{"small": 1, "medium": 2, "large": 4, "unlisted": 1} {
		share := float64(groups) * w / 8
		if got, want := a.Capacity(m), int(math.Ceil(DefaultLoadFactor*share)); got != want {
			t.Errorf("Capacity(%q) = %d, want %d", m, got, want)
		}
		if got := float64(len(a.Groups(m))); got < 0.9*share || got > 1.06*share {
			t.Errorf("%q (weight %v) owns %v groups, want about %.0f", m, w, got, share)
		}
	}

	// Equal weights, whatever their scale, are no weights.
	plain := mustAssign(t, groups, members)
	for _, w := range []float64{1, 3.5, 1e-9} {
		eq := mustAssign(t, groups, members, WithWeights(map[string]float64{"small": w, "medium": w, "large": w, "unlisted": w}))
		if !eq.Equal(plain) {
			t.Errorf("all weights %v: assignment differs from the unweighted one", w)
		}
	}

	// Only ratios matter: scaling every weight, the implicit 1 of the
	// unlisted member included, changes nothing.
	scaled := map[string]float64{"unlisted": 1000}
	for m, w := range weights {
		scaled[m] = w * 1000
	}
	if b := mustAssign(t, groups, members, WithWeights(scaled)); !b.Equal(a) {
		t.Error("weights × 1000: assignment changed")
	}

	// The map is copied when the option is made.
	m := map[string]float64{"small": 1, "medium": 2, "large": 4}
	opt := WithWeights(m)
	m["large"] = 0
	if b := mustAssign(t, groups, members, opt); !b.Equal(a) {
		t.Error("changing the map after WithWeights changed the assignment")
	}
}

// TestAssignWeightedMovement checks that a heavier member joining takes
// about its share of groups.
func TestAssignWeightedMovement(t *testing.T) {
	members := memberNames("consumer-", 10)
	weights := map[string]float64{"big": 3}
	before := mustAssign(t, 1024, members, WithWeights(weights))
	after := mustAssign(t, 1024, append(slices.Clone(members), "big"), WithWeights(weights))
	moved, taken := len(Moved(before, after)), len(after.Groups("big"))
	ideal := 1024.0 * 3 / 13
	t.Logf("a member of weight 3 joins 10 of weight 1: it takes %d groups (ideal %.0f), %d move in all", taken, ideal, moved)
	if float64(taken) < 0.9*ideal || float64(moved) > 1.5*ideal {
		t.Errorf("took %d, moved %d; want about %.0f", taken, moved, ideal)
	}
}

func TestMoved(t *testing.T) {
	a := mustAssign(t, 16, []string{"a", "b"})
	b := mustAssign(t, 16, []string{"a", "b", "c"})
	small := mustAssign(t, 8, []string{"a", "b"})
	var fewer []int // the first 8 groups that changed owner, then the 8 that are gone
	for g := range 16 {
		if g >= 8 || a.Owner(g) != small.Owner(g) {
			fewer = append(fewer, g)
		}
	}
	tests := []struct {
		name     string
		from, to *Assignment
		want     []int
	}{
		{"same", a, a, nil},
		{"nil to nil", nil, nil, nil},
		{"from nothing", nil, small, []int{0, 1, 2, 3, 4, 5, 6, 7}},
		{"to nothing", small, nil, []int{0, 1, 2, 3, 4, 5, 6, 7}},
		{"join", a, b, b.Groups("c")},
		{"fewer groups", a, small, fewer},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Moved(tt.from, tt.to); !slices.Equal(got, tt.want) {
				t.Errorf("Moved = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestAssignmentNil(t *testing.T) {
	var a *Assignment
	if a.Count() != 0 || a.Len() != 0 || a.Members() != nil || a.Owner(0) != "" || a.Groups("x") != nil ||
		a.Capacity("x") != 0 || a.LoadFactor() != 0 || !a.Equal(nil) {
		t.Error("nil Assignment is not empty")
	}
	b := mustAssign(t, 4, []string{"x"})
	if b.Equal(nil) || a.Equal(b) {
		t.Error("nil Assignment equals one with groups")
	}
	if b.Owner(-1) != "" || b.Owner(4) != "" || b.Groups("y") != nil || b.Capacity("y") != 0 {
		t.Error("out-of-range group or unknown member has an answer")
	}
	if b.Len() != 1 || b.LoadFactor() != DefaultLoadFactor || !slices.Equal(b.Groups("x"), []int{0, 1, 2, 3}) {
		t.Errorf("Len %d, LoadFactor %v, Groups %v", b.Len(), b.LoadFactor(), b.Groups("x"))
	}
	// Members and Groups return copies.
	b.Members()[0] = "changed"
	b.Groups("x")[0] = 99
	if b.Members()[0] != "x" || b.Groups("x")[0] != 0 {
		t.Error("Members or Groups exposed internal state")
	}
}

func TestAssignmentOwnerAllocs(t *testing.T) {
	a := mustAssign(t, DefaultGroups, memberNames("consumer-", 10))
	if n := testing.AllocsPerRun(1000, func() { _ = a.Owner(42) }); n != 0 {
		t.Errorf("Owner: %v allocs, want 0", n)
	}
}

// TestNegLog2 checks the fixed-point logarithm against math.Log2, and that
// it never increases with its argument, which keeps equal weights
// equivalent to none.
func TestNegLog2(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	xs := []uint64{0, 1, 2, 3, 1 << 32, 1<<63 - 1, 1 << 63, 1<<64 - 2, 1<<64 - 1}
	for range 10000 {
		xs = append(xs, rng.Uint64(), rng.Uint64()>>rng.IntN(64))
	}
	slices.Sort(xs)
	prev := uint64(math.MaxUint64)
	for _, x := range xs {
		got := negLog2(x)
		want := 64 - math.Log2(float64(max(x, 1)))
		if d := math.Abs(float64(got)/(1<<32) - want); d > 1.0/(1<<30) {
			t.Errorf("negLog2(%d) = %v, want %v", x, float64(got)/(1<<32), want)
		}
		if got > prev {
			t.Fatalf("negLog2(%d) = %d, more than for a smaller argument (%d)", x, got, prev)
		}
		if got == 0 || got > 64<<32 {
			t.Fatalf("negLog2(%d) = %d, out of (0, 64 << 32]", x, got)
		}
		prev = got
	}
}

// FuzzAssign checks that Assign never panics on any member list, group
// count or load factor, and that what it accepts keeps every invariant.
func FuzzAssign(f *testing.F) {
	f.Add("a,b,c", 256, 1.05)
	f.Add("a", 1, 1.0)
	f.Add("a,a", 8, 2.0)
	f.Add("x.y,z", 8, 1.0)
	f.Add(",", 3, 0.5)
	f.Add("m0,m1,m2,m3,m4,m5,m6,m7,m8,m9,m10", 2000, 1.0)
	f.Fuzz(func(t *testing.T, list string, groups int, c float64) {
		members := strings.Split(list, ",")
		if len(members) > 200 || groups > 2000 {
			t.Skip("too big to be quick")
		}
		a, err := Assign(groups, members, WithLoadFactor(c))
		if err != nil {
			if !errors.Is(err, ErrInvalidOption) && !errors.Is(err, ErrInvalidMember) {
				t.Fatalf("Assign error %v wraps no expected sentinel", err)
			}
			return
		}
		checkAssignment(t, a, groups)
	})
}

// TestAssignScaleEvents walks a membership through joins and leaves and
// checks every step: the assignment of a member set never depends on the
// path taken to it.
func TestAssignScaleEvents(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 9))
	live := map[string]bool{}
	byKey := map[string]*Assignment{}
	var prev *Assignment
	for step := range 60 {
		name := "agentd-" + strconv.Itoa(rng.IntN(15))
		if live[name] && len(live) > 1 {
			delete(live, name)
		} else {
			live[name] = true
		}
		members := slices.Sorted(maps.Keys(live))
		a := mustAssign(t, DefaultGroups, members)
		checkAssignment(t, a, DefaultGroups)
		key := strings.Join(members, ",")
		if seen, ok := byKey[key]; ok && !seen.Equal(a) {
			t.Fatalf("step %d: members %v assigned differently than before", step, members)
		}
		byKey[key] = a
		if moved := Moved(prev, a); prev != nil && len(moved) > DefaultGroups/2 {
			t.Errorf("step %d: %d groups moved for one member more or less", step, len(moved))
		}
		prev = a
	}
}
