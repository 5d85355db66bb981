package placement

import (
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
)

// The figures behind Assign's method and DefaultLoadFactor. Run with
// go test -run AssignFigures -v ./placement/ to see them.

// assignFigures is one membership change, n members then one more, measured
// in agents.
type assignFigures struct {
	maxOverMean float64 // agents per member, the fullest over the mean, before the change
	movedIdeal  float64 // share of agents whose member changed, over the ideal 1/(n+1)
}

// measureChange measures the change from members to members + newcomer
// under assign, with perGroup[g] agents in group g.
func measureChange(assign func(members []string) []string, perGroup []int, members []string, newcomer string) assignFigures {
	before := assign(members)
	after := assign(append(slices.Clone(members), newcomer))
	load := map[string]int{}
	total, moved := 0, 0
	for g, n := range perGroup {
		total += n
		load[before[g]] += n
		if before[g] != after[g] {
			moved += n
		}
	}
	counts := make([]int, 0, len(members))
	for _, m := range members {
		counts = append(counts, load[m])
	}
	return assignFigures{
		maxOverMean: maxOverMean(counts),
		movedIdeal:  float64(moved) / float64(total) * float64(len(members)+1),
	}
}

// TestAssignFigures compares ways of assigning groups to consumers: 100 000
// agents in jump-hash groups, 10 consumers then an 11th, over random sets of
// consumer names. The targets are max/mean ≤ 1.10 and moved ≤ 1.25 × ideal
// at once.
func TestAssignFigures(t *testing.T) {
	trials := 300
	if testing.Short() {
		trials = 30
	}
	ids := agents(comparisonAgents)
	type method struct {
		name   string
		groups int
		assign func(groups int, members []string) []string
	}
	ringWalk := func(c float64) func(int, []string) []string {
		return func(groups int, members []string) []string {
			r := newTestRing(t, DefaultVirtualNodes, members...)
			tokens := make([]string, groups)
			for g := range tokens {
				tokens[g] = string(appendGroupToken(nil, g))
			}
			byToken := boundedAssign(r.Snapshot(), tokens, c)
			out := make([]string, groups)
			for g, tok := range tokens {
				out[g] = byToken[tok]
			}
			return out
		}
	}
	rendezvous := func(c float64) func(int, []string) []string {
		return func(groups int, members []string) []string {
			return owners(mustAssign(t, groups, members, WithLoadFactor(c)))
		}
	}
	methods := []method{
		{"ring walk (150 vnodes) c=1.25", DefaultGroups, ringWalk(1.25)},
		{"ring walk (150 vnodes) c=1.05", DefaultGroups, ringWalk(1.05)},
		{"Assign c=1.25", DefaultGroups, rendezvous(1.25)},
		{"Assign c=1.10", DefaultGroups, rendezvous(1.10)},
		{"Assign c=1.05 (default)", DefaultGroups, rendezvous(1.05)},
		{"Assign c=1.00", DefaultGroups, rendezvous(1)},
		{"Assign c=1.05, 512 groups", 512, rendezvous(1.05)},
		{"Assign c=1.05, 1024 groups", 1024, rendezvous(1.05)},
	}
	t.Logf("%d agents, 10 consumers then an 11th; %d random name sets; then consumer-0..9 + consumer-10", len(ids), trials)
	t.Logf("%-30s  %15s  %15s  %6s  |  %8s  %8s", "method", "max/mean (p90)", "moved/ideal (p90)", "both", "max/mean", "moved/ideal")
	for _, m := range methods {
		perGroup := groupCounts(mustGroups(t, m.groups), ids)
		assign := func(members []string) []string { return m.assign(m.groups, members) }
		rng := rand.New(rand.NewPCG(9, 10))
		var mm, mv []float64
		both := 0
		for range trials {
			names := make([]string, 11)
			for i := range names {
				names[i] = "agentd-" + strconv.FormatUint(rng.Uint64(), 36)
			}
			f := measureChange(assign, perGroup, names[:10], names[10])
			mm, mv = append(mm, f.maxOverMean), append(mv, f.movedIdeal)
			if f.maxOverMean <= 1.10 && f.movedIdeal <= 1.25 {
				both++
			}
		}
		fixed := measureChange(assign, perGroup, memberNames("consumer-", 10), "consumer-10")
		t.Logf("%-30s  %6.3f (%6.3f)  %6.3f (%6.3f)    %5.0f%%  |  %8.3f  %8.3f", m.name,
			mean(mm), p90(mm), mean(mv), p90(mv), 100*float64(both)/float64(trials), fixed.maxOverMean, fixed.movedIdeal)
	}

	t.Logf("Assign at the default load factor, %d groups, n consumers then one more (%d name sets):", DefaultGroups, trials/3)
	perGroup := groupCounts(mustGroups(t, DefaultGroups), ids)
	for _, n := range []int{3, 5, 10, 20, 30, 50, 100} {
		rng := rand.New(rand.NewPCG(11, uint64(n)))
		var mm, mv []float64
		for range trials / 3 {
			names := make([]string, n+1)
			for i := range names {
				names[i] = "agentd-" + strconv.FormatUint(rng.Uint64(), 36)
			}
			f := measureChange(func(members []string) []string {
				return owners(mustAssign(t, DefaultGroups, members))
			}, perGroup, names[:n], names[n])
			mm, mv = append(mm, f.maxOverMean), append(mv, f.movedIdeal)
		}
		t.Logf("  %3d consumers: max/mean %.3f, moved %.3f × ideal (%.4f)", n, mean(mm), mean(mv), 1/float64(n+1))
	}
}

func mean(xs []float64) float64 {
	s := 0.0
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}

func p90(xs []float64) float64 {
	s := slices.Sorted(slices.Values(xs))
	return s[len(s)*9/10]
}
