package scalerd

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/a2abus/a2abus/agentbus"
	"github.com/a2abus/a2abus/placement"
	"github.com/a2abus/a2abus/scaler"
	"github.com/nats-io/nats.go/jetstream"
)

// poolBacklog is one pool's backlog as its partition consumers report it,
// with two counters that only grow: the stored messages that arrived for
// the pool and those its consumers finished (acknowledged or terminated),
// both counted since this source first saw the pool.
type poolBacklog struct {
	groups             []scaler.GroupBacklog
	received, finished uint64
}

// consumerCounts is what a partition consumer's info told at one reading.
type consumerCounts struct {
	backlog  uint64 // NumPending + NumAckPending
	finished uint64 // AckFloor.Consumer
}

// streamSource reads the backlog of every pool from JetStream: the info of
// every partition's durable consumer on stream A2A (consumers named
// <pool>_pNNNN, grouped by pool with placement.ParseConsumerName), through
// the JetStream API (each consumer's leader answers for it). Its counts are
// stored messages (batches of A2A messages).
//
// The stream's own counters (its last sequence, its messages) are the
// bus's, not a pool's, so each pool's counters come from its consumers: a
// partition consumer has MaxAckPending 1 and so at most one message out,
// and its ack floor's consumer sequence counts the deliveries it finished.
// What finished between two readings is the rise of the ack floor; what
// arrived is that plus the rise of the backlog (NumPending +
// NumAckPending), since a message arrives into the backlog and leaves it
// when finished. A redelivered message counts once more in both. A
// consumer seen for the first time (or whose counters went back: it was
// recreated) adds nothing at that reading: what it holds then arrived
// before it was seen, and counts in the backlog, not in the rates.
type streamSource struct {
	js     jetstream.JetStream
	stream string

	mu     sync.Mutex
	last   map[string]consumerCounts // by consumer name, at the previous reading
	totals map[string]*poolBacklog   // by pool: the counters
}

// newStreamSource reads the partitions of every pool of bus on stream
// agentbus.StreamName.
func newStreamSource(bus *agentbus.Bus) (*streamSource, error) {
	js, err := jetstream.New(bus.Conn())
	if err != nil {
		return nil, err
	}
	return &streamSource{js: js, stream: agentbus.StreamName,
		last: map[string]consumerCounts{}, totals: map[string]*poolBacklog{}}, nil
}

// Pools returns the backlog of every pool that has a partition consumer
// (a partition never consumed has none yet: its messages count once its
// consumer exists), each pool's groups sorted by consumer name.
func (s *streamSource) Pools(ctx context.Context) (map[string]poolBacklog, error) {
	st, err := s.js.Stream(ctx, s.stream)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", s.stream, err)
	}
	seen := map[string]consumerCounts{}
	groups := map[string][]scaler.GroupBacklog{}
	list := st.ListConsumers(ctx)
	for ci := range list.Info() {
		if ci == nil {
			continue
		}
		pool, _, ok := placement.ParseConsumerName(ci.Name)
		if !ok {
			continue
		}
		g := scaler.GroupBacklog{Group: ci.Name, NumPending: ci.NumPending, NumAckPending: uint64(max(ci.NumAckPending, 0))}
		groups[pool] = append(groups[pool], g)
		seen[ci.Name] = consumerCounts{backlog: g.NumPending + g.NumAckPending, finished: ci.AckFloor.Consumer}
	}
	if err := list.Err(); err != nil && !errors.Is(err, jetstream.ErrEndOfData) {
		return nil, fmt.Errorf("consumers of %s: %w", s.stream, err)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]poolBacklog, len(groups))
	for pool, gs := range groups {
		t := s.totals[pool]
		if t == nil {
			t = &poolBacklog{}
			s.totals[pool] = t
		}
		for _, g := range gs {
			now, prev := seen[g.Group], s.last[g.Group]
			if _, known := s.last[g.Group]; !known || now.finished < prev.finished {
				continue // first seen, or recreated: nothing to add yet
			}
			finished := now.finished - prev.finished
			t.finished += finished
			// backlog + finished only grows; a backlog that shrank by more
			// than what finished (messages an operator purged) adds nothing.
			if arrived := int64(now.backlog) - int64(prev.backlog) + int64(finished); arrived > 0 {
				t.received += uint64(arrived)
			}
		}
		slices.SortFunc(gs, func(a, b scaler.GroupBacklog) int { return strings.Compare(a.Group, b.Group) })
		out[pool] = poolBacklog{groups: gs, received: t.received, finished: t.finished}
	}
	for pool := range s.totals {
		if _, ok := groups[pool]; !ok {
			delete(s.totals, pool) // its consumers are gone
		}
	}
	s.last = seen
	return out, nil
}

// memberSource reports the bus's live consumers from the members bucket,
// by pool.
type memberSource struct {
	bus *agentbus.Bus
}

// Pools maps each member's report into its pool's. Members without a
// valid pool (written by an older version) are left out: they cannot be
// given to a pool.
func (m memberSource) Pools(ctx context.Context) (map[string][]scaler.ConsumerReport, error) {
	members, err := m.bus.Members(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string][]scaler.ConsumerReport{}
	for _, mb := range members {
		if placement.ValidatePoolName(mb.Pool) != nil {
			continue
		}
		out[mb.Pool] = append(out[mb.Pool], consumerReport(mb))
	}
	return out, nil
}

// consumerReport maps one member's report. A member whose CPU is unknown
// (its first heartbeat, or a platform that cannot tell) is not ready yet:
// it has just started, and its CPU cannot count in the mean.
func consumerReport(m agentbus.Member) scaler.ConsumerReport {
	r := scaler.ConsumerReport{ID: m.ID, Handled: m.Handled, CPU: m.CPU, Ready: m.CPU >= 0}
	if !r.Ready {
		r.CPU = 0
	}
	return r
}

// reading is one sample of the bus, by pool: the backlog of the pools
// that have partition consumers and the members of the pools that have
// members. A pool in neither has not reported.
type reading struct {
	backlog map[string]poolBacklog
	members map[string][]scaler.ConsumerReport
}

// readPools samples the backlog and the members together.
func readPools(ctx context.Context, streams *streamSource, members memberSource) (reading, error) {
	b, err := streams.Pools(ctx)
	if err != nil {
		return reading{}, fmt.Errorf("backlog: %w", err)
	}
	m, err := members.Pools(ctx)
	if err != nil {
		return reading{}, fmt.Errorf("consumers: %w", err)
	}
	return reading{backlog: b, members: m}, nil
}

// pools returns the pools that reported, sorted.
func (r reading) pools() []string {
	var out []string
	for p := range r.backlog {
		out = append(out, p)
	}
	for p := range r.members {
		if _, ok := r.backlog[p]; !ok {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out
}

// poolSource is one pool's part of the latest reading, as a scaler.Sampler
// reads it: a scaler.StreamSource (so the handled rate is in stored
// messages, the arrivals' unit) and a scaler.ConsumerSource.
type poolSource struct {
	mu      sync.Mutex
	backlog poolBacklog
	members []scaler.ConsumerReport
}

var (
	_ scaler.StreamSource   = (*poolSource)(nil)
	_ scaler.ConsumerSource = (*poolSource)(nil)
)

// set makes r's part for pool the source's.
func (p *poolSource) set(r reading, pool string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.backlog, p.members = r.backlog[pool], r.members[pool]
}

// Backlog returns the pool's groups and received count.
func (p *poolSource) Backlog(ctx context.Context) ([]scaler.GroupBacklog, uint64, error) {
	groups, received, _, err := p.Stream(ctx)
	return groups, received, err
}

// Stream returns the pool's groups, received and finished counts.
func (p *poolSource) Stream(context.Context) ([]scaler.GroupBacklog, uint64, uint64, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.backlog.groups, p.backlog.received, p.backlog.finished, nil
}

// Consumers returns the reports of the pool's members.
func (p *poolSource) Consumers(context.Context) ([]scaler.ConsumerReport, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.members, nil
}
