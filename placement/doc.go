// Package placement decides where messages go: which consumer group an agent
// belongs to, the subject its messages travel on, and (with a consistent-hash
// Ring) which live consumer pulls each group.
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
//   - Group → consumer: Ring, over the consumers that come and go. Adding or
//     removing a consumer moves only about 1/n of the groups. Snapshot gives
//     one consistent view, and Snapshot.Successors the preference list a
//     bounded-load assignment walks.
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
//	consumers, _ := placement.NewRing()
//	_ = consumers.Add("agentd-a", "agentd-b")
//	owner, _ := consumers.Lookup("g0101")
//
// Lookups (Groups.Group, Groups.AppendSubject, Ring.Lookup) do not allocate
// and take no lock.
//
// All exported functions and methods are safe for concurrent use. Groups and
// Snapshot are immutable; a Ring's lookups run lock-free while Add, Remove
// and Set publish new snapshots.
package placement
