package placement_test

import (
	"errors"
	"fmt"

	"github.com/a2abus/a2abus/placement"
)

func ExamplePool_AppendSubject() {
	pool, err := placement.NewPool("agentd", placement.DefaultGroups, placement.OrderConversation)
	if err != nil {
		panic(err)
	}
	// Reuse one buffer for every envelope: no allocation per subject.
	buf := make([]byte, 0, 64)
	for _, key := range []struct{ agent, conversation string }{
		{"echo", "ctx-1"}, {"echo", "ctx-2"}, {"worker-7", "ctx-1"},
	} {
		buf, err = pool.AppendSubject(buf[:0], key.agent, pool.Partition(key.agent, key.conversation))
		if err != nil {
			panic(err)
		}
		fmt.Println(string(buf))
	}

	_, err = pool.AppendSubject(buf[:0], "planner.1", 0)
	fmt.Println(errors.Is(err, placement.ErrInvalidAgentID))
	fmt.Println(err)
	// Output:
	// a2a.in.agentd.p0250.echo
	// a2a.in.agentd.p0059.echo
	// a2a.in.agentd.p0020.worker-7
	// true
	// placement: invalid agent ID "planner.1": character '.' (U+002E) at offset 7 (a dot separates subject tokens); allowed are ASCII letters, digits, '-' and '_'
}

func ExamplePool_ConsumerName() {
	pool, err := placement.NewPool("agentd", placement.DefaultGroups, placement.OrderConversation)
	if err != nil {
		panic(err)
	}
	// The durable consumer of partition 7: named after the pool and the
	// partition token, filtering the partition's subjects.
	name, _ := pool.ConsumerName(7)
	filter, _ := pool.Filter(7)
	fmt.Println(name, filter)

	_, err = pool.Filter(256)
	fmt.Println(err)
	// Output:
	// agentd_p0007 a2a.in.agentd.p0007.>
	// placement: group or partition out of range: partition 256 of pool agentd, want 0..255
}

func ExampleParseSubject() {
	pool, partition, agent, err := placement.ParseSubject("a2a.in.agentd.p0101.planner-1")
	fmt.Println(pool, partition, agent, err)

	// The form before pools had no pool token.
	_, _, _, err = placement.ParseSubject("a2a.in.g0101.planner-1")
	fmt.Println(errors.Is(err, placement.ErrInvalidSubject), err)
	// Output:
	// agentd 101 planner-1 <nil>
	// true placement: not an agent subject: "a2a.in.g0101.planner-1" has partition token "planner-1", want p0000..p9999
}

func ExampleValidateAgentID() {
	for _, id := range []string{"planner-1", "", "agent*", "agé"} {
		fmt.Println(placement.ValidateAgentID(id))
	}
	// Output:
	// <nil>
	// placement: invalid agent ID: empty
	// placement: invalid agent ID "agent*": character '*' (U+002A) at offset 5 (a subject wildcard); allowed are ASCII letters, digits, '-' and '_'
	// placement: invalid agent ID "agé": character 'é' (U+00E9) at offset 2; allowed are ASCII letters, digits, '-' and '_'
}

func ExampleRing() {
	// Groups → live consumers: a consistent-hash ring over the consumers.
	consumers, err := placement.NewRing()
	if err != nil {
		panic(err)
	}
	if err := consumers.Add("agentd-a", "agentd-b", "agentd-c"); err != nil {
		panic(err)
	}
	owner, _ := consumers.Lookup("g0001")
	fmt.Println("g0001 is pulled by", owner)

	// A consumer leaves: only its groups move.
	if err := consumers.Remove("agentd-b"); err != nil {
		panic(err)
	}
	owner, _ = consumers.Lookup("g0001")
	fmt.Println("g0001 is pulled by", owner)
	// Output:
	// g0001 is pulled by agentd-b
	// g0001 is pulled by agentd-c
}

func ExampleSnapshot_Successors() {
	consumers, err := placement.NewRing()
	if err != nil {
		panic(err)
	}
	if err := consumers.Add("agentd-a", "agentd-b", "agentd-c"); err != nil {
		panic(err)
	}
	// The preference list of a group: its owner first, then who takes over.
	for c := range consumers.Snapshot().Successors("g0001") {
		fmt.Println(c)
	}
	// Output:
	// agentd-b
	// agentd-c
	// agentd-a
}

func ExampleJumpHashString() {
	// Growing from 10 to 11 buckets moves about 1/11 of the keys, all of
	// them into the new bucket 10.
	moved, intoNew := 0, 0
	for i := range 10000 {
		key := fmt.Sprintf("agent-%d", i)
		before, after := placement.JumpHashString(key, 10), placement.JumpHashString(key, 11)
		if before != after {
			moved++
			if after == 10 {
				intoNew++
			}
		}
	}
	fmt.Println(moved, intoNew)
	// Output:
	// 978 978
}

func ExampleAssign() {
	// Groups → live consumers, bounded loads: every agentd that reads the
	// same membership computes the same owners, without talking.
	consumers := []string{"agentd-a", "agentd-b", "agentd-c"}
	owners, err := placement.Assign(placement.DefaultGroups, consumers)
	if err != nil {
		panic(err)
	}
	for _, c := range consumers {
		fmt.Printf("%s pulls %d groups (cap %d)\n", c, len(owners.Groups(c)), owners.Capacity(c))
	}
	fmt.Println("g0042 is pulled by", owners.Owner(42))

	// Key → partition → consumer.
	pool, err := placement.NewPool("agentd", placement.DefaultGroups, placement.OrderAgent)
	if err != nil {
		panic(err)
	}
	fmt.Println("planner-1 is served by", owners.Owner(pool.Partition("planner-1", "")))

	_, err = placement.Assign(placement.DefaultGroups, []string{"agentd.a"})
	fmt.Println(err)
	// Output:
	// agentd-a pulls 90 groups (cap 90)
	// agentd-b pulls 81 groups (cap 90)
	// agentd-c pulls 85 groups (cap 90)
	// g0042 is pulled by agentd-a
	// planner-1 is served by agentd-c
	// placement: invalid member "agentd.a": character '.' (U+002E) at offset 6 (a dot separates subject tokens); allowed are ASCII letters, digits, '-' and '_'
}

func ExampleMoved() {
	before, err := placement.Assign(placement.DefaultGroups, []string{"agentd-a", "agentd-b", "agentd-c"})
	if err != nil {
		panic(err)
	}
	// The scaler starts a fourth consumer: only the moved groups are handed off.
	after, err := placement.Assign(placement.DefaultGroups, []string{"agentd-a", "agentd-b", "agentd-c", "agentd-d"})
	if err != nil {
		panic(err)
	}
	moved := placement.Moved(before, after)
	fmt.Printf("%d of %d groups change hands, %d of them to agentd-d\n",
		len(moved), after.Count(), len(after.Groups("agentd-d")))
	// Output:
	// 67 of 256 groups change hands, 67 of them to agentd-d
}

func ExampleWithWeights() {
	// A host with twice the cores gets about twice the groups.
	owners, err := placement.Assign(placement.DefaultGroups,
		[]string{"agentd-small", "agentd-big"},
		placement.WithWeights(map[string]float64{"agentd-small": 8, "agentd-big": 16}))
	if err != nil {
		panic(err)
	}
	fmt.Println(len(owners.Groups("agentd-small")), len(owners.Groups("agentd-big")))
	// Output:
	// 86 170
}
