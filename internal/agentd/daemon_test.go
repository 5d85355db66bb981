package agentd

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/a2abus/a2abus/agentbus"
	"github.com/a2abus/a2abus/agentbus/a2anats/a2anatstest"
	"github.com/a2abus/a2abus/codec"
	"github.com/a2abus/a2abus/embedded/embeddedtest"
	"github.com/a2abus/a2abus/placement"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
)

// testConfig is an embedded daemon on free ports with its data in a test
// directory.
func testConfig(t *testing.T) Config {
	cfg := DefaultConfig()
	cfg.Data = t.TempDir()
	cfg.NATSPort = 0
	cfg.HTTP = "127.0.0.1:0"
	cfg.GRPC = "127.0.0.1:0"
	return cfg
}

func testLogger(t *testing.T) *slog.Logger {
	return embeddedtest.Logger(t)
}

func startDaemon(t *testing.T, cfg Config) *Daemon {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	d := NewDaemon(cfg, testLogger(t))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := d.Start(ctx); err != nil {
		t.Fatalf("start daemon: %v", err)
	}
	t.Cleanup(func() {
		if err := d.Shutdown(context.Background()); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return d
}

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

func TestDaemonEmbedded(t *testing.T) {
	d := startDaemon(t, testConfig(t))

	if code, body := get(t, d, "/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("/healthz = %d %q", code, body)
	}
	if code, body := get(t, d, "/readyz"); code != 200 {
		t.Errorf("/readyz = %d %q", code, body)
	}

	// Another process reaches the embedded server over TCP and finds the
	// stream, as `nats stream ls` would.
	nc, err := nats.Connect(d.NATSURL())
	if err != nil {
		t.Fatalf("connect to %s: %v", d.NATSURL(), err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	lister := js.StreamNames(context.Background())
	for n := range lister.Name() {
		names = append(names, n)
	}
	if err := lister.Err(); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(names, agentbus.StreamName) || !slices.Contains(names, agentbus.DeadLetterStreamName) {
		t.Errorf("streams %v, want %s and %s", names, agentbus.StreamName, agentbus.DeadLetterStreamName)
	}

	code, body := get(t, d, "/metrics")
	if code != 200 {
		t.Fatalf("/metrics = %d", code)
	}
	for _, want := range []string{"go_goroutines ", "process_cpu_seconds_total ", `a2abus_nats_connected{conn="agentd"} 1`, "go_build_info{"} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	problems, err := promlint.New(strings.NewReader(body)).Lint()
	if err != nil {
		t.Fatalf("metrics do not parse: %v", err)
	}
	for _, p := range problems {
		if strings.HasPrefix(p.Metric, "a2abus_") {
			t.Errorf("metric lint: %s: %s", p.Metric, p.Text)
		}
	}
}

func TestDaemonExternalNATS(t *testing.T) {
	srv := embeddedtest.RunServer(t)
	cfg := testConfig(t)
	cfg.NATS = srv.ClientURL()
	d := startDaemon(t, cfg)
	if code, body := get(t, d, "/readyz"); code != 200 {
		t.Fatalf("/readyz = %d %q", code, body)
	}
	if d.NATSURL() != srv.ClientURL() {
		t.Errorf("NATSURL %q, want %q", d.NATSURL(), srv.ClientURL())
	}

	// The server goes away: /readyz says so, /healthz does not care.
	if err := srv.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, body := get(t, d, "/readyz")
		if code == http.StatusServiceUnavailable {
			if !strings.Contains(body, "not ready") {
				t.Errorf("/readyz body %q gives no reason", body)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz still %d after the server stopped", code)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if code, _ := get(t, d, "/healthz"); code != 200 {
		t.Errorf("/healthz = %d while NATS is down", code)
	}
}

func TestDaemonNotReadyBeforeStart(t *testing.T) {
	d := NewDaemon(testConfig(t), testLogger(t))
	if err := d.ready(context.Background()); err == nil {
		t.Fatal("a daemon that has not started reports ready")
	}
}

func TestDaemonStartErrors(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	busyPort := busy.Addr().(*net.TCPAddr).Port
	fileNotDir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(fileNotDir, nil, 0o600); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		edit    func(*Config)
		wantErr []string
	}{
		{"http port in use", func(c *Config) { c.HTTP = busy.Addr().String() }, []string{"--http", "address already in use"}},
		{"nats port in use", func(c *Config) { c.NATSPort = busyPort }, []string{"--nats-port", "address already in use"}},
		{"unwritable data dir", func(c *Config) { c.Data = filepath.Join(fileNotDir, "data") }, []string{"--data", "store dir"}},
		{"unreachable nats", func(c *Config) { c.NATS = fmt.Sprintf("nats://127.0.0.1:%d", freePort(t)) }, []string{"--nats nats://127.0.0.1:", "no servers available"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(t)
			tt.edit(&cfg)
			d := NewDaemon(cfg, testLogger(t))
			err := d.Start(context.Background())
			if err == nil {
				_ = d.Shutdown(context.Background())
				t.Fatalf("Start succeeded, want an error")
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestMainUsageErrors(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantErr  string
	}{
		{"unknown flag", []string{"--bogus"}, exitUsage, "agentd: flag provided but not defined: -bogus"},
		{"unknown command", []string{"frobnicate"}, exitUsage, `agentd: unknown command "frobnicate"`},
		{"extra argument", []string{"run", "extra"}, exitUsage, `agentd: unexpected argument "extra"`},
		{"help", []string{"--help"}, exitOK, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := Main(context.Background(), tt.args, strings.NewReader(""), &stdout, &stderr, env(nil))
			if code != tt.wantCode {
				t.Fatalf("exit %d, want %d (stderr %q)", code, tt.wantCode, stderr.String())
			}
			if !strings.HasPrefix(stderr.String(), tt.wantErr) {
				t.Errorf("stderr %q, want it to start with %q", stderr.String(), tt.wantErr)
			}
			if lines := strings.Count(stderr.String(), "\n"); lines > 1 {
				t.Errorf("stderr has %d lines, want one", lines)
			}
			if tt.wantCode == exitOK && !strings.Contains(stdout.String(), "--nats-port") {
				t.Errorf("help does not list the flags: %q", stdout.String())
			}
		})
	}
}

// TestRunStopsOnCancel runs the daemon as Main does and cancels it as a
// signal would: it must return nil.
func TestRunStopsOnCancel(t *testing.T) {
	cfg := testConfig(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, cfg, testLogger(t)) }()
	time.Sleep(200 * time.Millisecond) // cancel in start-up or while running; both must end cleanly
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run returned %v after cancel, want nil", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("run did not return after cancel")
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func TestSendCommand(t *testing.T) {
	srv := embeddedtest.RunServer(t)
	cfg := testConfig(t)
	cfg.NATS = srv.ClientURL()
	startDaemon(t, cfg) // provisions the streams, as on a host
	var stdout, stderr bytes.Buffer
	// No pool serves weather yet: the send is refused at once, saying so,
	// and nothing is stored.
	code := Main(context.Background(), []string{"send", "--nats", srv.ClientURL(), "--to", "weather", "hello"},
		strings.NewReader(""), &stdout, &stderr, env(nil))
	if code != exitError || !strings.Contains(stderr.String(), "unknown agent") || strings.Count(stderr.String(), "\n") != 1 {
		t.Fatalf("send to an undeclared agent: exit %d, stderr %q; want exit %d and one line saying it is unknown", code, stderr.String(), exitError)
	}
	// Declared (as the weather agent's Serve would), the send is stored for
	// its pool.
	declarer := a2anatstest.ConnectBus(t, srv)
	if _, err := declarer.Declare(context.Background(), agentbus.PoolConfig{Name: "weather", Partitions: 4}, "weather"); err != nil {
		t.Fatal(err)
	}
	stdout.Reset()
	stderr.Reset()
	code = Main(context.Background(), []string{"send", "--nats", srv.ClientURL(), "--to", "weather", "will", "it", "rain?"},
		strings.NewReader(""), &stdout, &stderr, env(nil))
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	id := strings.TrimSpace(stdout.String())
	js, err := jetstream.New(embeddedtest.Connect(t, srv))
	if err != nil {
		t.Fatal(err)
	}
	s, err := js.Stream(context.Background(), agentbus.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.GetMsg(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	envs, err := codec.MustNew().DecodeBatch(nil, m.Data)
	if err != nil || len(envs) != 1 {
		t.Fatalf("stored batch: %v, %d envelopes", err, len(envs))
	}
	if e := envs[0]; e.ID != id || e.To != "weather" || e.Message.Text() != "will it rain?" {
		t.Fatalf("stored %+v, want ID %s to weather", e, id)
	}
	if pool, _, agent, err := placement.ParseSubject(m.Subject); err != nil || pool != "weather" || agent != "weather" {
		t.Fatalf("stored on %s (%v), want a subject of pool weather and agent weather", m.Subject, err)
	}

	for _, args := range [][]string{
		{"send", "hello"},
		{"send", "--to", "a.b", "--nats", srv.ClientURL(), "hello"},
		{"send", "--to", "x", "--nats", "nats://127.0.0.1:1", "hello"},
	} {
		stderr.Reset()
		if code := Main(context.Background(), args, strings.NewReader(""), io.Discard, &stderr, env(nil)); code == exitOK {
			t.Errorf("%v succeeded", args)
		}
		if strings.Count(stderr.String(), "\n") != 1 {
			t.Errorf("%v: stderr %q, want one line", args, stderr.String())
		}
	}
}

// TestDemoAgents runs agentd --demo and asks both demo agents through
// agentd send --wait, as the quick start does.
func TestDemoAgents(t *testing.T) {
	cfg := testConfig(t)
	cfg.Demo = true
	cfg.DemoDelay = 20 * time.Millisecond
	d := startDaemon(t, cfg)
	for _, tc := range []struct{ to, want string }{
		{"echo", "hello bus"},
		{"worker", "done: hello bus"},
	} {
		var stdout, stderr bytes.Buffer
		code := Main(context.Background(), []string{"send", "--nats", d.NATSURL(), "--to", tc.to, "--wait", "--timeout", "20s", "hello", "bus"},
			strings.NewReader(""), &stdout, &stderr, env(nil))
		if code != exitOK {
			t.Fatalf("send --wait to %s: exit %d: %s", tc.to, code, stderr.String())
		}
		if got := strings.TrimSpace(stdout.String()); got != tc.want {
			t.Errorf("reply from %s: %q, want %q", tc.to, got, tc.want)
		}
	}
	// Handled envelopes are counted once their batch is acknowledged, which
	// may come just after the reply.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		_, body := get(t, d, "/metrics")
		if strings.Contains(body, "a2abus_receive_handled_total 2") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/metrics does not count the 2 handled requests")
		}
	}
}
