package placement

import (
	"fmt"
	"slices"
	"testing"

	"github.com/cespare/xxhash/v2"
)

// benchKeys are the keys the lookup benchmarks cycle through, so that the
// numbers include hashing different strings and touching different points.
var benchKeys = agents(4096)

func BenchmarkRingLookup(b *testing.B) {
	for _, n := range []int{10, 100, 256} {
		r := newTestRing(b, DefaultVirtualNodes, memberNames("consumer-", n)...)
		b.Run(fmt.Sprintf("members=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				_, _ = r.Lookup(benchKeys[i&4095])
				i++
			}
		})
	}
	// The anchor: the seed's get_node, a linear scan of the sorted points.
	r := newTestRing(b, DefaultVirtualNodes, memberNames("consumer-", 256)...)
	t := r.Snapshot().t
	b.Run("members=256/linear-scan-anchor", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			h := xxhash.Sum64String(benchKeys[i&4095])
			j := 0
			for j < len(t.hashes) && t.hashes[j] < h {
				j++
			}
			if j == len(t.hashes) {
				j = 0
			}
			_ = t.members[t.owners[j]]
			i++
		}
	})
}

func BenchmarkJumpHash(b *testing.B) {
	b.ReportAllocs()
	var key uint64
	for b.Loop() {
		_ = JumpHash(key, DefaultGroups)
		key += 0x9e3779b97f4a7c15
	}
}

// BenchmarkGroup compares the two agent → group schemes at the default 256
// groups: ns/op of Group, and as metrics the balance (max/mean agents per
// group over 100 000 agents) and the share of agents moved by a 257th group.
func BenchmarkGroup(b *testing.B) {
	ids := agents(comparisonAgents)
	for _, sc := range schemes {
		g := mustGroups(b, DefaultGroups, sc.opts...)
		f := measureScheme(b, DefaultGroups, ids, sc.opts...)
		b.Run("scheme="+sc.name, func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				_ = g.Group(benchKeys[i&4095])
				i++
			}
			b.ReportMetric(f.maxOverMean, "max/mean")
			b.ReportMetric(f.movedGrow, "moved")
		})
	}
}

// BenchmarkPartition measures key → partition at the default 256
// partitions for both orders. The anchor is Groups.Group, the agent-only
// jump hash: OrderAgent should cost the same, OrderConversation one hash of
// a longer key.
func BenchmarkPartition(b *testing.B) {
	for _, order := range []Order{OrderAgent, OrderConversation} {
		p := mustPool(b, "agentd", DefaultGroups, order)
		b.Run("order="+order.String(), func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				_ = p.Partition(benchKeys[i&4095], benchKeys[(i>>12)&4095])
				i++
			}
		})
	}
	g := mustGroups(b, DefaultGroups)
	b.Run("groups-anchor", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			_ = g.Group(benchKeys[i&4095])
			i++
		}
	})
}

func BenchmarkAppendSubject(b *testing.B) {
	p := mustPool(b, "agentd", DefaultGroups, OrderConversation)
	b.ReportAllocs()
	buf := make([]byte, 0, maxSubjectLen)
	i := 0
	for b.Loop() {
		buf, _ = p.AppendSubject(buf[:0], benchKeys[i&4095], i&(DefaultGroups-1))
		i++
	}
}

func BenchmarkSubject(b *testing.B) {
	p := mustPool(b, "agentd", DefaultGroups, OrderConversation)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		_, _ = p.Subject(benchKeys[i&4095], i&(DefaultGroups-1))
		i++
	}
}

func BenchmarkValidateAgentID(b *testing.B) {
	id := "planner-7f3a9c2e-eu-west-1"
	b.ReportAllocs()
	for b.Loop() {
		_ = ValidateAgentID(id)
	}
}

func BenchmarkParseSubject(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		_, _, _, _ = ParseSubject("a2a.in.agentd.p0042.planner-7f3a9c2e")
	}
}

// BenchmarkRingAdd measures membership changes: each op is two of them, a
// member joining and leaving, each building a snapshot of about
// members × 150 points.
func BenchmarkRingAdd(b *testing.B) {
	for _, n := range []int{10, 100} {
		members := memberNames("consumer-", n)
		b.Run(fmt.Sprintf("members=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			r := newTestRing(b, DefaultVirtualNodes, members...)
			for b.Loop() {
				if err := r.Set(slices.Concat(members, []string{"newcomer"})); err != nil {
					b.Fatal(err)
				}
				if err := r.Set(members); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkAssignmentOwner measures the receive path's lookups: a
// partition's owner, and a key's consumer (its partition in the pool, then
// the partition's owner), at 100 consumers. The anchor is a plain ring lookup of the group
// token, what an assignment without bounded loads would cost per message.
func BenchmarkAssignmentOwner(b *testing.B) {
	members := memberNames("consumer-", 100)
	a := mustAssign(b, DefaultGroups, members)
	pool := mustPool(b, "agentd", DefaultGroups, OrderConversation)
	b.Run("group", func(b *testing.B) {
		b.ReportAllocs()
		g := 0
		for b.Loop() {
			_ = a.Owner(g & (DefaultGroups - 1))
			g++
		}
	})
	b.Run("key", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			_ = a.Owner(pool.Partition(benchKeys[i&4095], benchKeys[(i>>12)&4095]))
			i++
		}
	})
	r := newTestRing(b, DefaultVirtualNodes, members...)
	tokens := make([]string, DefaultGroups)
	for g := range tokens {
		tokens[g] = string(appendGroupToken(nil, g))
	}
	b.Run("ring-lookup-anchor", func(b *testing.B) {
		b.ReportAllocs()
		g := 0
		for b.Loop() {
			_, _ = r.Lookup(tokens[g&(DefaultGroups-1)])
			g++
		}
	})
}

// BenchmarkAssign measures computing an assignment of DefaultGroups groups,
// which every consumer does on each membership change. The anchor is the
// test-only bounded-load walk over ring successors (compare_test.go) on a
// ring built beforehand.
func BenchmarkAssign(b *testing.B) {
	for _, n := range []int{10, 100} {
		members := memberNames("consumer-", n)
		b.Run(fmt.Sprintf("members=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Assign(DefaultGroups, members); err != nil {
					b.Fatal(err)
				}
			}
		})
		weights := map[string]float64{}
		for i, m := range members {
			weights[m] = float64(1 + i%4)
		}
		b.Run(fmt.Sprintf("members=%d/weighted", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Assign(DefaultGroups, members, WithWeights(weights)); err != nil {
					b.Fatal(err)
				}
			}
		})
		s := newTestRing(b, DefaultVirtualNodes, members...).Snapshot()
		tokens := make([]string, DefaultGroups)
		for g := range tokens {
			tokens[g] = string(appendGroupToken(nil, g))
		}
		b.Run(fmt.Sprintf("members=%d/ring-walk-anchor", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = boundedAssign(s, tokens, DefaultLoadFactor)
			}
		})
	}
}
