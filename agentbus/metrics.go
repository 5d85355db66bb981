package agentbus

import (
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
)

// connCollector exports a NATS connection's statistics, read at scrape
// time so the publish path pays nothing for them.
type connCollector struct {
	nc *nats.Conn

	inMsgs, outMsgs, inBytes, outBytes, reconnects *prometheus.Desc
	connected, buffered                            *prometheus.Desc
}

// NewConnCollector returns a Prometheus collector for nc's statistics:
// messages and bytes in and out, reconnects, whether it is connected, and
// the bytes waiting in its reconnect buffer. Every series carries the label
// conn=name, so one registry can hold several connections.
func NewConnCollector(nc *nats.Conn, name string) prometheus.Collector {
	l := prometheus.Labels{"conn": name}
	d := func(n, help string) *prometheus.Desc {
		return prometheus.NewDesc("a2abus_nats_"+n, help, nil, l)
	}
	return &connCollector{
		nc:         nc,
		inMsgs:     d("in_msgs_total", "Messages received on the NATS connection."),
		outMsgs:    d("out_msgs_total", "Messages sent on the NATS connection."),
		inBytes:    d("in_bytes_total", "Payload bytes received on the NATS connection."),
		outBytes:   d("out_bytes_total", "Payload bytes sent on the NATS connection."),
		reconnects: d("reconnects_total", "Times the NATS connection reconnected."),
		connected:  d("connected", "1 when the NATS connection is connected, else 0."),
		buffered:   d("reconnect_buffered_bytes", "Bytes held in the reconnect buffer while disconnected."),
	}
}

func (c *connCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.inMsgs, c.outMsgs, c.inBytes, c.outBytes, c.reconnects, c.connected, c.buffered} {
		ch <- d
	}
}

func (c *connCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.nc.Stats()
	counter := func(d *prometheus.Desc, v uint64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v))
	}
	counter(c.inMsgs, s.InMsgs)
	counter(c.outMsgs, s.OutMsgs)
	counter(c.inBytes, s.InBytes)
	counter(c.outBytes, s.OutBytes)
	counter(c.reconnects, s.Reconnects)
	connected := 0.0
	if c.nc.IsConnected() {
		connected = 1
	}
	ch <- prometheus.MustNewConstMetric(c.connected, prometheus.GaugeValue, connected)
	buffered, err := c.nc.Buffered()
	if err != nil { // closed connection: nothing is buffered any more
		buffered = 0
	}
	ch <- prometheus.MustNewConstMetric(c.buffered, prometheus.GaugeValue, float64(buffered))
}
