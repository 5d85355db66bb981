package bench

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/a2abus/a2abus/embedded/embeddedtest"
)

// TestPoolSmall runs the pool scenario at a small size: every envelope is
// handled, in order per conversation, and with two members both handle
// some, so the busy agent's conversations spread over the pool.
func TestPoolSmall(t *testing.T) {
	srv := embeddedtest.RunServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := Pool(ctx, Env{URL: srv.ClientURL(), Progress: io.Discard},
		PoolConfig{Conversations: 16, PerConv: 5, Handler: 2 * time.Millisecond, Workers: 2, Members: []int{1, 2}, Partitions: 8})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Runs) != 2 {
		t.Fatalf("%d runs, want 2", len(res.Runs))
	}
	for _, r := range res.Runs {
		if r.OrderViolations != 0 || r.HandledPerS <= 0 {
			t.Errorf("run %+v: want no order violations and a rate", r)
		}
		sum := 0
		for _, n := range r.ByMember {
			sum += n
			if r.Members > 1 && n == 0 {
				t.Errorf("run %+v: a member handled nothing", r)
			}
		}
		if sum != r.Envelopes {
			t.Errorf("run %+v: %d handled, want %d", r, sum, r.Envelopes)
		}
	}
}

// TestPoolConfigValidate refuses counts out of range.
func TestPoolConfigValidate(t *testing.T) {
	for _, c := range []PoolConfig{
		{Members: []int{0}},
		{Members: []int{65}},
		{Workers: -1},
		{Conversations: -1},
	} {
		if err := c.Validate(); err == nil {
			t.Errorf("%+v: want an error", c)
		}
	}
	if err := (PoolConfig{}).Validate(); err != nil {
		t.Errorf("defaults: %v", err)
	}
}
