package agentd

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/a2abus/a2abus/agentbus"
	"github.com/a2abus/a2abus/internal/gateway"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

func (d *Daemon) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", d.readyz)
	mux.HandleFunc(gateway.Prefix, d.serveA2A)
	mux.Handle("GET /metrics", promhttp.HandlerFor(d.reg, promhttp.HandlerOpts{
		ErrorLog:          slogPrinter{d},
		EnableOpenMetrics: true,
	}))
	return mux
}

// readyz answers 200 when the NATS connection is up and the A2A stream
// exists, and 503 with the reason otherwise.
func (d *Daemon) readyz(w http.ResponseWriter, r *http.Request) {
	if err := d.ready(r.Context()); err != nil {
		http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	if p := d.consumers.Load(); p != nil && !p.consuming() {
		http.Error(w, fmt.Sprintf("not ready: no consumer of pool %s pulls its partitions yet", p.pool), http.StatusServiceUnavailable)
		return
	}
	if b := d.hosted.Load(); b != nil {
		// Consuming goes on, but what cannot be handled waits, held, for
		// the dead-letter stream: ready, degraded, with the reason.
		if failing, since, reason := b.DeadLetterHealth(); failing {
			fmt.Fprintf(w, "ready, degraded: dead letters cannot be stored since %s (their batches wait, held): %s\n",
				since.UTC().Format(time.RFC3339), reason)
			return
		}
	}
	fmt.Fprintln(w, "ready")
}

func (d *Daemon) ready(ctx context.Context) error {
	c := d.live.Load()
	if c == nil {
		return fmt.Errorf("starting or stopping")
	}
	if st := c.nc.Status(); st != nats.CONNECTED {
		return fmt.Errorf("NATS connection %s", st)
	}
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	if _, err := c.js.Stream(ctx, agentbus.StreamName); err != nil {
		return fmt.Errorf("stream %s: %w", agentbus.StreamName, err)
	}
	return nil
}

// slogPrinter lets promhttp report scrape errors through the daemon's log.
type slogPrinter struct{ d *Daemon }

func (p slogPrinter) Println(v ...any) { p.d.log.Error("metrics: " + fmt.Sprint(v...)) }
