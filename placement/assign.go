package placement

import (
	"fmt"
	"math"
	"math/bits"
	"slices"

	"github.com/cespare/xxhash/v2"
)

// Assignment is an assignment of consumer groups to live members (the
// consumers that pull them): every group has exactly one owner. Make one
// with Assign. An Assignment is immutable and safe for concurrent use; a nil
// *Assignment has no groups and no members.
type Assignment struct {
	members    []string // sorted, unique
	owner      []int32  // owner[g] is the index in members of group g's owner
	start      []int32  // member i owns byMember[start[i]:start[i+1]]
	byMember   []int32  // groups, by member, ascending within a member
	caps       []int32  // caps[i] is member i's cap
	loadFactor float64
}

// Assign assigns groups 0..groups-1 to members by consistent hashing with
// bounded loads (Mirrokni, Thorup and Zadimoghaddam, "Consistent Hashing
// with Bounded Loads", 2018): each group prefers the members in the order of
// a rendezvous hash, and no member takes more than its cap,
// ceil(c × groups / len(members)) for the load factor c (DefaultLoadFactor,
// or WithLoadFactor), or ceil(c × groups × w / total weight) WithWeights.
//
// The result depends only on the arguments: every process that has the same
// member list, in any order, computes the same assignment without talking to
// anyone. The contract, which every version must keep:
//
//   - Pair (g, m) has the score s = SplitMix64's (g+1)-th output seeded with
//     xxhash64(m): z = xxhash64(m) + (g+1)×0x9e3779b97f4a7c15, then
//     z ^= z>>30; z *= 0xbf58476d1ce4e5b9; z ^= z>>27; z *= 0x94d049bb133111eb;
//     s = z ^ z>>31.
//   - Pairs rank by s, highest first. With weights (not all equal), they rank
//     by -log2(s/2^64)/w, lowest first, with w the member's weight over the
//     largest weight and the logarithm in 32-bit fixed point computed with
//     integers (a weighted rendezvous hash: a member is a group's first
//     choice in proportion to its weight), ties going to the higher s. Any
//     remaining tie goes to the member that sorts first, then to the lower
//     group.
//   - The assignment is the stable matching of that common ranking: no
//     group would rather have a member that has room for it or holds a group
//     it ranks lower. It is unique, so it does not depend on the order in
//     which groups are placed; it equals placing the pairs greedily in rank
//     order (the bounded-load walk, with every group walking its rendezvous
//     preference list) and is computed by deferred acceptance.
//
// Adding or removing a member moves the groups it takes or gives up, about
// 1/n of them, plus a few that the caps push along: see Moved. The figures
// behind the method and the default load factor (TestAssignFigures prints
// them): 100 000 agents mapped to groups by Groups, 10 consumers then an
// 11th (ideal move 1/11 = 0.0909), the mean and 90th percentile over 300
// random sets of consumer names, and the share of sets that meet the
// targets max/mean ≤ 1.10 and moved ≤ 1.25 × ideal at once:
//
//	                              agents per consumer  moved agents    both
//	                              max/mean (p90)       / ideal (p90)   targets
//	ring walk, 150 vnodes, c=1.25  1.25 (1.27)          1.08 (1.35)       0%
//	ring walk, 150 vnodes, c=1.05  1.07 (1.08)          1.30 (1.51)      40%
//	Assign, c=1.25                 1.24 (1.27)          1.05 (1.30)       0%
//	Assign, c=1.10                 1.14 (1.15)          1.18 (1.34)       0%
//	Assign, c=1.05 (default)       1.07 (1.08)          1.22 (1.38)      61%
//	Assign, c=1.00                 1.03 (1.04)          1.29 (1.45)      34%
//	Assign, c=1.05, 512 groups     1.07 (1.08)          1.16 (1.26)      88%
//	Assign, c=1.05, 1024 groups    1.06 (1.07)          1.09 (1.17)     100%
//
// Rendezvous preference lists move fewer groups than ring successors at
// the same bound, because a group's list does not depend on how arcs fall,
// and need no table of points. The cap counts groups, not agents: groups
// hold unequal numbers of agents (±5% at 100 000 agents with jump hash),
// which adds about 1% to the fullest consumer's share of agents, since 25 or
// so groups average it out. The group count sets the granularity: at 256
// groups, c=1.05 caps 10 consumers at 27 groups (1.055 × the mean) and 11
// at 25 (1.074), the loosest caps within 1.10; looser caps move fewer
// groups and balance worse. Moves beyond the ideal come from caps that
// shrink as members join: members over the new cap pass groups along. At
// a fixed group count they grow with the member count (1.4 to 1.65 × ideal
// at 20 to 100 consumers with 256 groups) and shrink as members get more
// groups each. Balance needs groups too: 256 groups cannot be split over 50
// or 100 consumers within 1.10 at all (6/5.12 and 3/2.56 = 1.17).
//
// Assign validates its arguments: groups in 1..MaxGroups (ErrInvalidOption),
// at least one member (ErrNoMembers), members that follow the agent ID rule
// and are not repeated (ErrInvalidMember), and its options. It costs
// O(groups × members) time: about 0.2 ms for 256 groups and 100 members,
// 2.5 ms with weights (BenchmarkAssign).
func Assign(groups int, members []string, opts ...AssignOption) (*Assignment, error) {
	if groups < 1 || groups > MaxGroups {
		return nil, fmt.Errorf("%w: %d groups, want 1..%d", ErrInvalidOption, groups, MaxGroups)
	}
	o := assignOptions{loadFactor: DefaultLoadFactor}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	if len(members) == 0 {
		return nil, ErrNoMembers
	}
	ms := slices.Clone(members)
	slices.Sort(ms)
	for i, m := range ms {
		if err := checkToken(m, ErrInvalidMember); err != nil {
			return nil, err
		}
		if i > 0 && ms[i-1] == m {
			return nil, fmt.Errorf("%w: %q given twice", ErrInvalidMember, m)
		}
	}

	mt := matcher{
		groups:  groups,
		hashes:  make([]uint64, len(ms)),
		weights: normalizedWeights(ms, o.weights),
	}
	for i, m := range ms {
		mt.hashes[i] = xxhash.Sum64String(m)
	}
	mt.caps = capacities(groups, o.loadFactor, mt.weights, len(ms))
	owner := mt.match()

	a := &Assignment{
		members:    ms,
		owner:      owner,
		start:      make([]int32, len(ms)+1),
		byMember:   make([]int32, groups),
		caps:       mt.caps,
		loadFactor: o.loadFactor,
	}
	for _, m := range owner {
		a.start[m+1]++
	}
	for i := range ms {
		a.start[i+1] += a.start[i]
	}
	next := slices.Clone(a.start[:len(ms)])
	for g, m := range owner { // ascending g, so each member's groups come out sorted
		a.byMember[next[m]] = int32(g)
		next[m]++
	}
	return a, nil
}

// Count returns the number of groups.
func (a *Assignment) Count() int {
	if a == nil {
		return 0
	}
	return len(a.owner)
}

// Len returns the number of members.
func (a *Assignment) Len() int {
	if a == nil {
		return 0
	}
	return len(a.members)
}

// Members returns the members, sorted.
func (a *Assignment) Members() []string {
	if a == nil {
		return nil
	}
	return slices.Clone(a.members)
}

// LoadFactor returns the load factor the assignment was computed with.
func (a *Assignment) LoadFactor() float64 {
	if a == nil {
		return 0
	}
	return a.loadFactor
}

// Owner returns the member that owns group, or "" if group is not in
// [0, Count()). It does not allocate.
func (a *Assignment) Owner(group int) string {
	if a == nil || group < 0 || group >= len(a.owner) {
		return ""
	}
	return a.members[a.owner[group]]
}

// Groups returns the groups that member owns, in ascending order, or nil if
// it is not a member. The slice is the caller's.
func (a *Assignment) Groups(member string) []int {
	i, ok := a.index(member)
	if !ok {
		return nil
	}
	own := a.byMember[a.start[i]:a.start[i+1]]
	out := make([]int, len(own))
	for j, g := range own {
		out[j] = int(g)
	}
	return out
}

// Capacity returns the most groups member may own, its cap, or 0 if it is
// not a member.
func (a *Assignment) Capacity(member string) int {
	i, ok := a.index(member)
	if !ok {
		return 0
	}
	return int(a.caps[i])
}

// Equal reports whether a and b have the same group count and give every
// group the same owner. Caps, weights and load factors are not compared,
// nor members that own no group.
func (a *Assignment) Equal(b *Assignment) bool {
	if a.Count() != b.Count() {
		return false
	}
	for g := range a.Count() {
		if a.Owner(g) != b.Owner(g) {
			return false
		}
	}
	return true
}

func (a *Assignment) index(member string) (int, bool) {
	if a == nil {
		return 0, false
	}
	return slices.BinarySearch(a.members, member)
}

// Moved returns, in ascending order, the groups whose owner differs between
// from and to: the groups to hand off when the assignment changes from one
// to the other. A group that only one of them has counts as moved, and a nil
// Assignment has no groups, so Moved(nil, to) is every group of to.
func Moved(from, to *Assignment) []int {
	var moved []int
	for g := range max(from.Count(), to.Count()) {
		if from.Owner(g) != to.Owner(g) {
			moved = append(moved, g)
		}
	}
	return moved
}

// normalizedWeights returns the weights of members (sorted) divided by the
// largest, or nil when all are equal: then the assignment is the unweighted
// one.
func normalizedWeights(members []string, weights map[string]float64) []float64 {
	if len(weights) == 0 {
		return nil
	}
	w := make([]float64, len(members))
	top := 0.0
	for i, m := range members {
		w[i] = 1
		if v, ok := weights[m]; ok {
			w[i] = v
		}
		top = max(top, w[i])
	}
	equal := true
	for i := range w {
		w[i] /= top
		equal = equal && w[i] == 1
	}
	if equal {
		return nil
	}
	return w
}

// capacities returns the cap of each of n members: ceil(c × groups × w /
// total weight), at least 1 and at most groups. The caps add up to at least
// groups, since c >= 1, so that every group finds an owner.
func capacities(groups int, c float64, weights []float64, n int) []int32 {
	total := float64(n)
	if weights != nil {
		total = 0
		for _, w := range weights {
			total += w
		}
	}
	caps := make([]int32, n)
	sum := 0
	for i := range caps {
		share := 1.0
		if weights != nil {
			share = weights[i]
		}
		x := c * float64(groups) * share / total
		capacity := groups
		if x < float64(groups) {
			capacity = max(int(math.Ceil(x)), 1)
		}
		caps[i] = int32(capacity)
		sum += capacity
	}
	// Rounding cannot bring the sum below groups by more than a few; if it
	// does, deal the difference out in member order, as every process would.
	for i := 0; sum < groups; i = (i + 1) % n {
		if int(caps[i]) < groups {
			caps[i]++
			sum++
		}
	}
	return caps
}

// rank is where a (group, member) pair stands in the common ranking of
// Assign; see before.
type rank struct {
	key   float64 // -log2(score/2^64) / weight; 0 when unweighted
	score uint64
}

// before reports whether pair (g1, m1) of rank r1 ranks before pair (g2, m2)
// of rank r2: lower key, then higher score, then lower member index, then
// lower group.
func before(r1 rank, m1, g1 int32, r2 rank, m2, g2 int32) bool {
	if r1.key != r2.key {
		return r1.key < r2.key
	}
	if r1.score != r2.score {
		return r1.score > r2.score
	}
	if m1 != m2 {
		return m1 < m2
	}
	return g1 < g2
}

// held is a group that a member holds during deferred acceptance.
type held struct {
	r rank
	g int32
}

// matcher computes the stable matching of Assign.
type matcher struct {
	groups  int
	hashes  []uint64  // xxhash64 of each member
	weights []float64 // normalized; nil when unweighted
	caps    []int32
}

// rank returns the rank of pair (g, m).
func (mt *matcher) rank(g, m int) rank {
	s := pairScore(mt.hashes[m], g)
	if mt.weights == nil {
		return rank{score: s}
	}
	return rank{key: float64(negLog2(s)) / mt.weights[m], score: s}
}

// match runs group-proposing deferred acceptance: every free group proposes
// to the best member it has not yet proposed to; a member keeps the best
// proposals up to its cap and rejects the rest, and a rejected group
// proposes again. With one ranking shared by both sides the stable matching
// is unique, so the result does not depend on the order of proposals. Each
// proposal scans the members, O(n); there are about groups × 1.1 of them.
func (mt *matcher) match() []int32 {
	n := len(mt.hashes)
	type proposal struct {
		m int32 // -1 before the first
		r rank
	}
	last := make([]proposal, mt.groups)
	free := make([]int32, mt.groups)
	for g := range last {
		last[g].m = -1
		free[g] = int32(mt.groups - 1 - g) // popped in ascending order
	}
	holds := make([][]held, n) // max-heaps: the worst held group on top
	for len(free) > 0 {
		g := free[len(free)-1]
		free = free[:len(free)-1]

		// The best member after the last one g proposed to.
		best, bestRank := int32(-1), rank{}
		prev := last[g]
		for m := range int32(n) {
			r := mt.rank(int(g), int(m))
			if prev.m >= 0 && !before(prev.r, prev.m, g, r, m, g) {
				continue
			}
			if best < 0 || before(r, m, g, bestRank, best, g) {
				best, bestRank = m, r
			}
		}
		if best < 0 {
			// Unreachable: the caps add up to at least the group count.
			panic("placement: internal error: a group found no member")
		}
		last[g] = proposal{m: best, r: bestRank}

		h := holds[best]
		switch {
		case len(h) < int(mt.caps[best]):
			holds[best] = pushHeld(h, held{bestRank, g}, best)
		case before(bestRank, best, g, h[0].r, best, h[0].g):
			free = append(free, h[0].g) // the worst held group is rejected
			h[0] = held{bestRank, g}
			siftDown(h, 0, best)
		default:
			free = append(free, g) // rejected
		}
	}
	owner := make([]int32, mt.groups)
	for m, h := range holds {
		for _, x := range h {
			owner[x.g] = int32(m)
		}
	}
	return owner
}

// worse orders a member's heap: the group that ranks last on top.
func worse(h []held, i, j int, m int32) bool {
	return before(h[j].r, m, h[j].g, h[i].r, m, h[i].g)
}

func pushHeld(h []held, x held, m int32) []held {
	h = append(h, x)
	for i := len(h) - 1; i > 0; {
		p := (i - 1) / 2
		if !worse(h, i, p, m) {
			break
		}
		h[i], h[p] = h[p], h[i]
		i = p
	}
	return h
}

func siftDown(h []held, i int, m int32) {
	for {
		l := 2*i + 1
		if l >= len(h) {
			return
		}
		w := l
		if r := l + 1; r < len(h) && worse(h, r, l, m) {
			w = r
		}
		if !worse(h, w, i, m) {
			return
		}
		h[i], h[w] = h[w], h[i]
		i = w
	}
}

// pairScore is the rendezvous score of group g for the member whose ID
// hashes to h: the (g+1)-th output of SplitMix64 seeded with h.
func pairScore(h uint64, g int) uint64 {
	z := h + uint64(g+1)*0x9e3779b97f4a7c15
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

// negLog2 returns -log2(s / 2^64) in fixed point with 32 fractional bits,
// for s > 0 (0 counts as 1): a number in (0, 64 × 2^32]. It uses integer
// arithmetic only, so that every platform computes the same bits; the
// result is within 2^-30 of the true value and does not increase with s.
func negLog2(s uint64) uint64 {
	s = max(s, 1)
	e := bits.Len64(s) - 1  // s is in [2^e, 2^(e+1))
	m := s << (63 - e) >> 1 // s / 2^e, in [1, 2), with 62 fractional bits
	var frac uint64         // the bits of log2(s / 2^e), by repeated squaring
	for range 32 {
		hi, lo := bits.Mul64(m, m) // m² < 4, with 124 fractional bits
		m = hi<<2 | lo>>62
		bit := m >> 63 // m² >= 2: the next bit of the logarithm is 1
		m >>= bit      // branch-free: the bits are coin flips
		frac = frac<<1 | bit
	}
	return uint64(64-e)<<32 - frac
}
