package a2anats

import (
	"github.com/prometheus/client_golang/prometheus"
)

// pushMetrics are the Prometheus series of a PushSender; its agent label is
// bounded by the agents the process hosts (PushSender.For).
type pushMetrics struct {
	delivered *prometheus.CounterVec   // agent
	failed    *prometheus.CounterVec   // agent
	dropped   *prometheus.CounterVec   // agent, reason
	queued    *prometheus.GaugeVec     // agent
	seconds   *prometheus.HistogramVec // agent
}

// Reasons a push notification is dropped (a2abus_push_dropped_total).
const (
	dropTaskQueueFull = "task_queue_full" // its task's queue to the webhook was full: the oldest waiting one went
	dropQueueFull     = "queue_full"      // the sender held as many notifications or bytes as it may: this one went
	dropRejected      = "rejected"        // the webhook answered with a status not worth retrying, or the request could not be made
	dropGaveUp        = "gave_up"         // every attempt failed, or the retry time ran out
	dropClosed        = "closed"          // queued after Close, or still queued when Close's context ended
	dropUnencodable   = "unencodable"     // the event does not encode as JSON
)

// newPushMetrics makes the series and registers them on reg (nil: not
// registered):
//
//	a2abus_push_delivered_total{agent}           notifications a webhook accepted (2xx)
//	a2abus_push_failed_attempts_total{agent}     attempts that failed (then retried or given up)
//	a2abus_push_dropped_total{agent,reason}      notifications not delivered, by reason
//	a2abus_push_queued{agent}                    notifications queued or in delivery now
//	a2abus_push_delivery_seconds{agent}          from queued to delivered
func newPushMetrics(reg prometheus.Registerer) (*pushMetrics, error) {
	m := &pushMetrics{
		delivered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "a2abus_push_delivered_total", Help: "A2A push notifications a webhook accepted (2xx), by agent.",
		}, []string{"agent"}),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "a2abus_push_failed_attempts_total", Help: "A2A push notification attempts that failed (then retried or given up), by agent.",
		}, []string{"agent"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "a2abus_push_dropped_total", Help: "A2A push notifications not delivered, by agent and reason (task_queue_full, queue_full, rejected, gave_up, closed, unencodable).",
		}, []string{"agent", "reason"}),
		queued: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "a2abus_push_queued", Help: "A2A push notifications queued or in delivery now, by agent.",
		}, []string{"agent"}),
		seconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "a2abus_push_delivery_seconds", Help: "How long A2A push notifications took from queued to delivered, by agent.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 10), // 500 µs .. 131 s
		}, []string{"agent"}),
	}
	if reg == nil {
		return m, nil
	}
	if err := register(reg, "create one PushSender per registry and share it (For)", m.delivered, m.failed, m.dropped, m.queued, m.seconds); err != nil {
		return nil, err
	}
	return m, nil
}
