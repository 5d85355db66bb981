package scalerd

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/a2abus/a2abus/agentbus"
	"github.com/a2abus/a2abus/codec"
	"github.com/a2abus/a2abus/embedded"
	"github.com/a2abus/a2abus/embedded/embeddedtest"
	"github.com/a2abus/a2abus/placement"
	"github.com/nats-io/nats.go/jetstream"
)

// newBus connects a bus to srv, provisioning the streams, closed when the
// test ends. Its sends to an agent wait for the agent's declaration, which
// a Serve or a Declare of the test makes.
func newBus(t *testing.T, srv *embedded.Server, opts ...agentbus.Option) *agentbus.Bus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	all := append([]agentbus.Option{agentbus.WithURL(srv.ClientURL()), agentbus.WithLogger(embeddedtest.Logger(t)),
		agentbus.WithEnsureStreams(agentbus.StreamConfig{}), agentbus.WithUnknownAgents(agentbus.WaitUnknown)}, opts...)
	bus, err := agentbus.Connect(ctx, all...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bus.Close(context.Background()) })
	return bus
}

// send sends n text messages to agent and waits until all are stored.
func send(t *testing.T, bus *agentbus.Bus, agent string, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tickets := make([]*agentbus.Ticket, 0, n)
	for i := range n {
		tk, err := bus.SendAsync(ctx, &codec.Envelope{Kind: "message", To: agent, Message: &codec.Message{
			MessageID: fmt.Sprintf("m%d", i), Role: codec.RoleUser, Parts: []codec.Part{codec.TextPart("hello")},
		}})
		if err != nil {
			t.Fatalf("send %d to %s: %v", i, agent, err)
		}
		tickets = append(tickets, tk)
	}
	if err := bus.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	for _, tk := range tickets {
		if err := tk.Wait(ctx); err != nil {
			t.Fatalf("send to %s: %v", agent, err)
		}
	}
}

// testDaemonConfig is a scalerd on srv with a free HTTP port, short
// timings and a policy that reacts within a few intervals.
func testDaemonConfig(srv *embedded.Server, id string) Config {
	cfg := DefaultConfig()
	cfg.NATS = srv.ClientURL()
	cfg.HTTP = "127.0.0.1:0"
	cfg.ID = id
	cfg.Interval = 200 * time.Millisecond
	cfg.Lease = 2 * time.Second
	cfg.LogLevel = "debug"
	return cfg
}

// startDaemon starts a scalerd, shut down when the test ends.
func startDaemon(t *testing.T, cfg Config) *Daemon {
	t.Helper()
	d, err := NewDaemon(cfg, embeddedtest.Logger(t).With("scalerd", cfg.ID))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := d.Shutdown(ctx); err != nil {
			t.Errorf("shutdown %s: %v", cfg.ID, err)
		}
	})
	return d
}

// waitFor polls cond until it holds, failing the test with what after
// timeout. The timeouts are generous bounds, not measurements.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// get fetches path from a daemon's HTTP endpoints.
func get(t *testing.T, d *Daemon, path string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + d.HTTPAddr() + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

// reportPool declares pool with agent and creates its partition consumers,
// as a pool's first member does: the pool has reported, with no members.
func reportPool(t *testing.T, bus *agentbus.Bus, pool, agent string, partitions int) *placement.Pool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := bus.Declare(ctx, agentbus.PoolConfig{Name: pool, Partitions: partitions}, agent)
	if err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(bus.Conn())
	if err != nil {
		t.Fatal(err)
	}
	for n := range partitions {
		cfg, err := agentbus.ConsumerConfig(p, n, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := js.CreateOrUpdateConsumer(ctx, agentbus.StreamName, cfg); err != nil {
			t.Fatal(err)
		}
	}
	return p
}
