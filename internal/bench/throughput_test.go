package bench

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/a2abus/a2abus/embedded/embeddedtest"
)

// TestThroughputSmall runs the scenario at a small size: every party
// completes without errors and the durable ones store every message.
func TestThroughputSmall(t *testing.T) {
	srv := embeddedtest.RunServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := Throughput(ctx, Env{URL: srv.ClientURL(), Progress: io.Discard},
		ThroughputConfig{Msgs: 5000, Destinations: 8, Senders: []int{1, 2}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Runs) != 6 {
		t.Fatalf("%d runs, want 6", len(res.Runs))
	}
	for _, r := range res.Runs {
		if r.Errors != 0 || !r.StoredOK || r.MsgsPerS <= 0 {
			t.Errorf("run %+v: want no errors, everything stored and a rate", r)
		}
	}
	if res.RatioVsRawJS <= 0 || res.RatioVsCore <= 0 {
		t.Errorf("ratios %v %v", res.RatioVsRawJS, res.RatioVsCore)
	}
}
