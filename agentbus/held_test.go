package agentbus_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/a2abus/a2abus/agentbus"
	"github.com/a2abus/a2abus/codec"
	"github.com/a2abus/a2abus/embedded/embeddedtest"
	"github.com/prometheus/client_golang/prometheus"
)

// TestHeldBytesBound (issue 14): a member pulling 32 partitions, each
// delivering a batch of 256 KiB (random, so not compressed) to handlers
// of 300 ms, decodes and handles at most ServeMaxHeldBytes of them at
// once: 3 batches under a bound of 3 × 300 KiB, not 32. The others wait
// held, undecoded (a2abus_receive_held_waiting_batches), and every
// envelope is handled once.
func TestHeldBytesBound(t *testing.T) {
	const (
		partitions = 32
		payload    = 256 << 10
		bound      = 3 * 300 << 10
	)
	srv := embeddedtest.RunServer(t)
	reg := prometheus.NewRegistry()
	host := connectBus(t, srv, agentbus.WithRegisterer(reg))
	client := connectBus(t, srv)
	var (
		running, peak atomic.Int64
		mu            sync.Mutex
		handled       = map[string]int{}
		heapPeak      atomic.Uint64
	)
	if err := host.Handle("bulky", func(ctx context.Context, env *codec.Envelope) error {
		n := running.Add(1)
		defer running.Add(-1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		for h := heapPeak.Load(); ms.HeapInuse > h && !heapPeak.CompareAndSwap(h, ms.HeapInuse); h = heapPeak.Load() {
		}
		select {
		case <-time.After(300 * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
		mu.Lock()
		handled[env.ID]++
		mu.Unlock()
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	pool := declarePool(t, host, agentbus.PoolConfig{Name: "bulky", Partitions: partitions}, "bulky")
	serve(t, host, agentbus.ServePartitions(partitions), agentbus.ServeMaxHeldBytes(bound))
	waitDirectSubs(t, srv, pool)

	// One envelope per conversation, spread over the partitions until each
	// has one.
	ctx := testCtx(t, 2*time.Minute)
	body := make([]byte, payload)
	if _, err := rand.Read(body); err != nil {
		t.Fatal(err)
	}
	used := map[int]bool{}
	var sent []string
	for c := 0; len(used) < partitions; c++ {
		conv := fmt.Sprintf("c%d", c)
		if p := pool.Partition("bulky", conv); !used[p] {
			used[p] = true
			env := &codec.Envelope{ID: conv, From: "a", To: "bulky", Kind: "blob", Payload: body}
			env.Headers.Set(agentbus.HeaderContextID, conv)
			if _, err := client.SendAsync(ctx, env); err != nil {
				t.Fatal(err)
			}
			sent = append(sent, conv)
		}
	}
	if err := client.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	sawWaiting := false
	waitFor(t, "every envelope handled", func() bool {
		if gathered(t, reg, "a2abus_receive_held_waiting_batches") > 0 {
			sawWaiting = true
		}
		mu.Lock()
		defer mu.Unlock()
		return len(handled) == len(sent)
	})
	if p := peak.Load(); p > bound/payload {
		t.Errorf("%d batches of %d KiB handled at once under a bound of %d KiB, want at most %d", p, payload>>10, bound>>10, bound/payload)
	}
	if !sawWaiting {
		t.Errorf("a2abus_receive_held_waiting_batches never above 0 while %d batches waited for a bound of %d", len(sent), bound/payload)
	}
	for id, n := range handled {
		if n != 1 {
			t.Errorf("%s handled %d times", id, n)
		}
	}
	t.Logf("%d batches of %d KiB over %d partitions: at most %d handled at once (bound %d KiB); heap in use at most %.1f MiB",
		len(sent), payload>>10, partitions, peak.Load(), bound>>10, float64(heapPeak.Load())/(1<<20))
}
