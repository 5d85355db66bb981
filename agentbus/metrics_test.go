package agentbus_test

import (
	"strings"
	"testing"

	"github.com/a2abus/a2abus/agentbus"
	"github.com/a2abus/a2abus/embedded/embeddedtest"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestConnCollector(t *testing.T) {
	srv := embeddedtest.RunServer(t)
	nc := embeddedtest.Connect(t, srv)
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(agentbus.NewConnCollector(nc, "test"))

	for range 3 {
		if err := nc.Publish("x", []byte("hello")); err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	want := `
# HELP a2abus_nats_connected 1 when the NATS connection is connected, else 0.
# TYPE a2abus_nats_connected gauge
a2abus_nats_connected{conn="test"} 1
# HELP a2abus_nats_out_bytes_total Payload bytes sent on the NATS connection.
# TYPE a2abus_nats_out_bytes_total counter
a2abus_nats_out_bytes_total{conn="test"} 15
# HELP a2abus_nats_out_msgs_total Messages sent on the NATS connection.
# TYPE a2abus_nats_out_msgs_total counter
a2abus_nats_out_msgs_total{conn="test"} 3
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"a2abus_nats_connected", "a2abus_nats_out_bytes_total", "a2abus_nats_out_msgs_total"); err != nil {
		t.Fatal(err)
	}
	if n, err := testutil.GatherAndCount(reg); err != nil || n != 7 {
		t.Fatalf("gathered %d series (err %v), want 7", n, err)
	}

	nc.Close()
	if got := gathered(t, reg, "a2abus_nats_connected"); got != 0 {
		t.Fatalf("connected = %v after close, want 0", got)
	}
}

// gathered returns the sum of the gauge or counter series named name.
func gathered(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			sum := 0.0
			for _, m := range mf.GetMetric() {
				sum += m.GetGauge().GetValue() + m.GetCounter().GetValue()
			}
			return sum
		}
	}
	t.Fatalf("%s not gathered", name)
	return 0
}

// gatheredSeries returns the value of the gauge or counter series named
// name whose consumer label is consumer.
func gatheredSeries(t *testing.T, reg *prometheus.Registry, name, consumer string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "consumer" && l.GetValue() == consumer {
					return m.GetGauge().GetValue() + m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("%s{consumer=%q} not gathered", name, consumer)
	return 0
}
