package embeddedtest

import (
	"context"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/a2abus/a2abus/embedded"
	"github.com/nats-io/nats.go"
)

// StartTimeout bounds how long a test waits for a server to become ready.
const StartTimeout = 30 * time.Second

// RunServer starts a single embedded server with its store in a test
// temporary directory and shuts it down when the test ends. The options are
// applied after the test defaults, so they may override them.
func RunServer(t testing.TB, opts ...embedded.Option) *embedded.Server {
	t.Helper()
	all := append([]embedded.Option{
		embedded.WithStoreDir(t.TempDir()),
		embedded.WithLogger(Logger(t)),
	}, opts...)
	ctx, cancel := context.WithTimeout(context.Background(), StartTimeout)
	defer cancel()
	srv, err := embedded.Start(ctx, all...)
	if err != nil {
		t.Fatalf("start embedded NATS server: %v", err)
	}
	t.Cleanup(func() { shutdown(t, srv) })
	return srv
}

// Connect opens an in-process connection to srv, closed when the test ends.
func Connect(t testing.TB, srv *embedded.Server, opts ...nats.Option) *nats.Conn {
	t.Helper()
	nc, err := srv.Connect(opts...)
	if err != nil {
		t.Fatalf("connect to embedded NATS server: %v", err)
	}
	t.Cleanup(nc.Close)
	return nc
}

func shutdown(t testing.TB, srv *embedded.Server) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), StartTimeout)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Errorf("shut down embedded NATS server: %v", err)
	}
}

// Logger returns a logger that writes to t's log at the level named by
// A2ABUS_TEST_NATS_LOG (default error). It stops writing when the test
// ends, so late server goroutines cannot log into a finished test.
func Logger(t testing.TB) *slog.Logger {
	level := slog.LevelError
	switch strings.ToLower(os.Getenv("A2ABUS_TEST_NATS_LOG")) {
	case "debug", "trace":
		level = slog.LevelDebug
	case "info":
		level = slog.LevelInfo
	case "warn":
		level = slog.LevelWarn
	}
	w := &testWriter{t: t}
	t.Cleanup(w.close)
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

type testWriter struct {
	mu     sync.Mutex
	t      testing.TB
	closed bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.closed {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func (w *testWriter) close() {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
}
