package bench

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/a2abus/a2abus/agentbus"
	"github.com/a2abus/a2abus/embedded/embeddedtest"
	"github.com/nats-io/nats.go/jetstream"
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

// TestThroughputRefusesBusInUse: the bench must not touch a stream that
// holds messages.
func TestThroughputRefusesBusInUse(t *testing.T) {
	srv := embeddedtest.RunServer(t)
	nc := embeddedtest.Connect(t, srv)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if err := agentbus.EnsureStreams(ctx, js, agentbus.StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "a2a.in.someone.p0001.someone", []byte("waiting")); err != nil {
		t.Fatal(err)
	}
	_, err = Throughput(ctx, Env{URL: srv.ClientURL(), Progress: io.Discard},
		ThroughputConfig{Msgs: 100, Senders: []int{1}, Parties: []string{"bus"}})
	if err == nil || !strings.Contains(err.Error(), "refusing") {
		t.Fatalf("Throughput on a stream in use: %v", err)
	}
	s, _ := js.Stream(ctx, agentbus.StreamName)
	if info, _ := s.Info(ctx); info.State.Msgs != 1 {
		t.Fatalf("the waiting message is gone: %d messages", info.State.Msgs)
	}
}

// TestE2EAndLatencySmall runs the end-to-end and latency scenarios at a
// small size: both complete and report positive figures.
func TestE2EAndLatencySmall(t *testing.T) {
	srv := embeddedtest.RunServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	env := Env{URL: srv.ClientURL(), Progress: io.Discard}
	e2e, err := E2E(ctx, env, ThroughputConfig{Msgs: 3000, Destinations: 8})
	if err != nil {
		t.Fatal(err)
	}
	if e2e.BusMsgsPerS <= 0 || e2e.RawJSMsgsPerS <= 0 || e2e.RatioVsRawJS <= 0 {
		t.Fatalf("e2e %+v", e2e)
	}
	lat, err := Latency(ctx, env, LatencyConfig{Requests: 50})
	if err != nil {
		t.Fatal(err)
	}
	if lat.CoreP50us <= 0 || lat.RawJSP50us <= 0 || lat.RawJSP99us < lat.RawJSP50us || lat.DurableVsRawJS <= 0 || lat.DirectP50us <= 0 || lat.DurableP50us <= 0 || lat.DurableP99us < lat.DurableP50us {
		t.Fatalf("latency %+v", lat)
	}
}

// TestDurabilitySmall runs every durability profile at a small size: each
// stores every message, the cluster profiles on three servers with three
// replicas, and reports positive figures.
func TestDurabilitySmall(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	res, err := Durability(ctx, t.TempDir(), DurabilityConfig{Msgs: 2000}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Runs) != len(DurabilityProfiles) {
		t.Fatalf("%d runs, want one per profile", len(res.Runs))
	}
	for _, r := range res.Runs {
		if r.BusMsgsPerS <= 0 || r.RawJSMsgsPerS <= 0 || r.BusVsFirst <= 0 {
			t.Errorf("%s: %+v", r.Name, r)
		}
	}
	var out strings.Builder
	if err := WriteDurability(&out, res, false); err != nil || !strings.Contains(out.String(), "R3, sync always") {
		t.Errorf("table %q (%v)", out.String(), err)
	}
	if _, err := Durability(ctx, t.TempDir(), DurabilityConfig{Profiles: []DurabilityProfile{{Name: "bad", Servers: 1, Replicas: 3}}}, io.Discard); err == nil {
		t.Error("3 replicas on one server were accepted")
	}
}
