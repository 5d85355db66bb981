package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/a2abus/a2abus/agentbus"
	"github.com/a2abus/a2abus/embedded"
	"github.com/nats-io/nats.go"
)

// Env is where a scenario runs: a NATS server, reached at URL by every
// connection the scenario opens (each measured party dials its own, as
// separate processes would), and where it reports progress.
type Env struct {
	URL      string
	Progress io.Writer // one line per step, and the buses' warnings; may be io.Discard
}

// logger is the option that sends the warnings of the buses a scenario
// opens to env.Progress.
func (env Env) logger() agentbus.Option {
	w := env.Progress
	if w == nil {
		w = io.Discard
	}
	return agentbus.WithLogger(slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn})))
}

// StartEmbedded starts a single file-storage server for a benchmark in dir
// and returns it with its Env. The caller shuts it down.
func StartEmbedded(ctx context.Context, dir string, progress io.Writer) (*embedded.Server, Env, error) {
	srv, err := embedded.Start(ctx, embedded.WithStoreDir(dir))
	if err != nil {
		return nil, Env{}, err
	}
	return srv, Env{URL: srv.ClientURL(), Progress: progress}, nil
}

func (e Env) connect(name string) (*nats.Conn, error) {
	nc, err := nats.Connect(e.URL, nats.Name(name))
	if err != nil {
		return nil, fmt.Errorf("bench: connect to %s: %w", e.URL, err)
	}
	return nc, nil
}

func (e Env) progress(format string, args ...any) {
	if e.Progress != nil {
		fmt.Fprintf(e.Progress, format+"\n", args...)
	}
}

// rate returns n per second of d.
func rate(n int, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}
