// Package placement decides where work goes: the partition of each ordering
// key in a pool, the subject its envelopes travel on, and (with Assign)
// which live member of the pool pulls each partition.
//
// Work belongs to pools, named sets of interchangeable members, each pool
// with a fixed number of partitions. Two assignments, both consistent
// hashing, let every sender and member compute the same answer from the same
// settings without coordination:
//
//   - Key → partition: Pool, stateless. The key is the agent ID
//     (OrderAgent) or the agent ID and the conversation (OrderConversation,
//     the default), mapped by jump consistent hash over its xxhash64. An
//     envelope travels on a2a.in.<pool>.<partition token>.<agent ID>, for
//     example a2a.in.agentd.p0042.planner-1, with partition tokens p0000 to
//     p9999; ParseSubject splits a subject back into its parts. The durable
//     consumer of a partition is named <pool>_<partition token>
//     (agentd_p0042) and filters a2a.in.<pool>.<partition token>.>. Groups
//     is the same jump hash over agent IDs alone, without subjects; its doc
//     holds the measurements behind jump hash over a ring.
//   - Partition → member: Assign, over the pool's live members: consistent
//     hashing with bounded loads, so that no member gets more than its
//     share of the partitions times DefaultLoadFactor (1.05), rounded up,
//     and adding or removing a member moves little more than the 1/n of the
//     partitions it takes or gives up (Moved lists them for hand-off). An
//     Assignment is a function of the member list alone: every member that
//     reads the same membership computes the same owners. Assign and its
//     figures say groups for what a pool calls partitions. Ring, a
//     consistent-hash ring with virtual nodes and lock-free snapshots,
//     serves keys that need no bound; Assign explains, with measurements,
//     why it ranks members by rendezvous hashing rather than by ring
//     successors.
//
// Agent IDs are validated at the edge: ValidateAgentID, and every subject
// builder, reject anything but one subject token of ASCII letters, digits,
// '-' and '_', 1 to MaxAgentIDLen bytes long, with an error that names the
// offending character and its position. Pool names follow the same rule and
// are at most MaxPoolNameLen bytes (ValidatePoolName).
//
//	pool, err := placement.NewPool("agentd", 64, placement.OrderConversation)
//	if err != nil {
//		return err // wraps placement.ErrInvalidPool or ErrInvalidOption
//	}
//	partition := pool.Partition("planner-1", "ctx-1") // 29
//	buf, err = pool.AppendSubject(buf[:0], "planner-1", partition) // a2a.in.agentd.p0029.planner-1
//	if err != nil {
//		return err // wraps placement.ErrInvalidAgentID
//	}
//
//	owners, err := placement.Assign(pool.Partitions(), []string{"agentd-a", "agentd-b"})
//	if err != nil {
//		return err // wraps placement.ErrInvalidMember, ErrNoMembers, ...
//	}
//	member := owners.Owner(partition) // consumes agentd_p0029
//
// Lookups (Pool.Partition, Pool.AppendSubject, ParseSubject, Groups.Group,
// Assignment.Owner, Ring.Lookup) do not allocate and take no lock.
//
// All exported functions and methods are safe for concurrent use. Pool,
// Groups, Assignment and Snapshot are immutable; a Ring's lookups run
// lock-free while Add, Remove and Set publish new snapshots.
package placement
