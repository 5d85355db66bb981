package agentbus_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/a2abus/a2abus/agentbus"
	"github.com/a2abus/a2abus/embedded"
	"github.com/a2abus/a2abus/embedded/embeddedtest"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestConnectAuth connects over TCP to servers that require each kind of
// credentials the bus offers: without them Connect fails, with them it
// works.
func TestConnectAuth(t *testing.T) {
	user, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := user.PublicKey()
	seed, _ := user.Seed()
	seedFile := filepath.Join(t.TempDir(), "user.nk")
	if err := os.WriteFile(seedFile, seed, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		server func(*server.Options)
		opt    agentbus.Option
	}{
		{"token", func(o *server.Options) { o.Authorization = "s3cret" }, agentbus.WithToken("s3cret")},
		{"user and password", func(o *server.Options) { o.Username, o.Password = "agent", "pw" }, agentbus.WithUserPassword("agent", "pw")},
		{"nkey", func(o *server.Options) { o.Nkeys = []*server.NkeyUser{{Nkey: pub}} }, agentbus.WithNKeySeedFile(seedFile)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := embeddedtest.RunServer(t, embedded.WithServerOptions(tt.server))
			ctx := testCtx(t, 30*time.Second)
			if bus, err := agentbus.Connect(ctx, agentbus.WithURL(srv.ClientURL())); err == nil {
				_ = bus.Close(ctx)
				t.Fatal("Connect without credentials succeeded")
			} else if !strings.Contains(strings.ToLower(err.Error()), "authorization") {
				t.Fatalf("Connect without credentials: %v, want an authorization error", err)
			}
			bus, err := agentbus.Connect(ctx, agentbus.WithURL(srv.ClientURL()), tt.opt,
				agentbus.WithEnsureStreams(agentbus.StreamConfig{}))
			if err != nil {
				t.Fatalf("Connect with credentials: %v", err)
			}
			defer bus.Close(ctx)
			declarePool(t, bus, sendPool, "b")
			if err := bus.Send(ctx, textEnvelope("a", "b", "1", "hi")); err != nil {
				t.Fatalf("send: %v", err)
			}
		})
	}
}

func TestConnectErrors(t *testing.T) {
	ctx := testCtx(t, 30*time.Second)
	tests := []struct {
		name    string
		opts    []agentbus.Option
		wantErr string
	}{
		{"unreachable", []agentbus.Option{agentbus.WithURL("nats://127.0.0.1:1"), agentbus.WithConnectTimeout(time.Second)}, "connect to nats://127.0.0.1:1"},
		{"pool size", []agentbus.Option{agentbus.WithPoolSize(0)}, "pool size 0"},
		{"missing seed", []agentbus.Option{agentbus.WithURL("nats://127.0.0.1:1"), agentbus.WithNKeySeedFile("/nonexistent/seed")}, "nkey seed"},
		{"bad route partitions", []agentbus.Option{agentbus.WithRoute("a", agentbus.PoolConfig{Name: "p", Partitions: -1}), agentbus.WithURL("nats://127.0.0.1:1")}, "partitions"},
		{"bad route agent", []agentbus.Option{agentbus.WithRoute("a.b", agentbus.PoolConfig{Name: "p"}), agentbus.WithURL("nats://127.0.0.1:1")}, "invalid agent ID"},
		{"bad route pool", []agentbus.Option{agentbus.WithRoute("a", agentbus.PoolConfig{Name: "p.q"}), agentbus.WithURL("nats://127.0.0.1:1")}, "invalid pool name"},
		{"bad route order", []agentbus.Option{agentbus.WithRoute("a", agentbus.PoolConfig{Name: "p", Order: "random"}), agentbus.WithURL("nats://127.0.0.1:1")}, "order"},
		{"bad unknown-agent mode", []agentbus.Option{agentbus.WithUnknownAgents(agentbus.WaitUnknown + 1), agentbus.WithURL("nats://127.0.0.1:1")}, "unknown-agent mode"},
		{"bad batch", []agentbus.Option{agentbus.WithBatch(0, 1)}, "batch limits"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bus, err := agentbus.Connect(ctx, tt.opts...)
			if err == nil {
				_ = bus.Close(ctx)
				t.Fatal("Connect succeeded")
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %q does not contain %q", err, tt.wantErr)
			}
		})
	}
}

// TestPoolAndMetrics sends over a pool of two connections and checks that
// both carry traffic and that the send metrics count what happened.
func TestPoolAndMetrics(t *testing.T) {
	srv := embeddedtest.RunServer(t)
	reg := prometheus.NewPedanticRegistry()
	ctx := testCtx(t, 30*time.Second)
	bus, err := agentbus.Connect(ctx, agentbus.WithURL(srv.ClientURL()), agentbus.WithPoolSize(2),
		agentbus.WithEnsureStreams(agentbus.StreamConfig{}), agentbus.WithRegisterer(reg))
	if err != nil {
		t.Fatal(err)
	}
	defer bus.Close(ctx)
	agent := func(i int) string { return "agent-" + string(rune('a'+i%26)) + string(rune('a'+i/26)) }
	var agents []string
	for i := range 64 {
		agents = append(agents, agent(i))
	}
	declarePool(t, bus, sendPool, agents...)
	for i := range 64 {
		if _, err := bus.SendAsync(ctx, textEnvelope("a", agent(i), "", "x")); err != nil {
			t.Fatal(err)
		}
	}
	if err := bus.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if n, err := testutil.GatherAndCount(reg, "a2abus_nats_out_msgs_total"); err != nil || n != 2 {
		t.Fatalf("%d connection series (err %v), want 2", n, err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	values := map[string][]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			v := m.GetCounter().GetValue() + m.GetGauge().GetValue()
			values[mf.GetName()] = append(values[mf.GetName()], v)
		}
	}
	for _, v := range values["a2abus_nats_out_msgs_total"] {
		if v == 0 {
			t.Errorf("a pooled connection sent nothing: %v", values["a2abus_nats_out_msgs_total"])
		}
	}
	if got := values["a2abus_send_messages_total"]; len(got) != 1 || got[0] != 64 {
		t.Errorf("a2abus_send_messages_total = %v, want 64", got)
	}
	if got := values["a2abus_send_buffered_messages"]; len(got) != 1 || got[0] != 0 {
		t.Errorf("a2abus_send_buffered_messages = %v after Flush, want 0", got)
	}
	if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) > 0 {
		t.Errorf("metric lint: %v %v", problems, err)
	}
}

// TestReconnectSameRegistry closes a bus and connects another with the same
// registry: the first one's collectors are gone.
func TestReconnectSameRegistry(t *testing.T) {
	srv := embeddedtest.RunServer(t)
	reg := prometheus.NewRegistry()
	ctx := testCtx(t, 30*time.Second)
	for i := range 2 {
		bus, err := agentbus.Connect(ctx, agentbus.WithURL(srv.ClientURL()),
			agentbus.WithEnsureStreams(agentbus.StreamConfig{}), agentbus.WithRegisterer(reg))
		if err != nil {
			t.Fatalf("connect %d: %v", i, err)
		}
		if err := bus.Close(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

func TestConnectNeedsTheStream(t *testing.T) {
	srv := embeddedtest.RunServer(t)
	ctx := testCtx(t, 30*time.Second)
	_, err := agentbus.Connect(ctx, agentbus.WithURL(srv.ClientURL()))
	if err == nil || !strings.Contains(err.Error(), "stream A2A not found") {
		t.Fatalf("Connect without a stream: %v", err)
	}
	_, err = agentbus.Connect(ctx, agentbus.WithURL(srv.ClientURL()),
		agentbus.WithEnsureStreams(agentbus.StreamConfig{Duplicates: time.Minute}),
		agentbus.WithSendTimeout(2*time.Minute))
	if err == nil || !strings.Contains(err.Error(), "duplicate window") {
		t.Fatalf("send timeout over the duplicate window: %v", err)
	}
}
