package agentbus

import (
	"fmt"

	"github.com/a2abus/a2abus/placement"
)

// Permissions are the subjects a NATS user may publish and subscribe to,
// as the server's authorization block writes them (allow lists: anything
// not listed is denied).
type Permissions struct {
	Publish   []string `json:"publish"`
	Subscribe []string `json:"subscribe"`
}

// AgentInboxPrefix is the inbox prefix an agent's connection must use
// (nats.CustomInboxPrefix) under AgentPermissions, so that replies and
// publish acks meant for it reach only it.
func AgentInboxPrefix(agentID string) string { return "_INBOX." + agentID }

// AgentPermissions returns the permissions of an agent's own credentials,
// for a process that serves the agent in a pool of its own (the pool named
// after the agent, with partitions partitions, as Serve makes it by
// default): it may send and make requests to any agent (durable and
// direct), answer requests, dead-letter what it cannot handle, declare its
// pool and its agent in the pool registry and read the registry, join its
// pool's members, and pull and acknowledge its pool's partitions; it reads
// nothing else: not other pools' consumers, not the stream's messages by
// sequence, not the A2A subjects over core NATS, not other connections'
// inboxes. For A2A (a2anats) it may read every agent's card and write its
// own, and read, write and list its own tasks and their push notification
// configs; agentd creates those buckets, and the registry and members
// buckets.
func AgentPermissions(agentID string, partitions int) (Permissions, error) {
	if err := placement.ValidateAgentID(agentID); err != nil {
		return Permissions{}, fmt.Errorf("agentbus: permissions: %w", err)
	}
	pool, err := placement.NewPool(agentID, partitions, placement.OrderConversation)
	if err != nil {
		return Permissions{}, fmt.Errorf("agentbus: permissions: %w", err)
	}
	pub := []string{
		SubjectPrefix + ".>",                // send to any agent
		DirectSubjectPrefix + ".>",          // direct requests to any agent
		DeadLetterSubjectPrefix + ".>",      // dead letters of what it cannot handle
		"_INBOX.>",                          // replies to requesters
		jsAPI + "STREAM.INFO." + StreamName, // Connect checks the stream
	}
	// Its pool's consumers, one per partition: a consumer name is one
	// subject token, so they are listed one by one.
	for n := range partitions {
		c, _ := pool.ConsumerName(n)
		consumer := StreamName + "." + c
		pub = append(pub,
			jsAPI+"CONSUMER.CREATE."+consumer,
			jsAPI+"CONSUMER.CREATE."+consumer+".>",
			jsAPI+"CONSUMER.INFO."+consumer,
			jsAPI+"CONSUMER.MSG.NEXT."+consumer, // pull
			"$JS.ACK."+consumer+".>",            // ack, nak, progress, term
		)
	}
	// The pool registry: read (watch) all of it, declare its own pool and
	// agent.
	pub = append(pub, kvRead(PoolsBucket)...)
	pub = append(pub,
		"$KV."+PoolsBucket+"."+poolKeyPrefix+agentID,
		"$KV."+PoolsBucket+"."+agentKeyPrefix+agentID,
	)
	// Its pool's member keys <pool>.<member>, and the listing of them.
	pub = append(pub,
		jsAPI+"STREAM.INFO.KV_"+MembersBucket,
		jsAPI+"DIRECT.GET.KV_"+MembersBucket+".$KV."+MembersBucket+"."+agentID+".>",
		jsAPI+"CONSUMER.CREATE.KV_"+MembersBucket+".*.$KV."+MembersBucket+"."+agentID+".*",
		jsAPI+"CONSUMER.DELETE.KV_"+MembersBucket+".*",
		"$JS.FC.KV_"+MembersBucket+".>",
		"$KV."+MembersBucket+"."+agentID+".>",
	)
	pub = append(pub,
		// A2A (a2anats): read any agent's card and write its own; read,
		// write and list its own tasks and push configs (keys
		// <agent>.<task>, <agent>.push.<task>). agentd creates the buckets.
		jsAPI+"STREAM.INFO.KV_"+agentsBucket,
		jsAPI+"DIRECT.GET.KV_"+agentsBucket+".>",
		"$KV."+agentsBucket+"."+agentID,
		jsAPI+"STREAM.INFO.KV_"+tasksBucket,
		jsAPI+"DIRECT.GET.KV_"+tasksBucket+".$KV."+tasksBucket+"."+agentID+".>",
		jsAPI+"CONSUMER.CREATE.KV_"+tasksBucket+".*.$KV."+tasksBucket+"."+agentID+".>",
		jsAPI+"CONSUMER.DELETE.KV_"+tasksBucket+".*", // the listing's ordered consumer
		"$JS.FC.KV_"+tasksBucket+".>",
		"$KV."+tasksBucket+"."+agentID+".>",
	)
	return Permissions{
		Publish: pub,
		Subscribe: []string{
			AgentInboxPrefix(agentID) + ".>",               // replies, publish acks, pulled messages, watches
			DirectSubjectPrefix + "." + pool.Name() + ".>", // direct requests to its pool
		},
	}, nil
}

// Buckets the daemons' roles cover beside this package's (MembersBucket,
// PoolsBucket, ScaleBucket). Their owners define them where they are
// used; the tests of internal/agentd and internal/scalerd check that the
// names here are theirs.
const (
	hostsBucket  = "a2abus_hosts"  // agentd: hosts that run consumers (internal/agentd)
	agentsBucket = "a2abus_agents" // agentd: A2A agent cards (the gateway)
	tasksBucket  = "a2abus_tasks"  // agentd: A2A tasks (the gateway)
	leaderBucket = "a2abus_scaler" // scalerd: its leader election (internal/scalerd)
)

// ScalerInboxPrefix is the inbox prefix scalerd's connection uses
// (nats.CustomInboxPrefix), so that ScalerPermissions can let it read its
// own replies and no one else's. It is not of the form "_INBOX.<agent ID>"
// and so cannot be an agent's (AgentInboxPrefix).
const ScalerInboxPrefix = "_INBOX_scalerd"

// jsAPI is the JetStream API's subject prefix.
const jsAPI = "$JS.API."

// kvRead returns the subjects that read KV bucket b: open it, get a key
// (direct or through the stream leader), list and watch its keys with an
// ordered consumer, which nats.go deletes when the watch stops and which
// may ask for flow control.
func kvRead(b string) []string {
	s := "KV_" + b
	return []string{
		jsAPI + "STREAM.INFO." + s,
		jsAPI + "DIRECT.GET." + s,
		jsAPI + "DIRECT.GET." + s + ".>",
		jsAPI + "STREAM.MSG.GET." + s,
		jsAPI + "CONSUMER.CREATE." + s,
		jsAPI + "CONSUMER.CREATE." + s + ".>",
		jsAPI + "CONSUMER.DELETE." + s + ".*",
		"$JS.FC." + s + ".>",
	}
}

// kvOwn returns the subjects that create (or update the settings of), read
// and write KV bucket b. Creating a bucket reads the account's JetStream
// info ($JS.API.INFO) first.
func kvOwn(b string) []string {
	s := "KV_" + b
	return append(kvRead(b),
		jsAPI+"STREAM.CREATE."+s,
		jsAPI+"STREAM.UPDATE."+s,
		"$KV."+b+".>", // put, create, update, delete
	)
}

// DaemonPermissions returns the permissions of agentd's role: everything a
// host of consumers and of the A2A gateway does, and no more. It may
//   - create the A2A stream and the dead-letter stream and read their info
//     (not update, purge or delete them, nor touch any other stream);
//   - create the partition consumers of the A2A stream, pull from them and ack
//     (not delete them, nor read the stream's messages by sequence);
//   - send to any agent, durable and direct, serve direct requests, publish
//     dead letters and reply to any requester (publish to and read _INBOX.>:
//     its connection uses the default inbox prefix);
//   - create, read and write the KV buckets of membership (a2abus_members),
//     the pool registry (a2abus_pools), hosts (a2abus_hosts), A2A agent cards and tasks
//     (a2abus_agents, a2abus_tasks), and create and read the scale bucket
//     (a2abus_scale) without writing it: the scale target is scalerd's.
//
// One caveat holds for every role that may create or update a stream,
// whatever its subjects: the stream's configuration (its subjects among
// them) is the creator's choice, and NATS permissions cannot narrow it, so
// a role's holder could make a stream of its buckets capture other
// subjects. Give these credentials to the daemons only.
func DaemonPermissions() Permissions {
	pub := []string{
		SubjectPrefix + ".>",           // send to any agent
		DirectSubjectPrefix + ".>",     // direct requests to any agent
		DeadLetterSubjectPrefix + ".>", // dead letters
		"_INBOX.>",                     // replies to requesters
		jsAPI + "INFO",                 // creating a KV bucket reads the account's limits
	}
	for _, s := range []string{StreamName, DeadLetterStreamName} {
		pub = append(pub, jsAPI+"STREAM.INFO."+s, jsAPI+"STREAM.CREATE."+s)
	}
	pub = append(pub,
		jsAPI+"CONSUMER.CREATE."+StreamName+".>", // the partitions' durables, with their filter
		jsAPI+"CONSUMER.INFO."+StreamName+".*",
		jsAPI+"CONSUMER.MSG.NEXT."+StreamName+".*", // pull
		"$JS.ACK."+StreamName+".>",                 // ack, nak, in progress, term
	)
	for _, b := range []string{MembersBucket, PoolsBucket, hostsBucket, agentsBucket, tasksBucket} {
		pub = append(pub, kvOwn(b)...)
	}
	scale := kvOwn(ScaleBucket)
	pub = append(pub, scale[:len(scale)-1]...) // not its keys: scalerd writes the target
	return Permissions{
		Publish: pub,
		Subscribe: []string{
			"_INBOX.>",                 // replies, publish acks, pulled batches, watches
			DirectSubjectPrefix + ".>", // direct requests to the partitions it pulls
		},
	}
}

// ScalerPermissions returns the permissions of scalerd's role: it samples
// the bus and writes the consumer target, and it cannot touch a message.
// It may
//   - read the A2A stream's info and list its consumers' info (the
//     backlog), and nothing else of the stream: no publish to a2a.in.>, no
//     pull, no message read by sequence, no update or delete;
//   - read the members bucket (a2abus_members) and the pool registry
//     (a2abus_pools);
//   - create, read and write its leader bucket (a2abus_scaler) and the
//     scale bucket (a2abus_scale);
//   - read only the replies under ScalerInboxPrefix, which scalerd's
//     connection must use (nats.CustomInboxPrefix; scalerd does).
//
// The caveat of DaemonPermissions on creating streams holds for the two
// buckets scalerd creates.
func ScalerPermissions() Permissions {
	pub := []string{
		jsAPI + "INFO", // creating a KV bucket reads the account's limits
		jsAPI + "STREAM.INFO." + StreamName,
		jsAPI + "CONSUMER.LIST." + StreamName, // every partition's pending counts
	}
	pub = append(pub, kvRead(MembersBucket)...)
	pub = append(pub, kvRead(PoolsBucket)...)
	pub = append(pub, kvOwn(leaderBucket)...)
	pub = append(pub, kvOwn(ScaleBucket)...)
	return Permissions{
		Publish:   pub,
		Subscribe: []string{ScalerInboxPrefix + ".>"},
	}
}
