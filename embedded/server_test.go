package embedded_test

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/a2abus/a2abus"
	"github.com/a2abus/a2abus/embedded"
	"github.com/a2abus/a2abus/embedded/embeddedtest"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func startCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), embeddedtest.StartTimeout)
	t.Cleanup(cancel)
	return ctx
}

// roundTrip proves JetStream works on nc: it creates a stream, publishes
// and reads the message back.
func roundTrip(t *testing.T, nc *nats.Conn) {
	t.Helper()
	ctx := startCtx(t)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	s, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "T", Subjects: []string{"t.>"}})
	if err != nil {
		t.Fatalf("create stream: %v", err)
	}
	if _, err := js.Publish(ctx, "t.x", []byte("hello")); err != nil {
		t.Fatalf("publish: %v", err)
	}
	m, err := s.GetLastMsgForSubject(ctx, "t.x")
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	if string(m.Data) != "hello" {
		t.Fatalf("got %q, want hello", m.Data)
	}
}

func TestStartConnectInProcessAndTCP(t *testing.T) {
	srv := embeddedtest.RunServer(t)
	roundTrip(t, embeddedtest.Connect(t, srv))

	url := srv.ClientURL()
	if !strings.HasPrefix(url, "nats://127.0.0.1:") {
		t.Fatalf("ClientURL = %q, want a loopback nats:// URL", url)
	}
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatalf("connect over TCP: %v", err)
	}
	defer nc.Close()
	if got := nc.MaxPayload(); got != embedded.DefaultMaxPayload {
		t.Errorf("max payload %d, want %d", got, embedded.DefaultMaxPayload)
	}
}

func TestWithoutListener(t *testing.T) {
	srv := embeddedtest.RunServer(t, embedded.WithoutListener())
	if url := srv.ClientURL(); url != "" {
		t.Fatalf("ClientURL = %q, want none", url)
	}
	roundTrip(t, embeddedtest.Connect(t, srv))
}

func TestShutdownIdempotentAndRemovesTempStore(t *testing.T) {
	srv, err := embedded.Start(startCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	dir := srv.StoreDir()
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("temporary store dir: %v", err)
	}
	nc, err := srv.Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	errs := make(chan error, 2)
	for range 2 {
		go func() { errs <- srv.Shutdown(context.Background()) }()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatalf("shutdown: %v", err)
		}
	}
	if err := srv.Shutdown(context.Background()); err != nil {
		t.Fatalf("third shutdown: %v", err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("temporary store dir %s still there after shutdown (stat: %v)", dir, err)
	}
	if _, err := srv.Connect(); err == nil {
		t.Fatal("connect after shutdown succeeded")
	}
}

func TestGivenStoreDirIsKept(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "js")
	srv, err := embedded.Start(startCtx(t), embedded.WithStoreDir(dir))
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("given store dir removed: %v", err)
	}
}

func TestStartErrors(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	busyPort := busy.Addr().(*net.TCPAddr).Port

	notDir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notDir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	badConf := filepath.Join(t.TempDir(), "bad.conf")
	if err := os.WriteFile(badConf, []byte("jetstream { max_file_store: [nonsense\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		opts    []embedded.Option
		wantErr string
	}{
		{"port in use", []embedded.Option{embedded.WithPort(busyPort)}, "address already in use"},
		{"store dir is a file", []embedded.Option{embedded.WithStoreDir(filepath.Join(notDir, "js"))}, "store dir"},
		{"missing config file", []embedded.Option{embedded.WithConfigFile(filepath.Join(t.TempDir(), "none.conf"))}, "none.conf"},
		{"invalid config file", []embedded.Option{embedded.WithConfigFile(badConf)}, "bad.conf"},
		{"port out of range", []embedded.Option{embedded.WithPort(70000)}, "out of range"},
		{"cluster without name", []embedded.Option{embedded.WithCluster(embedded.Cluster{Name: "c"})}, "server name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := append([]embedded.Option{embedded.WithLogger(embeddedtest.Logger(t))}, tt.opts...)
			srv, err := embedded.Start(startCtx(t), opts...)
			if err == nil {
				_ = srv.Shutdown(context.Background())
				t.Fatalf("Start succeeded, want an error containing %q", tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %q does not contain %q", err, tt.wantErr)
			}
		})
	}
}

func TestStartHonoursContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	srv, err := embedded.Start(ctx, embedded.WithStoreDir(t.TempDir()))
	if err == nil {
		_ = srv.Shutdown(context.Background())
		t.Fatal("Start with an ended context succeeded")
	}
	if !errors.Is(err, embedded.ErrNotReady) || !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v, want ErrNotReady wrapping context.Canceled", err)
	}
}

// TestRepositoryNATSConf loads the repository's nats.conf, both the file and
// the compiled-in copy, so that it cannot rot.
func TestRepositoryNATSConf(t *testing.T) {
	for _, src := range []struct {
		name string
		opt  embedded.Option
	}{
		{"file", embedded.WithConfigFile(filepath.Join("..", "nats.conf"))},
		{"compiled-in", embedded.WithConfig(a2abus.NATSConf)},
	} {
		t.Run(src.name, func(t *testing.T) {
			dir := t.TempDir()
			srv := embeddedtest.RunServer(t, src.opt, embedded.WithStoreDir(dir), embedded.WithMonitorPort(embedded.RandomPort))
			v, err := srv.NATSServer().Varz(nil)
			if err != nil {
				t.Fatal(err)
			}
			if v.MaxPayload != 16<<20 {
				t.Errorf("max_payload %d, want 16 MiB", v.MaxPayload)
			}
			if v.WriteDeadline != 10*time.Second {
				t.Errorf("write_deadline %v, want 10s", v.WriteDeadline)
			}
			js := srv.NATSServer().JetStreamConfig()
			if js.MaxStore != 64<<30 || js.MaxMemory != 1<<30 {
				t.Errorf("JetStream limits store %d memory %d, want 64 GiB and 1 GiB", js.MaxStore, js.MaxMemory)
			}
			if want := filepath.Join(dir, "jetstream"); srv.StoreDir() != want {
				t.Errorf("store dir %q, want %q under the option's directory", srv.StoreDir(), want)
			}
			if url := srv.ClusterURL(); url != "" {
				t.Errorf("standalone embedded server listens for routes at %s", url)
			}
			if srv.MonitorURL() == "" {
				t.Error("monitoring endpoint not enabled")
			}
			if !strings.HasPrefix(srv.ClientURL(), "nats://127.0.0.1:") {
				t.Errorf("client URL %q, want loopback from the options", srv.ClientURL())
			}
			roundTrip(t, embeddedtest.Connect(t, srv))
		})
	}
}
