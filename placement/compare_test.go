package placement

import (
	"fmt"
	"math"
	"testing"
)

// The figures behind the choice of SchemeJump as the default. Run with
// go test -run Comparison -v ./placement/ to see them; lookup speed is in
// BenchmarkGroup.

const comparisonAgents = 100_000

// schemeFigures measures one scheme at n groups over ids.
type schemeFigures struct {
	maxOverMean float64 // agents per group
	movedGrow   float64 // share of agents that change group from n to n+1 groups
}

func measureScheme(tb interface {
	Helper()
	Fatal(...any)
}, n int, ids []string, opts ...GroupsOption) schemeFigures {
	tb.Helper()
	a := mustGroups(tb, n, opts...)
	b := mustGroups(tb, n+1, opts...)
	moved := 0
	for _, id := range ids {
		if a.Group(id) != b.Group(id) {
			moved++
		}
	}
	return schemeFigures{
		maxOverMean: maxOverMean(groupCounts(a, ids)),
		movedGrow:   float64(moved) / float64(len(ids)),
	}
}

func TestSchemeComparison(t *testing.T) {
	ids := agents(comparisonAgents)
	t.Logf("agents → groups, %d agents; moved = share of agents changing group when one group is added", len(ids))
	t.Logf("%6s  %-6s  %9s  %7s  %7s", "groups", "scheme", "max/mean", "moved", "ideal")
	for _, n := range []int{10, 64, 256, 1024} {
		for _, sc := range schemes {
			f := measureScheme(t, n, ids, sc.opts...)
			t.Logf("%6d  %-6s  %9.3f  %7.4f  %7.4f", n, sc.name, f.maxOverMean, f.movedGrow, 1/float64(n+1))
			// Loose bounds: the inputs are fixed, so these are regressions,
			// not flakes.
			if f.movedGrow > 1.5/float64(n+1) {
				t.Errorf("%s at %d groups moved %.4f", sc.name, n, f.movedGrow)
			}
			// Jump hash leaves only sampling noise: the fullest of n groups
			// is about 3 standard deviations, 3/sqrt(mean), over the mean.
			if limit := 1 + 4/math.Sqrt(float64(len(ids))/float64(n)); sc.name == "jump" && f.maxOverMean > limit {
				t.Errorf("jump at %d groups: max/mean %.3f, want below %.3f", n, f.maxOverMean, limit)
			}
		}
	}
}

// TestConsumerComparison measures the second assignment, groups → live
// consumers, with a Ring over the consumers: 256 groups, 10 consumers, then
// an 11th joins. It compares the plain ring with a bounded-load walk over
// Snapshot.Successors, the building block the receive path will use.
func TestConsumerComparison(t *testing.T) {
	ids := agents(comparisonAgents)
	groups := mustGroups(t, DefaultGroups)
	perGroup := groupCounts(groups, ids)
	tokens := make([]string, groups.Count())
	for i := range tokens {
		tokens[i], _ = groups.GroupToken(i)
	}

	assign := func(s *Snapshot, bound float64) map[string]string {
		if bound == 0 {
			out := make(map[string]string, len(tokens))
			for _, tok := range tokens {
				out[tok], _ = s.Lookup(tok)
			}
			return out
		}
		return boundedAssign(s, tokens, bound)
	}
	perConsumer := func(a map[string]string) []int {
		load := map[string]int{}
		for g, tok := range tokens {
			load[a[tok]] += perGroup[g]
		}
		counts := make([]int, 0, len(load))
		for _, c := range load {
			counts = append(counts, c)
		}
		return counts
	}
	movedAgents := func(before, after map[string]string) float64 {
		moved := 0
		for g, tok := range tokens {
			if before[tok] != after[tok] {
				moved += perGroup[g]
			}
		}
		return float64(moved) / float64(len(ids))
	}

	t.Logf("groups → consumers: %d agents, %d groups (jump), 10 consumers then an 11th", len(ids), groups.Count())
	t.Logf("%-16s  %16s  %16s  %7s  %7s", "assignment", "max/mean (10)", "max/mean (11)", "moved", "ideal")
	for _, bound := range []float64{0, 1.25, 1.1} {
		r := newTestRing(t, DefaultVirtualNodes, memberNames("consumer-", 10)...)
		before := assign(r.Snapshot(), bound)
		if err := r.Add("consumer-10"); err != nil {
			t.Fatal(err)
		}
		after := assign(r.Snapshot(), bound)
		name := "ring"
		if bound > 0 {
			name = fmt.Sprintf("bounded c=%.2f", bound)
		}
		mm10, mm11 := maxOverMean(perConsumer(before)), maxOverMean(perConsumer(after))
		t.Logf("%-16s  %16.3f  %16.3f  %7.4f  %7.4f", name, mm10, mm11, movedAgents(before, after), 1.0/11)
		if bound > 0 && mm10 > bound*1.1 {
			t.Errorf("%s: max/mean %.3f above its bound", name, mm10)
		}
	}
}

// boundedAssign assigns keys to the members of s with consistent hashing
// with bounded loads: each key, in order, goes to the first member on its
// Successors walk that holds fewer than ceil(bound × mean) keys.
func boundedAssign(s *Snapshot, keys []string, bound float64) map[string]string {
	capacity := int(math.Ceil(bound * float64(len(keys)) / float64(s.Len())))
	load := map[string]int{}
	out := make(map[string]string, len(keys))
	for _, k := range keys {
		for m := range s.Successors(k) {
			if load[m] < capacity {
				load[m]++
				out[k] = m
				break
			}
		}
	}
	return out
}
