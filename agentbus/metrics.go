package agentbus

import (
	"fmt"

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

// register puts the bus's collectors on r: one connection collector per
// connection and the send-path collector.
// Close unregisters them again, so that a later bus can use the same r.
func (b *Bus) register(r prometheus.Registerer) error {
	var cs []prometheus.Collector
	for i, nc := range b.conns {
		name := b.cfg.conn.name
		if len(b.conns) > 1 {
			name = fmt.Sprintf("%s-%d", name, i)
		}
		cs = append(cs, NewConnCollector(nc, name))
	}
	b.recv.latency = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "a2abus_receive_handler_seconds",
		Help:    "Time handlers took per envelope, successful or not.",
		Buckets: prometheus.ExponentialBuckets(50e-6, 4, 10), // 50 µs .. 13 s
	})
	b.recv.batchSize = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "a2abus_receive_batch_envelopes",
		Help:    "Envelopes per batch received.",
		Buckets: prometheus.ExponentialBuckets(1, 4, 6), // 1 .. 1024
	})
	b.recv.partPending = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "a2abus_receive_partition_pending",
		Help: "Batches waiting in a partition this process pulls (its consumer's num_pending), read at each heartbeat.",
	}, []string{"consumer"})
	b.recv.partAckPending = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "a2abus_receive_partition_ack_pending",
		Help: "Batches of a partition this process pulls that are delivered and not yet acknowledged (0 or 1), read at each heartbeat.",
	}, []string{"consumer"})
	b.recv.partRedelivered = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "a2abus_receive_partition_redelivered",
		Help: "Batches of a partition this process pulls that were delivered more than once and are not yet acknowledged (its consumer's num_redelivered), read at each heartbeat.",
	}, []string{"consumer"})
	b.recv.partHandled = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "a2abus_receive_partition_handled_total",
		Help: "Envelopes handled successfully by this process, by partition consumer, counted when their batch is acknowledged (rate() gives handled per second).",
	}, []string{"consumer"})
	b.recv.partDead = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "a2abus_receive_partition_dead_letters_total",
		Help: "Envelopes and frames of a partition that this process stored in the dead-letter stream, by partition consumer.",
	}, []string{"consumer"})
	b.recv.seriesOwner = map[string]*membership{}
	b.recv.partsOwned = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "a2abus_receive_partitions_owned",
		Help: "Partitions this process pulls.",
	})
	cs = append(cs, &sendCollector{b: b, descs: sendDescs()}, b.recv.latency, b.recv.batchSize,
		b.recv.partPending, b.recv.partAckPending, b.recv.partRedelivered, b.recv.partHandled, b.recv.partDead,
		b.recv.partsOwned)
	b.registerer = r
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			b.unregister()
			return fmt.Errorf("agentbus: register metrics: %w", err)
		}
		b.registered = append(b.registered, c)
	}
	return nil
}

func (b *Bus) unregister() {
	for _, c := range b.registered {
		b.registerer.Unregister(c)
	}
	b.registered = nil
}

type sendCollector struct {
	b     *Bus
	descs map[string]*prometheus.Desc
}

func sendDescs() map[string]*prometheus.Desc {
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("a2abus_send_"+name, help, nil, nil)
	}
	return map[string]*prometheus.Desc{
		"messages":       d("messages_total", "Messages accepted by Send and SendAsync."),
		"bytes":          d("buffer_bytes_total", "Buffer bytes the messages accepted held (their pooled buffers' capacity, which the send buffer limit counts)."),
		"batches":        d("batches_total", "Batches published or failed."),
		"batch_messages": d("batch_messages_total", "Messages in the batches published or failed (divide by batches for the mean batch size)."),
		"batch_errors":   d("batch_errors_total", "Batches that failed after their retries."),
		"failed":         d("failed_messages_total", "Messages whose batch failed."),
		"retries":        d("publish_retries_total", "Batch publish attempts after the first."),
		"duplicates":     d("duplicate_batches_total", "Retried batches the stream had already stored (deduplicated by Nats-Msg-Id)."),
		"full":           d("stream_full_total", "Publish attempts refused because the stream was full."),
		"too_large":      d("too_large_total", "Messages refused before sending: over the max message size."),
		"invalid":        d("invalid_agent_total", "Messages refused before sending: invalid agent ID."),
		"buffered":       d("buffered_messages", "Messages accepted and not yet stored or failed."),
		"buffered_bytes": d("buffered_bytes", "Bytes of the buffered messages."),
		"inflight":       d("inflight_batches", "Batches being published."),
		"blocked":        d("blocked_sends", "Sends waiting for buffer space (backpressure)."),
		"handled":        prometheus.NewDesc("a2abus_receive_handled_total", "Envelopes handled successfully, counted when their batch is acknowledged (direct requests at once).", nil, nil),
		"failures":       prometheus.NewDesc("a2abus_receive_handler_failures_total", "Handler attempts that returned an error or panicked.", nil, nil),
		"dead":           prometheus.NewDesc("a2abus_receive_dead_letters_total", "Envelopes and frames stored in the dead-letter stream.", nil, nil),
		"poison":         prometheus.NewDesc("a2abus_receive_poison_frames_total", "Stored messages that could not be decoded.", nil, nil),
		"redelivered":    prometheus.NewDesc("a2abus_receive_redelivered_batches_total", "Batches delivered more than once (a member died, stopped before it finished them, or lost its hold).", nil, nil),
		"dl_failures":    prometheus.NewDesc("a2abus_receive_dead_letter_failures_total", "Dead letters the dead-letter stream refused or did not answer (the batch stays held and the publish is retried).", nil, nil),
		"hung":           prometheus.NewDesc("a2abus_receive_hung_handlers", "Handlers still running past their timeout and a grace (they ignore their canceled context): their workers are freed and their batches given up.", nil, nil),
		"held_bytes":     prometheus.NewDesc("a2abus_receive_held_bytes", "Frame bytes of the stored batches being decoded and handled (bounded per member by ServeMaxHeldBytes).", nil, nil),
		"held_waiting":   prometheus.NewDesc("a2abus_receive_held_waiting_batches", "Stored batches delivered and waiting, undecoded, for the held-bytes bound.", nil, nil),
		"lost_parts":     prometheus.NewDesc("a2abus_receive_partitions_lost_total", "Partitions whose pull ended without being asked to (their consumer deleted, their consume loop ended): each is started again at the next heartbeat.", nil, nil),
		"waited_turn":    prometheus.NewDesc("a2abus_receive_batches_waited_turn_total", "Batches delivered while another batch of their partition was still being handled here (a server that restarted and forgot a delivery gives it again): each waited for the other to end.", nil, nil),
		"fenced":         prometheus.NewDesc("a2abus_receive_fenced_batches_total", "Batches given up because their hold could not be confirmed before the ack wait would pass (a stalled or cut-off member): their handlers were canceled.", nil, nil),
		"pool_created":   prometheus.NewDesc("a2abus_codec_buffers_created_total", "Codec buffers allocated because the pool had none.", nil, nil),
		"pool_reused":    prometheus.NewDesc("a2abus_codec_buffers_reused_total", "Codec buffer requests served from the pool.", nil, nil),
	}
}

func (c *sendCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

func (c *sendCollector) Collect(ch chan<- prometheus.Metric) {
	bs := c.b.batch.Stats()
	ps := c.b.codec.Pool().Stats()
	st := &c.b.stats
	counter := func(name string, v uint64) {
		ch <- prometheus.MustNewConstMetric(c.descs[name], prometheus.CounterValue, float64(v))
	}
	gauge := func(name string, v float64) {
		ch <- prometheus.MustNewConstMetric(c.descs[name], prometheus.GaugeValue, v)
	}
	counter("messages", bs.ItemsAdded)
	counter("bytes", bs.BytesAdded)
	counter("batches", bs.BatchesFlushed)
	counter("batch_messages", bs.ItemsFlushed)
	counter("batch_errors", bs.FlushErrors)
	counter("failed", bs.ItemsFailed)
	counter("retries", st.retries.Load())
	counter("duplicates", st.duplicate.Load())
	counter("full", st.full.Load())
	counter("too_large", st.tooLarge.Load())
	counter("invalid", st.invalid.Load())
	rc := &c.b.recv
	counter("handled", rc.handled.Load())
	counter("failures", rc.failures.Load())
	counter("dead", rc.dead.Load())
	counter("poison", rc.poison.Load())
	counter("redelivered", rc.redeliver.Load())
	counter("fenced", rc.fenced.Load())
	counter("lost_parts", rc.lostParts.Load())
	counter("waited_turn", rc.waitedTurn.Load())
	gauge("hung", float64(rc.hung.Load()))
	gauge("held_bytes", float64(rc.heldBytes.Load()))
	gauge("held_waiting", float64(rc.heldWaiting.Load()))
	counter("dl_failures", rc.dlFailures.Load())
	counter("pool_created", ps.Created)
	counter("pool_reused", ps.Reused)
	gauge("buffered", float64(bs.BufferedItems))
	gauge("buffered_bytes", float64(bs.BufferedBytes))
	gauge("inflight", float64(bs.InFlightBatches))
	gauge("blocked", float64(bs.BlockedAdds))
}
