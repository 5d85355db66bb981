package scalerd

import (
	"context"
	"errors"
	"fmt"

	"github.com/a2abus/a2abus/agentbus"
	"github.com/a2abus/a2abus/placement"
	"github.com/a2abus/a2abus/scaler"
	"github.com/nats-io/nats.go/jetstream"
)

// streamSource reads the bus's backlog from JetStream: the info of every
// partition's durable consumer on stream A2A, through the JetStream API
// (each consumer's leader answers for it), and the stream's state. It is a
// scaler.StreamSource: its counts are stored messages (batches of A2A
// messages), all three of them.
type streamSource struct {
	js     jetstream.JetStream
	stream string
}

var _ scaler.StreamSource = (*streamSource)(nil)

// newStreamSource reads the partitions of bus on stream agentbus.StreamName.
func newStreamSource(bus *agentbus.Bus) (*streamSource, error) {
	js, err := jetstream.New(bus.Conn())
	if err != nil {
		return nil, err
	}
	return &streamSource{js: js, stream: agentbus.StreamName}, nil
}

// Backlog returns the backlog of each group that has a consumer (a group
// never consumed has none yet; its messages count once its consumer
// exists) and the stream's last sequence.
func (s *streamSource) Backlog(ctx context.Context) ([]scaler.GroupBacklog, uint64, error) {
	groups, received, _, err := s.Stream(ctx)
	return groups, received, err
}

// Stream returns the backlog, the stream's last sequence (every message
// it ever stored) and the messages that left it. The stream keeps a message
// until it is acknowledged (work-queue retention), so those that left are
// the ones finished: acknowledged, or terminated into the dead-letter stream
// (and any an operator purged, or that aged out).
func (s *streamSource) Stream(ctx context.Context) ([]scaler.GroupBacklog, uint64, uint64, error) {
	st, err := s.js.Stream(ctx, s.stream)
	if err != nil {
		return nil, 0, 0, fmt.Errorf("stream %s: %w", s.stream, err)
	}
	state := st.CachedInfo().State // Stream fetched the info just now
	var groups []scaler.GroupBacklog
	list := st.ListConsumers(ctx)
	for ci := range list.Info() {
		if ci == nil {
			continue
		}
		if _, _, ok := placement.ParseConsumerName(ci.Name); !ok {
			continue
		}
		groups = append(groups, scaler.GroupBacklog{
			Group: ci.Name, NumPending: ci.NumPending, NumAckPending: uint64(max(ci.NumAckPending, 0)),
		})
	}
	if err := list.Err(); err != nil && !errors.Is(err, jetstream.ErrEndOfData) {
		return nil, 0, 0, fmt.Errorf("consumers of %s: %w", s.stream, err)
	}
	finished := uint64(0)
	if state.LastSeq >= state.Msgs {
		finished = state.LastSeq - state.Msgs
	}
	return groups, state.LastSeq, finished, nil
}

// memberSource reports the bus's live consumers from the members bucket.
type memberSource struct {
	bus *agentbus.Bus
}

var _ scaler.ConsumerSource = memberSource{}

// Consumers maps each member's report. A member whose CPU is unknown (its
// first heartbeat, or a platform that cannot tell) is not ready yet: it has
// just started, and its CPU cannot count in the mean.
func (m memberSource) Consumers(ctx context.Context) ([]scaler.ConsumerReport, error) {
	members, err := m.bus.Members(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]scaler.ConsumerReport, 0, len(members))
	for _, mb := range members {
		out = append(out, consumerReport(mb))
	}
	return out, nil
}

// consumerReport maps one member's report.
func consumerReport(m agentbus.Member) scaler.ConsumerReport {
	r := scaler.ConsumerReport{ID: m.ID, Handled: m.Handled, CPU: m.CPU, Ready: m.CPU >= 0}
	if !r.Ready {
		r.CPU = 0
	}
	return r
}
