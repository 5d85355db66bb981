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

// AgentPermissions returns the permissions of an agent's own credentials:
// it may send and make requests to any agent (durable and direct), answer
// requests, dead-letter what it cannot handle, and serve its own agent's
// group with ServeGroups, and it reads nothing else: not the other groups'
// consumers, not the stream's messages by sequence, not the A2A subjects
// over core NATS, not other connections' inboxes. It shares its group with
// the agents that hash to the same group. Serving through membership (Serve
// without ServeGroups) needs agentd's role, which may use everything.
func AgentPermissions(groups *placement.Groups, agentID string) (Permissions, error) {
	if err := placement.ValidateAgentID(agentID); err != nil {
		return Permissions{}, fmt.Errorf("agentbus: permissions: %w", err)
	}
	g, err := groups.GroupToken(groups.Group(agentID))
	if err != nil {
		return Permissions{}, err
	}
	consumer := StreamName + "." + g
	return Permissions{
		Publish: []string{
			SubjectPrefix + ".>",                  // send to any agent
			DirectSubjectPrefix + ".>",            // direct requests to any agent
			DeadLetterSubjectPrefix + ".>",        // dead letters of what its group cannot handle
			"_INBOX.>",                            // replies to requesters
			"$JS.API.STREAM.INFO." + StreamName,   // Connect checks the stream
			"$JS.API.CONSUMER.CREATE." + consumer, // its group's consumer
			"$JS.API.CONSUMER.CREATE." + consumer + ".>",
			"$JS.API.CONSUMER.INFO." + consumer,
			"$JS.API.CONSUMER.MSG.NEXT." + consumer, // pull
			"$JS.ACK." + consumer + ".>",            // ack
		},
		Subscribe: []string{
			AgentInboxPrefix(agentID) + ".>",     // replies, publish acks, pulled messages
			DirectSubjectPrefix + "." + g + ".*", // direct requests to its group
		},
	}, nil
}
