package placement

import (
	"fmt"
	"slices"
)

// agents returns n agent IDs, agent-0 .. agent-(n-1).
func agents(n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("agent-%d", i)
	}
	return ids
}

// memberNames returns n member names with the given prefix.
func memberNames(prefix string, n int) []string {
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("%s%d", prefix, i)
	}
	return names
}

// newTestRing returns a ring holding members.
func newTestRing(tb interface {
	Helper()
	Fatal(...any)
}, vnodes int, members ...string) *Ring {
	tb.Helper()
	r, err := NewRing(WithVirtualNodes(vnodes))
	if err != nil {
		tb.Fatal(err)
	}
	if err := r.Add(members...); err != nil {
		tb.Fatal(err)
	}
	return r
}

// maxOverMean returns the largest count divided by the mean count.
func maxOverMean(counts []int) float64 {
	total := 0
	for _, c := range counts {
		total += c
	}
	if total == 0 {
		return 0
	}
	return float64(slices.Max(counts)) * float64(len(counts)) / float64(total)
}

// groupCounts returns how many of ids land in each of g's groups.
func groupCounts(g *Groups, ids []string) []int {
	counts := make([]int, g.Count())
	for _, id := range ids {
		counts[g.Group(id)]++
	}
	return counts
}

// mustGroups returns NewGroups(n, opts...) or fails the test.
func mustGroups(tb interface {
	Helper()
	Fatal(...any)
}, n int, opts ...GroupsOption) *Groups {
	tb.Helper()
	g, err := NewGroups(n, opts...)
	if err != nil {
		tb.Fatal(err)
	}
	return g
}

// mustPool returns NewPool(name, partitions, order) or fails the test.
func mustPool(tb interface {
	Helper()
	Fatal(...any)
}, name string, partitions int, order Order) *Pool {
	tb.Helper()
	p, err := NewPool(name, partitions, order)
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

// schemes are the two agent → group schemes with their default settings.
var schemes = []struct {
	name string
	opts []GroupsOption
}{
	{"jump", nil},
	{"ring", []GroupsOption{WithScheme(SchemeRing)}},
}
