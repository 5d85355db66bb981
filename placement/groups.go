package placement

import (
	"fmt"

	"github.com/cespare/xxhash/v2"
)

// Scheme is how Groups maps agents to groups.
type Scheme uint8

const (
	// SchemeJump maps an agent to JumpHash(xxhash64(agentID), count). It is
	// the default: see Groups for the measurements behind the choice.
	SchemeJump Scheme = iota
	// SchemeRing maps an agent to the owner of xxhash64(agentID) on a ring
	// of the groups, each with WithGroupVirtualNodes points (default 150),
	// the points of group g named by its token ("g0007#0", "g0007#1", ...).
	SchemeRing
)

// String returns the name that ParseScheme accepts.
func (s Scheme) String() string {
	switch s {
	case SchemeJump:
		return "jump"
	case SchemeRing:
		return "ring"
	}
	return fmt.Sprintf("Scheme(%d)", uint8(s))
}

// ParseScheme parses "jump" or "ring".
func ParseScheme(s string) (Scheme, error) {
	switch s {
	case "jump":
		return SchemeJump, nil
	case "ring":
		return SchemeRing, nil
	}
	return 0, fmt.Errorf("%w: scheme %q (want jump or ring)", ErrInvalidOption, s)
}

// Groups maps agent IDs to n groups. It is stateless: every process that
// uses the same group count and scheme computes the same group for an
// agent, without talking to anyone. It names no subjects: envelopes travel
// on a pool's partitions (Pool), whose OrderAgent placement is Groups'
// default scheme. Groups is the agent → bucket hash that the measurements
// below, the benchmarks and Assign's figures use.
//
// The default scheme is SchemeJump, jump consistent hash over the xxhash64
// of the agent ID, picked over a ring of 150 virtual nodes per group
// (SchemeRing) on these measurements, 100 000 agents (TestSchemeComparison
// and BenchmarkGroup print them):
//
//   - Balance: with jump hash the fullest group holds 1.14 times the mean
//     at 256 groups, 1.08 at 64 and 1.02 at 10; with the ring 1.25, 1.24
//     and 1.24. Jump hash spreads keys evenly in expectation, leaving only
//     sampling noise; the ring adds the uneven arcs of its virtual nodes
//     (about 8% of the mean at 150 points), which only more points shrink.
//   - Movement: growing from 256 to 257 groups moves 0.38% of agents with
//     jump hash and 0.41% with the ring (ideal 1/257 = 0.39%), all of them
//     into the new group with either.
//   - Cost: 23-41 ns per Group with no table, against 65-77 ns and a
//     450 KiB table (38 400 points) for the ring, over several runs on a
//     shared 2-vCPU machine; neither allocates.
//
// Jump hash can only add or remove groups at the end, which is how a group
// count changes; a ring is needed where arbitrary members come and go, as
// in the assignment of groups to live consumers (Ring).
//
// Changing the group count moves about |Δ|/max(old, new) of the agents to
// other groups, so messages for a moved agent can be on two groups while
// the change rolls out: a change of count is a migration, not a setting to
// flip under load.
//
// A Groups is immutable and safe for concurrent use. Make one with
// NewGroups: the zero Groups has no groups, its Group returns -1 and its
// GroupToken an error wrapping ErrInvalidGroup.
type Groups struct {
	n      int
	scheme Scheme
	ring   *table // SchemeRing only; its members are the group tokens in order
}

// NewGroups returns the assignment of agents to n groups, 1..MaxGroups;
// DefaultGroups is the usual choice.
func NewGroups(n int, opts ...GroupsOption) (*Groups, error) {
	if n < 1 || n > MaxGroups {
		return nil, fmt.Errorf("%w: %d groups, want 1..%d", ErrInvalidOption, n, MaxGroups)
	}
	o := groupsOptions{scheme: SchemeJump, vnodes: DefaultVirtualNodes}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	g := &Groups{n: n, scheme: o.scheme}
	if o.scheme == SchemeRing {
		// Fixed-width tokens sort like their numbers, so the table's member
		// index of a token is its group number.
		tokens := make([]string, n)
		for i := range tokens {
			tokens[i] = string(appendGroupToken(nil, i))
		}
		g.ring = newTable(tokens, o.vnodes)
	}
	return g, nil
}

// Count returns the number of groups.
func (g *Groups) Count() int { return g.n }

// Scheme returns the scheme that maps agents to groups.
func (g *Groups) Scheme() Scheme { return g.scheme }

// Group returns the group of agentID, in [0, Count()). It hashes any string
// and does not validate it: use ValidateAgentID at the edge. It does not
// allocate.
func (g *Groups) Group(agentID string) int {
	h := xxhash.Sum64String(agentID)
	if g.ring != nil {
		return g.ring.owner(h)
	}
	return JumpHash(h, g.n) // -1 for the zero Groups
}

// GroupToken returns the subject token of group, 'g' and four zero-padded
// decimal digits: GroupToken(7) is "g0007". Fixed width makes tokens sort
// in group order; SchemeRing names its points after them. The token is
// also a valid JetStream consumer name. It returns an error wrapping
// ErrInvalidGroup if group is not in [0, Count()).
func (g *Groups) GroupToken(group int) (string, error) {
	if err := g.checkGroup(group); err != nil {
		return "", err
	}
	return string(appendGroupToken(nil, group)), nil
}

func (g *Groups) checkGroup(group int) error {
	if group < 0 || group >= g.n {
		return fmt.Errorf("%w: group %d, want 0..%d", ErrInvalidGroup, group, g.n-1)
	}
	return nil
}

// appendGroupToken appends the token of group, which must be in
// [0, MaxGroups).
func appendGroupToken(dst []byte, group int) []byte {
	return append(dst, 'g',
		byte('0'+group/1000%10),
		byte('0'+group/100%10),
		byte('0'+group/10%10),
		byte('0'+group%10))
}
