package agentbus_test

import (
	"context"
	"errors"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/a2abus/a2abus/agentbus"
	"github.com/a2abus/a2abus/embedded"
	"github.com/a2abus/a2abus/placement"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// declarePool declares agents in the pool cfg describes, so that sends to
// them are stored before any member serves them. It retries what a
// cluster still forming answers, for up to a minute; ErrPoolMismatch fails
// the test at once.
func declarePool(t *testing.T, bus *agentbus.Bus, cfg agentbus.PoolConfig, agents ...string) *placement.Pool {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		p, err := bus.Declare(ctx, cfg, agents...)
		cancel()
		if err == nil {
			return p
		}
		if errors.Is(err, agentbus.ErrPoolMismatch) || time.Now().After(deadline) {
			t.Fatalf("declare pool %s with %v: %v", cfg.Name, agents, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// waitDirectSubs waits until every partition of pool has a direct-request
// subscriber on srv: only then is a direct request sure to reach a member.
func waitDirectSubs(t *testing.T, srv *embedded.Server, pool *placement.Pool) {
	t.Helper()
	waitFor(t, "direct subscriptions on every partition of pool "+pool.Name(), func() bool {
		for n := range pool.Partitions() {
			tok, _ := pool.PartitionToken(n)
			sz, err := srv.NATSServer().Subsz(&server.SubszOptions{
				Subscriptions: true, Test: agentbus.DirectSubjectPrefix + "." + pool.Name() + "." + tok + ".x",
			})
			if err != nil {
				t.Fatal(err)
			}
			if sz.Total == 0 {
				return false
			}
		}
		return true
	})
}

// storedSubjects returns the subjects of the messages in the A2A stream,
// in stream order.
func storedSubjects(t *testing.T, nc *nats.Conn) []string {
	t.Helper()
	ctx := testCtx(t, 30*time.Second)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	s, err := js.Stream(ctx, agentbus.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	info := s.CachedInfo()
	var out []string
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, m.Subject)
	}
	return out
}

// keyLog records, per ordering key, the envelopes handled in handling
// order, and notices a key handled by two handlers at once.
type keyLog struct {
	mu       sync.Mutex
	order    map[string][]string // key -> envelope IDs
	running  map[string]int      // key -> handlers running now
	overlaps []string            // envelopes started while another of their key ran
	maxAll   int                 // most handlers running at once, over all keys
	nowAll   int
	ended    int // handlers that returned
}

func newKeyLog() *keyLog {
	return &keyLog{order: map[string][]string{}, running: map[string]int{}}
}

// start notes that key's envelope id is being handled; the returned
// function notes that its handler ended.
func (l *keyLog) start(key, id string) (end func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.running[key]++
	if l.running[key] > 1 {
		l.overlaps = append(l.overlaps, id)
	}
	l.nowAll++
	l.maxAll = max(l.maxAll, l.nowAll)
	l.order[key] = append(l.order[key], id)
	return func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.running[key]--
		l.nowAll--
		l.ended++
	}
}

// finished returns how many handlers returned.
func (l *keyLog) finished() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ended
}

func (l *keyLog) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, ids := range l.order {
		n += len(ids)
	}
	return n
}

// check fails the test unless each key's envelopes were handled once each,
// in the order of want (key -> IDs in send order), and no key ever ran
// twice at once.
func (l *keyLog) check(t *testing.T, want map[string][]string) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.overlaps) > 0 {
		t.Errorf("%d envelopes started while another of their key ran, first %v", len(l.overlaps), firstOf(l.overlaps, 5))
	}
	keys := make([]string, 0, len(want))
	for k := range want {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		got, ids := l.order[k], want[k]
		if len(got) != len(ids) {
			t.Errorf("key %s: handled %d envelopes, want %d", k, len(got), len(ids))
		}
		for i := range min(len(got), len(ids)) {
			if got[i] != ids[i] {
				t.Errorf("key %s: envelope %d handled is %s, want %s (order broken or handled twice): %v", k, i, got[i], ids[i], firstOf(got[i:], 5))
				break
			}
		}
	}
}

func firstOf(s []string, n int) []string { return s[:min(n, len(s))] }
