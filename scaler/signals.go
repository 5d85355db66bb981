package scaler

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Snapshot is what the policy sees at one evaluation: the bus's backlog,
// its arrival and drain rates and the consumers' CPU, at a time the caller
// supplies. Rates are messages per second averaged since the previous
// snapshot.
type Snapshot struct {
	// Time is when the signals were read. The policy uses it as its clock;
	// it never reads the wall clock.
	Time time.Time
	// Backlog is the total over all consumer groups of NumPending +
	// NumAckPending: messages stored and not yet acknowledged.
	Backlog int64
	// InFlight is the part of Backlog delivered to a consumer and not yet
	// acknowledged (NumAckPending): messages being handled. The policy's
	// backlog thresholds look at the rest, the messages waiting, since more
	// consumers would not finish those in flight any sooner.
	InFlight int64
	// ArrivalRate is the rate at which messages are stored in the stream.
	ArrivalRate float64
	// HandledRate is the rate at which consumers acknowledge messages.
	HandledRate float64
	// CPU is the mean process CPU of the ready consumers, as a fraction of
	// what one consumer may use: 0.7 is 70%.
	CPU float64
	// Consumers is the current consumer count: ready plus starting.
	Consumers int
	// Ready is how many of them pull messages and report CPU.
	Ready int
}

// GroupBacklog is the backlog of one consumer group as JetStream reports it
// in the durable consumer's info.
type GroupBacklog struct {
	Group         string
	NumPending    uint64 // stored, not yet delivered
	NumAckPending uint64 // delivered, not yet acknowledged
}

// BacklogSource reports the backlog of every consumer group and the count of
// messages the stream has received so far (its last sequence), from which
// the arrival rate follows.
type BacklogSource interface {
	Backlog(ctx context.Context) (groups []GroupBacklog, received uint64, err error)
}

// StreamSource is a BacklogSource that also counts the messages its
// consumers have finished with (acknowledged, or terminated), in the same
// units as the backlog and the arrivals: stored messages. A Sampler whose
// BacklogSource is a StreamSource reads all three together with Stream and
// takes the handled rate from the finished count rather than from the
// consumers' reports. That matters when the consumers count something else:
// a2abus consumers count A2A messages, while the stream stores batches of
// them, and a policy comparing arrivals in batches with a capacity learned
// in messages would size the pool many times too small.
type StreamSource interface {
	BacklogSource
	Stream(ctx context.Context) (groups []GroupBacklog, received, finished uint64, err error)
}

// ConsumerReport is what one consumer publishes about itself.
type ConsumerReport struct {
	ID string
	// CPU is the consumer's process CPU as a fraction of its share (0..1).
	CPU float64
	// Handled is the count of messages it has acknowledged since it
	// started; the handled rate follows from two reports (unless the
	// BacklogSource is a StreamSource).
	Handled uint64
	// Ready is false while the consumer starts and does not pull yet.
	Ready bool
}

// ConsumerSource reports the live consumers.
type ConsumerSource interface {
	Consumers(ctx context.Context) ([]ConsumerReport, error)
}

// Sampler turns the raw counters of a BacklogSource and a ConsumerSource
// into Snapshots, computing rates from the change of the counters between
// two calls. Its clock is injected.
type Sampler struct {
	backlog   BacklogSource
	consumers ConsumerSource
	now       func() time.Time

	mu       sync.Mutex
	primed   bool
	last     time.Time
	received uint64
	handled  map[string]uint64
	finished uint64
}

// NewSampler returns a Sampler reading b and c at the times now returns.
func NewSampler(b BacklogSource, c ConsumerSource, now func() time.Time) *Sampler {
	return &Sampler{backlog: b, consumers: c, now: now, handled: map[string]uint64{}}
}

// Sample reads both sources and returns a Snapshot. Rates are zero on the
// first call, which only primes the counters. A consumer that restarted
// (its Handled counter went down) counts from zero.
func (s *Sampler) Sample(ctx context.Context) (Snapshot, error) {
	var (
		groups             []GroupBacklog
		received, finished uint64
		err                error
	)
	ss, stream := s.backlog.(StreamSource)
	if stream {
		groups, received, finished, err = ss.Stream(ctx)
	} else {
		groups, received, err = s.backlog.Backlog(ctx)
	}
	if err != nil {
		return Snapshot{}, fmt.Errorf("scaler: backlog: %w", err)
	}
	reports, err := s.consumers.Consumers(ctx)
	if err != nil {
		return Snapshot{}, fmt.Errorf("scaler: consumers: %w", err)
	}
	t := s.now()

	s.mu.Lock()
	defer s.mu.Unlock()
	snap := Snapshot{Time: t, Consumers: len(reports)}
	for _, g := range groups {
		snap.Backlog += int64(g.NumPending + g.NumAckPending)
		snap.InFlight += int64(g.NumAckPending)
	}
	var cpu float64
	var handled uint64
	next := make(map[string]uint64, len(reports))
	for _, r := range reports {
		next[r.ID] = r.Handled
		if prev, ok := s.handled[r.ID]; ok && r.Handled >= prev {
			handled += r.Handled - prev
		} else if ok {
			handled += r.Handled
		}
		if r.Ready {
			snap.Ready++
			cpu += r.CPU
		}
	}
	if snap.Ready > 0 {
		snap.CPU = cpu / float64(snap.Ready)
	}
	if dt := t.Sub(s.last).Seconds(); s.primed && dt > 0 {
		if received >= s.received {
			snap.ArrivalRate = float64(received-s.received) / dt
		}
		snap.HandledRate = float64(handled) / dt
		if stream {
			snap.HandledRate = 0
			if finished >= s.finished {
				snap.HandledRate = float64(finished-s.finished) / dt
			}
		}
	}
	s.primed, s.last, s.received, s.handled, s.finished = true, t, received, next, finished
	return snap, nil
}
