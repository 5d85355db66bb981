package placement

import (
	"fmt"
	"strings"

	"github.com/cespare/xxhash/v2"
)

// SubjectPrefix is the subject prefix of agent inboxes. The A2A stream
// stores a2a.in.>; an envelope travels on
// SubjectPrefix.<pool>.<partition token>.<agent ID>, for example
// a2a.in.agentd.p0042.planner-1.
const SubjectPrefix = "a2a.in"

// MaxPoolNameLen is the longest pool name, in bytes: a pool name is one
// subject token and the start of its consumers' names.
const MaxPoolNameLen = 64

// Partition tokens are 'p' and four zero-padded decimal digits:
// p0000..p9999, so that subjects and consumer names sort in partition order.
const partitionTokenLen = 1 + 4

// maxSubjectLen is the length of the longest agent subject:
// a2a.in.<pool>.<partition token>.<agent ID> at the longest pool name and
// agent ID, 206 bytes.
const maxSubjectLen = len(SubjectPrefix) + 1 + MaxPoolNameLen + 1 + partitionTokenLen + 1 + MaxAgentIDLen

// Order is what a pool keeps in order.
type Order uint8

const (
	// OrderConversation orders the envelopes of each (agent, conversation)
	// key: the conversation is the envelope's context ID when it has one,
	// else its sender. Different conversations of one agent spread over the
	// pool's partitions, so a busy agent scales out. The default.
	OrderConversation Order = iota
	// OrderAgent orders all of an agent's envelopes: they share one
	// partition whatever their conversation.
	OrderAgent
)

// String returns the name that ParseOrder accepts.
func (o Order) String() string {
	switch o {
	case OrderConversation:
		return "conversation"
	case OrderAgent:
		return "agent"
	}
	return fmt.Sprintf("Order(%d)", uint8(o))
}

// ParseOrder parses "conversation" or "agent".
func ParseOrder(s string) (Order, error) {
	switch s {
	case "conversation", "":
		return OrderConversation, nil
	case "agent":
		return OrderAgent, nil
	}
	return 0, fmt.Errorf("%w: order %q (want conversation or agent)", ErrInvalidOption, s)
}

// Pool is the placement of one pool's work: the partition of each ordering
// key, and the subjects and consumer names of its partitions. Like Groups
// it is stateless: every sender and member that knows the pool's name,
// partition count and order computes the same partition for a key.
//
// Key → partition is jump consistent hash over the xxhash64 of the agent ID
// (OrderAgent) or of the agent ID, a zero byte and the conversation
// (OrderConversation). Changing a pool's partition count moves keys to
// other partitions while envelopes of theirs may still sit in the old ones,
// which would break their order: the count is fixed when the pool is first
// declared, and members that ask for another count are refused.
//
// A Pool is immutable and safe for concurrent use.
type Pool struct {
	name       string
	partitions int
	order      Order
}

// NewPool returns the placement of the pool name with partitions
// partitions (1..MaxGroups) and the given order. The name follows the
// agent ID rule and is at most MaxPoolNameLen bytes.
func NewPool(name string, partitions int, order Order) (*Pool, error) {
	if err := ValidatePoolName(name); err != nil {
		return nil, err
	}
	if partitions < 1 || partitions > MaxGroups {
		return nil, fmt.Errorf("%w: %d partitions, want 1..%d", ErrInvalidOption, partitions, MaxGroups)
	}
	if order > OrderAgent {
		return nil, fmt.Errorf("%w: %v", ErrInvalidOption, order)
	}
	return &Pool{name: name, partitions: partitions, order: order}, nil
}

// ValidatePoolName reports whether name can name a pool: the agent ID rule,
// at most MaxPoolNameLen bytes. Errors wrap ErrInvalidPool.
func ValidatePoolName(name string) error {
	if len(name) > MaxPoolNameLen {
		return fmt.Errorf("%w %q...: %d bytes long, limit %d", ErrInvalidPool, name[:24], len(name), MaxPoolNameLen)
	}
	return checkToken(name, ErrInvalidPool)
}

// Name returns the pool's name.
func (p *Pool) Name() string { return p.name }

// Partitions returns the pool's partition count.
func (p *Pool) Partitions() int { return p.partitions }

// Order returns what the pool keeps in order.
func (p *Pool) Order() Order { return p.order }

// Partition returns the partition of the key (agent, conversation), in
// [0, Partitions()). With OrderAgent the conversation is ignored. It does
// not allocate.
func (p *Pool) Partition(agent, conversation string) int {
	if p.order == OrderAgent || p.partitions == 1 {
		return JumpHash(xxhash.Sum64String(agent), p.partitions)
	}
	var d xxhash.Digest
	d.Reset()
	_, _ = d.WriteString(agent)
	_, _ = d.Write([]byte{0})
	_, _ = d.WriteString(conversation)
	return JumpHash(d.Sum64(), p.partitions)
}

// AppendSubject appends the subject of agent's envelopes in partition,
// a2a.in.<pool>.<partition token>.<agent>, to dst. It validates agent (an
// error wrapping ErrInvalidAgentID, dst unchanged) and partition
// (ErrInvalidGroup), and does not allocate when dst has room.
func (p *Pool) AppendSubject(dst []byte, agent string, partition int) ([]byte, error) {
	if err := ValidateAgentID(agent); err != nil {
		return dst, err
	}
	if err := p.checkPartition(partition); err != nil {
		return dst, err
	}
	dst = append(dst, SubjectPrefix...)
	dst = append(dst, '.')
	dst = append(dst, p.name...)
	dst = append(dst, '.')
	dst = appendPartitionToken(dst, partition)
	dst = append(dst, '.')
	return append(dst, agent...), nil
}

// Subject returns the subject AppendSubject appends. It allocates once,
// the string.
func (p *Pool) Subject(agent string, partition int) (string, error) {
	var buf [maxSubjectLen]byte // on the stack: AppendSubject keeps no reference
	b, err := p.AppendSubject(buf[:0], agent, partition)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// PartitionToken returns the subject token of partition: PartitionToken(7)
// is "p0007", or an error wrapping ErrInvalidGroup out of range.
func (p *Pool) PartitionToken(partition int) (string, error) {
	if err := p.checkPartition(partition); err != nil {
		return "", err
	}
	return string(appendPartitionToken(nil, partition)), nil
}

// Filter returns the subject filter of partition's consumer,
// a2a.in.<pool>.<partition token>.>.
func (p *Pool) Filter(partition int) (string, error) {
	tok, err := p.PartitionToken(partition)
	if err != nil {
		return "", err
	}
	return SubjectPrefix + "." + p.name + "." + tok + ".>", nil
}

// ConsumerName returns the durable consumer name of partition:
// <pool>_<partition token>, for example agentd_p0042.
func (p *Pool) ConsumerName(partition int) (string, error) {
	tok, err := p.PartitionToken(partition)
	if err != nil {
		return "", err
	}
	return p.name + "_" + tok, nil
}

// ConsumerPartition reports whether name is one of the pool's consumer
// names, <pool>_<partition token>, and returns its partition. It accepts
// any token p0000..p9999, not only those below Partitions(), so that a
// consumer left by another partition count is still recognised as the
// pool's.
func (p *Pool) ConsumerPartition(name string) (partition int, ok bool) {
	n := len(p.name)
	if n == 0 || len(name) != n+1+partitionTokenLen || name[:n] != p.name || name[n] != '_' {
		return 0, false
	}
	return parseToken(name[n+1:], 'p')
}

func (p *Pool) checkPartition(partition int) error {
	if partition < 0 || partition >= p.partitions {
		return fmt.Errorf("%w: partition %d of pool %s, want 0..%d", ErrInvalidGroup, partition, p.name, p.partitions-1)
	}
	return nil
}

// ParseSubject splits an agent subject, a2a.in.<pool>.<partition
// token>.<agent ID>, into its parts. It checks the form only, not that the
// partition is below some count. Errors wrap ErrInvalidSubject, and also
// ErrInvalidAgentID or ErrInvalidPool for a bad token.
func ParseSubject(subject string) (pool string, partition int, agent string, err error) {
	rest, ok := strings.CutPrefix(subject, SubjectPrefix+".")
	if !ok {
		return "", 0, "", fmt.Errorf("%w: %q does not start with %q", ErrInvalidSubject, subject, SubjectPrefix+".")
	}
	pool, rest, ok = strings.Cut(rest, ".")
	if !ok {
		return "", 0, "", fmt.Errorf("%w: %q has no partition token", ErrInvalidSubject, subject)
	}
	if err := ValidatePoolName(pool); err != nil {
		return "", 0, "", fmt.Errorf("%w: %w", ErrInvalidSubject, err)
	}
	tok, agent, hasAgent := strings.Cut(rest, ".")
	partition, ok = parseToken(tok, 'p')
	if !ok {
		return "", 0, "", fmt.Errorf("%w: %q has partition token %q, want p0000..p9999",
			ErrInvalidSubject, subject, tok)
	}
	if !hasAgent {
		return "", 0, "", fmt.Errorf("%w: %q has no agent ID after its partition token", ErrInvalidSubject, subject)
	}
	if err := ValidateAgentID(agent); err != nil {
		return "", 0, "", fmt.Errorf("%w: %w", ErrInvalidSubject, err)
	}
	return pool, partition, agent, nil
}

func appendPartitionToken(dst []byte, partition int) []byte {
	return append(dst, 'p',
		byte('0'+partition/1000%10),
		byte('0'+partition/100%10),
		byte('0'+partition/10%10),
		byte('0'+partition%10))
}

// parseToken parses a letter and four decimal digits.
func parseToken(tok string, letter byte) (int, bool) {
	if len(tok) != partitionTokenLen || tok[0] != letter {
		return 0, false
	}
	n := 0
	for i := 1; i < len(tok); i++ {
		c := tok[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

// ParseConsumerName splits a partition consumer's name,
// <pool>_<partition token>, into its pool and partition; ok is false for
// any other name.
func ParseConsumerName(name string) (pool string, partition int, ok bool) {
	i := len(name) - partitionTokenLen - 1
	if i < 1 || name[i] != '_' {
		return "", 0, false
	}
	partition, ok = parseToken(name[i+1:], 'p')
	if !ok || ValidatePoolName(name[:i]) != nil {
		return "", 0, false
	}
	return name[:i], partition, true
}
