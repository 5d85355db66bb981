// Package placement decides where messages go: which consumer group an agent
// belongs to, the subject its messages travel on, and (with Assign) which
// live consumer pulls each group.
//
// Two assignments, both consistent hashing, so that every sender and consumer
// computes the same answer from the same settings without coordination:
//
//   - Agent → group: Groups, stateless. An agent's messages go to
//     a2a.in.<group token>.<agent ID>, for example a2a.in.g0101.planner-1;
//     the durable consumer of a group filters a2a.in.<group token>.>. The
//     group count is a bus setting (DefaultGroups = 256) and the default
//     scheme is jump consistent hash (SchemeJump); Groups explains the
//     choice with measurements.
//   - Group → consumer: Assign, over the consumers that come and go:
//     consistent hashing with bounded loads, so that no consumer gets more
//     than its share of the groups times DefaultLoadFactor (1.05), rounded
//     up, and adding or removing a consumer moves little more than the 1/n
//     of the groups it takes or gives up (Moved lists them for hand-off).
//     An Assignment is a function of the member list alone: every agentd
//     that reads the same membership computes the same owners. Ring, a
//     consistent-hash ring with virtual nodes and lock-free snapshots,
//     serves keys that need no bound; Assign explains, with measurements,
//     why it ranks consumers by rendezvous hashing rather than by ring
//     successors.
//
// Agent IDs are validated at the edge: ValidateAgentID, and every subject
// builder, reject anything but one subject token of ASCII letters, digits,
// '-' and '_', 1 to MaxAgentIDLen bytes long, with an error that names the
// offending character and its position.
//
//	groups, err := placement.NewGroups(placement.DefaultGroups)
//	if err != nil {
//		return err
//	}
//	buf, err = groups.AppendSubject(buf[:0], "planner-1") // a2a.in.g0101.planner-1
//	if err != nil {
//		return err // wraps placement.ErrInvalidAgentID
//	}
//
//	owners, err := placement.Assign(groups.Count(), []string{"agentd-a", "agentd-b"})
//	if err != nil {
//		return err // wraps placement.ErrInvalidMember, ErrNoMembers, ...
//	}
//	consumer := owners.Owner(groups.Group("planner-1"))
//
// Lookups (Groups.Group, Groups.AppendSubject, Assignment.Owner, Ring.Lookup)
// do not allocate and take no lock.
//
// All exported functions and methods are safe for concurrent use. Groups,
// Assignment and Snapshot are immutable; a Ring's lookups run lock-free
// while Add, Remove and Set publish new snapshots.
package placement
