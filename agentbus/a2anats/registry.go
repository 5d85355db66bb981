package a2anats

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/a2abus/a2abus/agentbus"
	"github.com/a2abus/a2abus/placement"
	"github.com/a2aproject/a2a-go/v2/a2a"
	"github.com/nats-io/nats.go/jetstream"
)

// AgentsBucket is the KV bucket of the registry: one key per agent ID, its
// agent card as JSON.
const AgentsBucket = "a2abus_agents"

// MaxCardSize bounds a registered card's JSON, in bytes.
const MaxCardSize = 256 << 10

// ErrUnknownAgent is returned for an agent with no card in the registry.
var ErrUnknownAgent = errors.New("a2anats: no agent card registered for the agent")

// Registry holds the agent cards of the agents on the bus, in a KV bucket
// every agentd reads, so that any of them can serve any agent's card and
// endpoint. It is safe for concurrent use.
type Registry struct {
	kv jetstream.KeyValue
}

// NewRegistry opens the registry of bus's agents, creating its bucket.
func NewRegistry(ctx context.Context, bus *agentbus.Bus) (*Registry, error) {
	kv, err := bus.KeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: AgentsBucket, Description: "a2abus: the agent cards of the agents on the bus", History: 1,
	})
	if err != nil {
		return nil, err
	}
	return &Registry{kv: kv}, nil
}

// Register stores card as agentID's card, replacing any. It keeps the
// card's interfaces of this binding and adds one for agentID (server as in
// Interface) when it has none: an agentd serving the card adds its own
// HTTP interfaces. Other interfaces, such as a sidecar agent's own HTTP
// endpoint, are dropped: calls to an agent on the bus go through the bus.
func (r *Registry) Register(ctx context.Context, agentID string, card *a2a.AgentCard, server string) error {
	if err := placement.ValidateAgentID(agentID); err != nil {
		return fmt.Errorf("a2anats: register: %w", err)
	}
	if card == nil {
		return fmt.Errorf("a2anats: register %s: nil card", agentID)
	}
	c := *card
	c.SupportedInterfaces = slices.DeleteFunc(slices.Clone(card.SupportedInterfaces), func(i *a2a.AgentInterface) bool {
		return i == nil || i.ProtocolBinding != ProtocolBinding
	})
	if len(c.SupportedInterfaces) == 0 {
		c.SupportedInterfaces = []*a2a.AgentInterface{Interface(agentID, server)}
	}
	b, err := json.Marshal(&c)
	if err != nil {
		return fmt.Errorf("a2anats: register %s: %w", agentID, err)
	}
	if len(b) > MaxCardSize {
		return fmt.Errorf("a2anats: register %s: card is %d bytes, limit %d", agentID, len(b), MaxCardSize)
	}
	if _, err := r.kv.Put(ctx, agentID, b); err != nil {
		return fmt.Errorf("a2anats: register %s: %w", agentID, err)
	}
	return nil
}

// Card returns agentID's card, or an error wrapping ErrUnknownAgent.
func (r *Registry) Card(ctx context.Context, agentID string) (*a2a.AgentCard, error) {
	if err := placement.ValidateAgentID(agentID); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnknownAgent, err)
	}
	e, err := r.kv.Get(ctx, agentID)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, fmt.Errorf("%w: %s", ErrUnknownAgent, agentID)
	}
	if err != nil {
		return nil, fmt.Errorf("a2anats: card of %s: %w", agentID, err)
	}
	var card a2a.AgentCard
	if err := json.Unmarshal(e.Value(), &card); err != nil {
		return nil, fmt.Errorf("a2anats: card of %s: %w", agentID, err)
	}
	return &card, nil
}

// Agents returns the IDs of the registered agents, sorted.
func (r *Registry) Agents(ctx context.Context) ([]string, error) {
	lister, err := r.kv.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("a2anats: list agents: %w", err)
	}
	var ids []string
	for k := range lister.Keys() {
		ids = append(ids, k)
	}
	slices.Sort(ids)
	return ids, nil
}

// Remove deletes agentID's card; removing an unknown agent is no error.
func (r *Registry) Remove(ctx context.Context, agentID string) error {
	if err := r.kv.Delete(ctx, agentID); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("a2anats: remove %s: %w", agentID, err)
	}
	return nil
}
