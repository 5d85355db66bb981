package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/a2abus/a2abus/embedded/embeddedtest"
)

// TestA2ASmall runs the a2a scenario at a small size: every party makes
// every call and gets its own text back (A2A fails otherwise), and every
// figure is positive. No timing is asserted.
func TestA2ASmall(t *testing.T) {
	srv := embeddedtest.RunServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cfg := A2AConfig{Requests: 320, Clients: 16, Sequential: 40}
	res, err := A2A(ctx, Env{URL: srv.ClientURL(), Progress: io.Discard}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Runs) != 2*len(a2aParties) {
		t.Fatalf("%d runs, want %d", len(res.Runs), 2*len(a2aParties))
	}
	for _, r := range res.Runs {
		want, clients := cfg.Requests, cfg.Clients
		if r.Phase == PhaseSequential {
			want, clients = cfg.Sequential, 1
		}
		if r.Requests != want || r.OK != want || r.Clients != clients {
			t.Errorf("run %+v: want %d calls answered from %d clients", r, want, clients)
		}
		if r.Seconds <= 0 || r.RPS <= 0 || r.P50us <= 0 || r.P99us < r.P50us {
			t.Errorf("run %+v: want positive figures, p99 ≥ p50", r)
		}
	}
	// Every float in the report (rates, percentiles, ratios) is positive.
	v := reflect.ValueOf(res)
	for i := range v.NumField() {
		if f := v.Field(i); f.Kind() == reflect.Float64 && f.Float() <= 0 {
			t.Errorf("%s = %v, want > 0", v.Type().Field(i).Name, f.Float())
		}
	}

	var out bytes.Buffer
	if err := WriteA2A(&out, res, true); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	var got map[string]any
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &got); err != nil {
		t.Fatalf("last line is not JSON: %v", err)
	}
	for _, k := range []string{"nats_durable_rps", "nats_direct_rps", "http_rps", "gateway_rps", "http_p50_us", "gateway_seq_p50_us",
		"nats_vs_http_throughput", "nats_vs_http_p50", "gateway_vs_direct_http_p50"} {
		if f, ok := got[k].(float64); !ok || f <= 0 {
			t.Errorf("JSON %s = %v, want a positive number", k, got[k])
		}
	}
	out.Reset()
	if err := WriteA2A(&out, res, false); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"nats_durable", "gateway_direct", "target ≥ 2.00", "target ≤ 0.75", "target ≤ 2.00"} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("table lacks %q:\n%s", s, out.String())
		}
	}
}

// TestA2AOneParty: a run limited to one party reports it alone, and the
// ratios that need another stay zero.
func TestA2AOneParty(t *testing.T) {
	srv := embeddedtest.RunServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := A2A(ctx, Env{URL: srv.ClientURL(), Progress: io.Discard},
		A2AConfig{Requests: 40, Clients: 4, Sequential: 10, Parties: []string{A2ANATSDirect}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Runs) != 2 || res.NATSDirectRPS <= 0 || res.HTTPRPS != 0 || res.NATSDirectVsHTTPThroughput != 0 {
		t.Fatalf("result %+v", res)
	}
}

func TestA2AConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cfg     A2AConfig
		wantErr string
	}{
		{"defaults", A2AConfig{}, ""},
		{"fewer requests than clients", A2AConfig{Requests: 10, Clients: 64}, "at least one per client"},
		{"unknown party", A2AConfig{Parties: []string{"grpc"}}, "unknown party"},
		{"tiny sequential", A2AConfig{Sequential: 3}, "sequential"},
		{"huge message", A2AConfig{MsgSize: 2 << 20}, "message size"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("Validate: %v, want %q", err, tc.wantErr)
			}
		})
	}
}
