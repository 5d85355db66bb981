package agentd

import (
	"context"
	"testing"
	"time"

	"github.com/a2abus/a2abus/embedded/embeddedtest"
)

// TestNATSOrderKept (issue 15): agentd connects to the first server its
// --nats lists, every time, instead of one the client picks at random:
// an agentd per server runs on its own server.
func TestNATSOrderKept(t *testing.T) {
	c := embeddedtest.Cluster(t, 3)
	embeddedtest.WaitPlacement(t, c.Connect(), 3)
	for start := range 6 {
		first := (start + 1) % c.Size()
		urls := c.Server(first).ClientURL()
		for i := range c.Size() {
			if i != first {
				urls += "," + c.Server(i).ClientURL()
			}
		}
		cfg := testConfig(t)
		cfg.NATS = urls
		d := NewDaemon(cfg, testLogger(t))
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		if err := d.Start(ctx); err != nil {
			cancel()
			t.Fatalf("start %d: %v", start, err)
		}
		cancel()
		got := d.nc.ConnectedUrl()
		if err := d.Shutdown(context.Background()); err != nil {
			t.Errorf("shutdown %d: %v", start, err)
		}
		if got != c.Server(first).ClientURL() {
			t.Fatalf("start %d with --nats %s: connected to %s, want the first, %s", start, urls, got, c.Server(first).ClientURL())
		}
	}
}
