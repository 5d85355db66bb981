package scaler

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"
)

type fakeBacklog struct {
	groups   []GroupBacklog
	received uint64
	err      error
}

func (f *fakeBacklog) Backlog(context.Context) ([]GroupBacklog, uint64, error) {
	return f.groups, f.received, f.err
}

type fakeConsumers struct {
	reports []ConsumerReport
	err     error
}

func (f *fakeConsumers) Consumers(context.Context) ([]ConsumerReport, error) { return f.reports, f.err }

func TestSampler(t *testing.T) {
	now := at(0)
	b := &fakeBacklog{groups: []GroupBacklog{{"g0", 100, 20}, {"g1", 5, 0}}, received: 1000}
	c := &fakeConsumers{reports: []ConsumerReport{
		{ID: "a", CPU: 0.4, Handled: 500, Ready: true},
		{ID: "b", CPU: 0.6, Handled: 300, Ready: true},
		{ID: "c", Handled: 0, Ready: false},
	}}
	s := NewSampler(b, c, func() time.Time { return now })
	ctx := context.Background()

	first, err := s.Sample(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if first.Backlog != 125 || first.InFlight != 20 || first.Consumers != 3 || first.Ready != 2 ||
		first.CPU != 0.5 || first.ArrivalRate != 0 || first.HandledRate != 0 || !first.Time.Equal(now) {
		t.Errorf("first sample %+v", first)
	}

	now = at(10)
	b.received = 2000
	c.reports = []ConsumerReport{
		{ID: "a", CPU: 0.5, Handled: 900, Ready: true},
		{ID: "b", CPU: 0.5, Handled: 100, Ready: true}, // restarted: counts from zero
		{ID: "c", CPU: 0.2, Handled: 50, Ready: true},  // new since the last sample
	}
	second, err := s.Sample(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if second.ArrivalRate != 100 || second.HandledRate != (400+100+50)/10.0 || second.Ready != 3 || math.Abs(second.CPU-0.4) > 1e-9 {
		t.Errorf("second sample %+v", second)
	}
}

func TestSamplerErrors(t *testing.T) {
	boom := errors.New("boom")
	s := NewSampler(&fakeBacklog{err: boom}, &fakeConsumers{}, func() time.Time { return t0 })
	if _, err := s.Sample(context.Background()); !errors.Is(err, boom) {
		t.Errorf("backlog error: %v", err)
	}
	s = NewSampler(&fakeBacklog{}, &fakeConsumers{err: boom}, func() time.Time { return t0 })
	if _, err := s.Sample(context.Background()); !errors.Is(err, boom) {
		t.Errorf("consumers error: %v", err)
	}
}

type fakeStream struct {
	fakeBacklog
	finished uint64
}

func (f *fakeStream) Stream(context.Context) ([]GroupBacklog, uint64, uint64, error) {
	return f.groups, f.received, f.finished, f.err
}

// TestSamplerStreamSource: a StreamSource's finished count, not the
// consumers' reports, gives the handled rate.
func TestSamplerStreamSource(t *testing.T) {
	now := at(0)
	b := &fakeStream{fakeBacklog: fakeBacklog{groups: []GroupBacklog{{"g0", 10, 2}}, received: 100}, finished: 88}
	c := &fakeConsumers{reports: []ConsumerReport{{ID: "a", CPU: 0.5, Handled: 5000, Ready: true}}}
	s := NewSampler(b, c, func() time.Time { return now })
	if _, err := s.Sample(context.Background()); err != nil {
		t.Fatal(err)
	}
	now = at(2)
	b.received, b.finished = 300, 268
	c.reports[0].Handled = 90000
	snap, err := s.Sample(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if snap.ArrivalRate != 100 || snap.HandledRate != 90 || snap.Backlog != 12 {
		t.Errorf("sample %+v, want arrivals 100/s and handled 90/s", snap)
	}
}
