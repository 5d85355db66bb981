package placement

import (
	"errors"
	"fmt"
)

// Sentinel errors. Errors returned by this package wrap one of them, so test
// with errors.Is; the wrapping error's message says what exactly was wrong.
var (
	// ErrInvalidAgentID reports an agent ID that is not one NATS subject
	// token of ASCII letters, digits, '-' and '_', 1 to MaxAgentIDLen bytes
	// long. The message names the problem: empty, too long, or the first
	// offending character and its byte position.
	ErrInvalidAgentID = errors.New("placement: invalid agent ID")

	// ErrInvalidOption reports a bad option or constructor argument: a
	// group or partition count outside 1..MaxGroups, a virtual node count
	// outside 1..MaxVirtualNodes, an unknown Scheme or Order, a load factor
	// below 1 or not finite, a weight that is not a positive finite number.
	ErrInvalidOption = errors.New("placement: invalid option")

	// ErrInvalidMember reports an empty ring member name, or the same name
	// twice in one call to Add, Remove, Set or Assign. Assign also rejects
	// a member ID that breaks the agent ID rule (see ValidateAgentID); the
	// message names the offending character and its position.
	ErrInvalidMember = errors.New("placement: invalid member")

	// ErrNoMembers is returned by Assign for an empty member list: with no
	// live consumer, no group has an owner.
	ErrNoMembers = errors.New("placement: no members to assign groups to")

	// ErrMemberExists is returned by Ring.Add for a member already in the
	// ring.
	ErrMemberExists = errors.New("placement: member already in the ring")

	// ErrUnknownMember is returned by Ring.Remove for a member not in the
	// ring.
	ErrUnknownMember = errors.New("placement: member not in the ring")

	// ErrInvalidGroup reports a group number outside 0..Count()-1, or a
	// partition number outside 0..Partitions()-1.
	ErrInvalidGroup = errors.New("placement: group or partition out of range")

	// ErrInvalidSubject is returned by ParseSubject for a subject that is
	// not a2a.in.<pool>.<partition token>.<agent ID>.
	ErrInvalidSubject = errors.New("placement: not an agent subject")

	// ErrInvalidPool reports a pool name that breaks the agent ID rule or
	// is longer than MaxPoolNameLen.
	ErrInvalidPool = errors.New("placement: invalid pool name")
)

// Pre-built errors, so that reporting the common failures does not allocate.
var (
	errEmptyAgentID = fmt.Errorf("%w: empty", ErrInvalidAgentID)
)
