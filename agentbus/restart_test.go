package agentbus_test

import (
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/a2abus/a2abus/agentbus"
	"github.com/a2abus/a2abus/embedded"
	"github.com/a2abus/a2abus/embedded/embeddedtest"
)

// TestSendAcrossServerRestart restarts the server (same store, same port)
// while senders run: every Send that returned nil is stored, nothing is
// stored twice, and Sends during the outage succeed after the reconnect or
// fail by their deadline.
func TestSendAcrossServerRestart(t *testing.T) {
	dir := t.TempDir()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	start := func() *embedded.Server {
		t.Helper()
		return embeddedtest.RunServer(t, embedded.WithStoreDir(dir), embedded.WithPort(port))
	}
	srv := start()
	bus, err := agentbus.Connect(testCtx(t, 30*time.Second),
		agentbus.WithURL(srv.ClientURL()),
		agentbus.WithEnsureStreams(agentbus.StreamConfig{}),
		agentbus.WithLogger(embeddedtest.Logger(t)),
		agentbus.WithSendTimeout(20*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer bus.Close(context.Background())
	declarePool(t, bus, sendPool, "agent-0", "agent-1", "agent-2", "agent-3")

	var (
		mu      sync.Mutex
		okIDs   []string
		failed  int
		stop    atomic.Bool
		wg      sync.WaitGroup
		counter atomic.Int64
	)
	for s := range 4 {
		wg.Go(func() {
			for !stop.Load() {
				id := fmt.Sprintf("s%d-%06d", s, counter.Add(1))
				ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
				err := bus.Send(ctx, textEnvelope("sender", fmt.Sprintf("agent-%d", s), id, "x"))
				cancel()
				mu.Lock()
				if err == nil {
					okIDs = append(okIDs, id)
				} else {
					failed++
				}
				mu.Unlock()
			}
		})
	}
	waitOK := func(n int) {
		t.Helper()
		deadline := time.Now().Add(time.Minute)
		for {
			mu.Lock()
			got := len(okIDs)
			mu.Unlock()
			if got >= n {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("only %d sends succeeded, want %d", got, n)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitOK(300)
	if err := srv.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // senders run into the outage
	srv = start()
	mu.Lock()
	before := len(okIDs)
	mu.Unlock()
	waitOK(before + 300)
	stop.Store(true)
	wg.Wait()

	envs := storedEnvelopes(t, embeddedtest.Connect(t, srv))
	stored := map[string]int{}
	for _, e := range envs {
		stored[e.ID]++
	}
	for id, n := range stored {
		if n > 1 {
			t.Errorf("%s stored %d times", id, n)
		}
	}
	lost := 0
	for _, id := range okIDs {
		if stored[id] == 0 {
			lost++
		}
	}
	t.Logf("%d sends returned nil, %d failed, %d envelopes stored, %d lost", len(okIDs), failed, len(envs), lost)
	if lost > 0 {
		t.Fatalf("%d acknowledged sends are not in the stream", lost)
	}
}
