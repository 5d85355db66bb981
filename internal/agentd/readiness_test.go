package agentd

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/a2abus/a2abus/agentbus"
	"github.com/a2abus/a2abus/embedded/embeddedtest"
	"github.com/a2abus/a2abus/placement"
	"github.com/nats-io/nats.go/jetstream"
)

// TestReadyMeansConsuming (issue 15): an agentd that hosts agents answers
// /readyz 200 only once its consumers pull: at the first 200, every
// partition consumer of its pool exists and is pulled.
func TestReadyMeansConsuming(t *testing.T) {
	srv := embeddedtest.RunServer(t)
	cfg := testConfig(t)
	cfg.NATS = srv.ClientURL()
	cfg.Demo = true
	cfg.Partitions = 16
	d := startDaemon(t, cfg)
	url := "http://" + d.HTTPAddr() + "/readyz"
	deadline := time.Now().Add(time.Minute)
	for {
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz still %d a minute after start", resp.StatusCode)
		}
		time.Sleep(5 * time.Millisecond)
	}
	js, err := jetstream.New(embeddedtest.Connect(t, srv))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pool, err := placement.NewPool(cfg.Pool, cfg.Partitions, placement.OrderConversation)
	if err != nil {
		t.Fatal(err)
	}
	for n := range cfg.Partitions {
		name, _ := pool.ConsumerName(n)
		c, err := js.Consumer(ctx, agentbus.StreamName, name)
		if err != nil {
			t.Fatalf("/readyz said ready while consumer %s did not exist: %v", name, err)
		}
		// Its pull request reaches the server a moment after the
		// consumer starts.
		for c.CachedInfo().NumWaiting == 0 {
			if ctx.Err() != nil {
				t.Fatalf("consumer %s: nobody pulls it", name)
			}
			time.Sleep(5 * time.Millisecond)
			if _, err := c.Info(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
}
