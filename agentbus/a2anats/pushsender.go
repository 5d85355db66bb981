package a2anats

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/a2aproject/a2a-go/v2/a2a"
	"github.com/a2aproject/a2a-go/v2/a2asrv/push"
	"github.com/prometheus/client_golang/prometheus"
)

// PushSender delivers the A2A push notifications of the tasks a process
// runs to their webhooks, from a queue, so that a task never waits for a
// webhook. The SDK's push.HTTPPushSender posts each notification inline,
// in the task's event processing: a webhook that is slow or down holds
// the task (and its caller) for its timeout on every event. PushSender's
// SendPush queues the notification and returns at once; workers post it.
//
// A notification is posted as the SDK posts it: a2a.StreamResponse JSON,
// Content-Type application/json, the config's token in the
// A2A-Notification-Token header, and its authentication as an
// Authorization header, "<scheme> <credentials>" (Bearer and Basic spelled
// so whatever their case). Redirects are not followed.
//
// Order: the notifications of one task to one config are posted one at a
// time, in the order the SDK gave them; a failed one is retried before the
// next is posted. Notifications of other tasks, or to other configs, never
// wait behind it, and at most PushHostLimit posts go to one webhook host at
// once, so a few webhooks that hang cannot take every worker.
//
// Retries: a post that fails (no connection, a timeout, 408, 425, 429 or
// 5xx) is retried with exponential back-off and jitter (a Retry-After the
// webhook sends lengthens the wait, up to the longest back-off), up to
// PushMaxAttempts attempts and PushMaxRetryTime; then it is given up.
// Another status is a refusal, not retried.
//
// Bounds: at most PushMaxQueued notifications per task and config (past
// it the oldest waiting one is dropped, so that the latest state gets
// through) and in all, and PushMaxQueuedBytes of bodies in all (past them
// the new notification is dropped). Nothing is dropped silently: every
// notification not delivered is counted in a2abus_push_dropped_total with
// its reason and logged (a queue's overflows at its 1st, 2nd, 4th, 8th...
// drop, with the count). The queue is in memory: notifications queued in
// a process that dies are lost; the task's configs are in KV
// (PushConfigStore), so whichever member runs the task next delivers what
// it does.
//
// SendPush never returns an error: a2asrv fails the task when its sender
// does, and a webhook's trouble is not the task's. Close delivers what is
// queued until its context ends. A PushSender serves every agent of a
// process (For) and is safe for concurrent use.
type PushSender struct {
	client  *http.Client
	log     *slog.Logger
	reg     prometheus.Registerer
	metrics *pushMetrics
	// limits and retries
	workers, hostLimit, perQueue, maxItems int
	maxBytes                               int64
	attempts                               int
	backoff, maxBackoff, maxRetryTime      time.Duration

	mu           sync.Mutex
	wake         *sync.Cond // a queue is ready, or the sender stops
	queues       map[pushKey]*pushQueue
	ready        []*pushQueue // queues whose head waits for a worker, in turn
	hosts        map[string]*pushHost
	items        int   // notifications held
	bytes        int64 // their bodies' bytes
	closing      bool  // Close was called: nothing more is queued
	stopped      bool  // Close's wait ended: workers stop
	drained      chan struct{}
	closeDropped int // notifications dropped because closing (log at powers of two)
	fullDropped  int // dropped because the sender was full (log at powers of two)
	undelivered  int // notifications dropped when Close stopped the sender

	reqCtx    context.Context // ends posts in flight when Close gives up
	cancel    context.CancelFunc
	running   sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

// pushKey names the queue of one task's notifications to one config.
type pushKey struct {
	agent, task, config, url string
}

// States of a pushQueue.
const (
	queueWaiting  = iota // in ready (or parked at its host): its head waits for a worker
	queuePosting         // a worker posts its head
	queueRetrying        // its head failed and waits for its next attempt
)

type pushQueue struct {
	key     pushKey
	host    string // scheme://host of the webhook, for PushHostLimit
	state   int
	items   []*notification // items[0] is the one posted or retried
	timer   *time.Timer     // the retry's, while retrying
	dropped int             // overflows of this queue (logged at powers of two)
}

// pushHost counts the posts in flight to one webhook host; queues whose
// turn came while it was at its limit wait parked.
type pushHost struct {
	inflight int
	parked   []*pushQueue
}

// notification is one push notification: the request's parts, made when
// it is queued.
type notification struct {
	url      string
	hook     string // the URL without credentials, query or fragment, for logs
	header   http.Header
	body     []byte
	queued   time.Time
	first    time.Time // its first attempt
	attempts int
	lastErr  string
}

// PushSenderOption configures a PushSender.
type PushSenderOption func(*PushSender) error

func positive(name string, n int) error {
	if n < 1 {
		return fmt.Errorf("a2anats: push %s %d: want at least 1", name, n)
	}
	return nil
}

// PushWorkers sets how many notifications are posted at once (default 32).
func PushWorkers(n int) PushSenderOption {
	return func(s *PushSender) error { s.workers = n; return positive("workers", n) }
}

// PushHostLimit sets how many notifications are posted at once to one
// webhook host (scheme, host and port; default 4).
func PushHostLimit(n int) PushSenderOption {
	return func(s *PushSender) error { s.hostLimit = n; return positive("host limit", n) }
}

// PushMaxQueued bounds the notifications held for one task and config
// (default 64) and in all (default 8192).
func PushMaxQueued(perTask, total int) PushSenderOption {
	return func(s *PushSender) error {
		s.perQueue, s.maxItems = perTask, total
		return errors.Join(positive("queue per task", perTask), positive("queue", total))
	}
}

// PushMaxQueuedBytes bounds the bytes of the notifications held in all
// (default 64 MiB).
func PushMaxQueuedBytes(n int64) PushSenderOption {
	return func(s *PushSender) error {
		s.maxBytes = n
		if n < 1 {
			return fmt.Errorf("a2anats: push queue bytes %d: want at least 1", n)
		}
		return nil
	}
}

// PushMaxAttempts sets how many times a notification is posted before it
// is given up (default 8).
func PushMaxAttempts(n int) PushSenderOption {
	return func(s *PushSender) error { s.attempts = n; return positive("attempts", n) }
}

// PushBackoff sets the wait before the second attempt (default 500 ms),
// doubled before each next one up to longest (default 30 s), with jitter.
func PushBackoff(first, longest time.Duration) PushSenderOption {
	return func(s *PushSender) error {
		s.backoff, s.maxBackoff = first, longest
		if first <= 0 || longest < first {
			return fmt.Errorf("a2anats: push back-off %v up to %v: want 0 < first <= longest", first, longest)
		}
		return nil
	}
}

// PushMaxRetryTime bounds how long after its first attempt a notification
// is retried (default 2 minutes).
func PushMaxRetryTime(d time.Duration) PushSenderOption {
	return func(s *PushSender) error {
		s.maxRetryTime = d
		if d <= 0 {
			return fmt.Errorf("a2anats: push retry time %v: want positive", d)
		}
		return nil
	}
}

// PushHTTPClient sets the client that posts the notifications (default: a
// client with a 10 s timeout per attempt that follows no redirect).
func PushHTTPClient(c *http.Client) PushSenderOption {
	return func(s *PushSender) error {
		if c == nil {
			return errors.New("a2anats: nil push HTTP client")
		}
		s.client = c
		return nil
	}
}

// PushLogger sets the logger of notifications not delivered (default
// slog.Default()).
func PushLogger(l *slog.Logger) PushSenderOption {
	return func(s *PushSender) error {
		if l == nil {
			return errors.New("a2anats: nil logger")
		}
		s.log = l
		return nil
	}
}

// PushRegisterer registers the sender's metrics on reg (see
// newPushMetrics; default: not registered).
func PushRegisterer(reg prometheus.Registerer) PushSenderOption {
	return func(s *PushSender) error { s.reg = reg; return nil }
}

// DefaultPushTimeout is how long the default client waits for a webhook's
// answer to one attempt.
const DefaultPushTimeout = 10 * time.Second

// NewPushSender starts a PushSender's workers. Close it to stop them.
func NewPushSender(opts ...PushSenderOption) (*PushSender, error) {
	s := &PushSender{
		client: &http.Client{Timeout: DefaultPushTimeout, CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		}},
		log:     slog.Default(),
		workers: 32, hostLimit: 4, perQueue: 64, maxItems: 8192, maxBytes: 64 << 20,
		attempts: 8, backoff: 500 * time.Millisecond, maxBackoff: 30 * time.Second, maxRetryTime: 2 * time.Minute,
		queues:  map[pushKey]*pushQueue{},
		hosts:   map[string]*pushHost{},
		drained: make(chan struct{}),
	}
	for _, opt := range opts {
		if err := opt(s); err != nil {
			return nil, err
		}
	}
	m, err := newPushMetrics(s.reg)
	if err != nil {
		return nil, err
	}
	s.metrics = m
	s.wake = sync.NewCond(&s.mu)
	s.reqCtx, s.cancel = context.WithCancel(context.Background())
	for range s.workers {
		s.running.Add(1)
		go s.work()
	}
	return s, nil
}

// For returns the push.Sender of agentID's handler
// (a2asrv.WithPushNotifications): its notifications counted and logged
// under its name.
func (s *PushSender) For(agentID string) push.Sender { return agentSender{s, agentID} }

type agentSender struct {
	s     *PushSender
	agent string
}

// SendPush implements push.Sender: it queues the notification and
// returns nil (see PushSender).
func (a agentSender) SendPush(_ context.Context, config *a2a.PushConfig, event a2a.Event) error {
	a.s.enqueue(a.agent, config, event)
	return nil
}

// enqueue queues a notification of event to config, or drops it.
func (s *PushSender) enqueue(agent string, config *a2a.PushConfig, event a2a.Event) {
	var task a2a.TaskID
	if event != nil {
		task = event.TaskInfo().TaskID
	}
	if config == nil {
		return
	}
	key := pushKey{agent: agent, task: string(task), config: config.ID, url: config.URL}
	body, err := json.Marshal(a2a.StreamResponse{Event: event})
	if err != nil {
		s.drop(key, dropUnencodable, 0, err.Error())
		return
	}
	if err := ValidatePushConfig(config); err != nil {
		s.drop(key, dropRejected, 0, err.Error())
		return
	}
	u, _ := url.Parse(config.URL) // ValidatePushConfig parsed it
	n := &notification{url: config.URL, hook: hookName(u), header: pushHeader(config), body: body, queued: time.Now()}

	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closing:
		s.closeDropped++
		if isPow2(s.closeDropped) {
			s.log.Warn("push notification dropped: the sender is closing", "agent", agent, "task", task, "webhook", n.hook, "dropped_while_closing", s.closeDropped)
		}
		s.metrics.dropped.WithLabelValues(agent, dropClosed).Inc()
		return
	case s.items >= s.maxItems || s.bytes+int64(len(body)) > s.maxBytes:
		s.fullDropped++
		if isPow2(s.fullDropped) {
			s.log.Warn("push notification dropped: the push queue is full", "agent", agent, "task", task, "webhook", n.hook,
				"queued", s.items, "queued_bytes", s.bytes, "bytes", len(body), "dropped_when_full", s.fullDropped)
		}
		s.metrics.dropped.WithLabelValues(agent, dropQueueFull).Inc()
		return
	}
	q := s.queues[key]
	if q == nil {
		q = &pushQueue{key: key, host: strings.ToLower(u.Scheme) + "://" + strings.ToLower(u.Host), state: queueWaiting}
		s.queues[key] = q
		s.ready = append(s.ready, q)
		s.wake.Signal()
	}
	if len(q.items) >= s.perQueue {
		// The oldest that waits goes, so that the latest state gets
		// through; the head is being posted or retried.
		i := 0
		if q.state != queueWaiting {
			i = 1
		}
		if i >= len(q.items) {
			q.dropped++
			s.logOverflow(q, n.hook)
			s.metrics.dropped.WithLabelValues(agent, dropTaskQueueFull).Inc()
			return
		}
		old := q.items[i]
		q.items = slices.Delete(q.items, i, i+1)
		s.release(agent, old)
		q.dropped++
		s.logOverflow(q, n.hook)
		s.metrics.dropped.WithLabelValues(agent, dropTaskQueueFull).Inc()
	}
	q.items = append(q.items, n)
	s.items++
	s.bytes += int64(len(body))
	s.metrics.queued.WithLabelValues(agent).Inc()
}

func (s *PushSender) logOverflow(q *pushQueue, hook string) {
	if isPow2(q.dropped) {
		s.log.Warn("push notification dropped: its task's queue to the webhook is full; the oldest waiting one goes",
			"agent", q.key.agent, "task", q.key.task, "webhook", hook, "queue", len(q.items), "dropped_from_queue", q.dropped)
	}
}

func isPow2(n int) bool { return n > 0 && n&(n-1) == 0 }

// release forgets a notification the sender held. s.mu is held.
func (s *PushSender) release(agent string, n *notification) {
	s.items--
	s.bytes -= int64(len(n.body))
	s.metrics.queued.WithLabelValues(agent).Dec()
	if s.closing && s.items == 0 {
		select {
		case <-s.drained:
		default:
			close(s.drained)
		}
	}
}

// drop counts and logs a notification not delivered.
func (s *PushSender) drop(key pushKey, reason string, attempts int, why string) {
	s.metrics.dropped.WithLabelValues(key.agent, reason).Inc()
	hook := key.url
	if u, err := url.Parse(key.url); err == nil {
		hook = hookName(u)
	}
	s.log.Warn("push notification not delivered", "agent", key.agent, "task", key.task, "config", key.config,
		"webhook", hook, "reason", reason, "attempts", attempts, "err", why)
}

// hookName is a webhook's URL for logs: without credentials, query or
// fragment, which may hold secrets.
func hookName(u *url.URL) string {
	v := url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}
	return v.String()
}

// pushHeader returns the headers of a notification to config, as the
// SDK's HTTPPushSender sets them.
func pushHeader(config *a2a.PushConfig) http.Header {
	h := http.Header{"Content-Type": {"application/json"}}
	if config.Token != "" {
		h.Set("A2A-Notification-Token", config.Token)
	}
	if a := config.Auth; a != nil && a.Credentials != "" {
		scheme := a.Scheme
		switch strings.ToLower(scheme) {
		case "bearer":
			scheme = "Bearer"
		case "basic":
			scheme = "Basic"
		}
		h.Set("Authorization", scheme+" "+a.Credentials)
	}
	return h
}

// work is a worker: it posts the head of the next ready queue.
func (s *PushSender) work() {
	defer s.running.Done()
	for {
		s.mu.Lock()
		for len(s.ready) == 0 && !s.stopped {
			s.wake.Wait()
		}
		if s.stopped {
			s.mu.Unlock()
			return
		}
		q := s.ready[0]
		s.ready = slices.Delete(s.ready, 0, 1)
		h := s.hosts[q.host]
		if h == nil {
			h = &pushHost{}
			s.hosts[q.host] = h
		}
		if h.inflight >= s.hostLimit {
			h.parked = append(h.parked, q)
			s.mu.Unlock()
			continue
		}
		h.inflight++
		q.state = queuePosting
		n := q.items[0]
		s.mu.Unlock()

		retry, wait := s.post(n)

		s.mu.Lock()
		h.inflight--
		if len(h.parked) > 0 {
			s.ready = append(s.ready, h.parked[0])
			h.parked = slices.Delete(h.parked, 0, 1)
			s.wake.Signal()
		} else if h.inflight == 0 {
			delete(s.hosts, q.host)
		}
		s.settle(q, n, retry, wait)
		s.mu.Unlock()
	}
}

// settle goes on after an attempt to post q's head n: done (delivered or
// refused), retried later, or given up. s.mu is held.
func (s *PushSender) settle(q *pushQueue, n *notification, retry bool, wait time.Duration) {
	agent := q.key.agent
	switch {
	case n.lastErr == "":
		s.metrics.delivered.WithLabelValues(agent).Inc()
		s.metrics.seconds.WithLabelValues(agent).Observe(time.Since(n.queued).Seconds())
	case s.stopped:
		s.metrics.failed.WithLabelValues(agent).Inc()
		s.undelivered++
		s.drop(q.key, dropClosed, n.attempts, n.lastErr)
	case !retry:
		s.metrics.failed.WithLabelValues(agent).Inc()
		s.drop(q.key, dropRejected, n.attempts, n.lastErr)
	default:
		s.metrics.failed.WithLabelValues(agent).Inc()
		wait = max(wait, s.backoffAfter(n.attempts))
		if n.attempts >= s.attempts || time.Since(n.first)+wait > s.maxRetryTime {
			s.drop(q.key, dropGaveUp, n.attempts, n.lastErr)
			break
		}
		q.state = queueRetrying
		q.timer = time.AfterFunc(wait, func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			if s.stopped || q.state != queueRetrying {
				return
			}
			q.timer = nil
			q.state = queueWaiting
			s.ready = append(s.ready, q)
			s.wake.Signal()
		})
		return
	}
	q.items = slices.Delete(q.items, 0, 1)
	s.release(agent, n)
	if len(q.items) == 0 || s.stopped {
		delete(s.queues, q.key)
		if q.dropped > 0 {
			s.log.Warn("push queue emptied after overflows", "agent", agent, "task", q.key.task, "webhook", n.hook, "dropped_from_queue", q.dropped)
		}
		return
	}
	q.state = queueWaiting
	s.ready = append(s.ready, q)
	s.wake.Signal()
}

// backoffAfter returns the wait after the attempt-th failed attempt: the
// first back-off doubled per attempt up to the longest, with equal jitter.
func (s *PushSender) backoffAfter(attempt int) time.Duration {
	d := s.backoff
	for i := 1; i < attempt && d < s.maxBackoff; i++ {
		d *= 2
	}
	d = min(d, s.maxBackoff)
	return d/2 + rand.N(d/2+1)
}

// post makes one attempt to post n. It sets n.lastErr on a failure (empty:
// delivered) and says whether the failure is worth a retry, and the wait
// the webhook asked for (Retry-After), up to the longest back-off.
func (s *PushSender) post(n *notification) (retry bool, wait time.Duration) {
	n.attempts++
	if n.first.IsZero() {
		n.first = time.Now()
	}
	n.lastErr = ""
	req, err := http.NewRequestWithContext(s.reqCtx, http.MethodPost, n.url, bytes.NewReader(n.body))
	if err != nil {
		n.lastErr = err.Error()
		return false, 0
	}
	req.Header = n.header.Clone()
	resp, err := s.client.Do(req)
	if err != nil {
		n.lastErr = err.Error()
		return true, 0
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	c := resp.StatusCode
	if c >= 200 && c < 300 {
		return false, 0
	}
	n.lastErr = "webhook answered " + resp.Status
	if c == http.StatusRequestTimeout || c == http.StatusTooEarly || c == http.StatusTooManyRequests || c >= 500 {
		return true, min(retryAfter(resp.Header.Get("Retry-After")), s.maxBackoff)
	}
	return false, 0
}

// retryAfter reads a Retry-After header: seconds or an HTTP date.
func retryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	if secs, err := strconv.Atoi(v); err == nil && secs > 0 {
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(time.Until(t), 0)
	}
	return 0
}

// Close stops queueing (later notifications are dropped, counted as
// closed), posts what is queued, retries included, until that is done or
// ctx ends, then cancels the posts in flight and drops what is left,
// logged and counted. It returns an error saying how many notifications
// were not delivered. Close is idempotent: later calls return the first's
// result.
func (s *PushSender) Close(ctx context.Context) error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closing = true
		if s.items == 0 {
			close(s.drained)
		}
		s.mu.Unlock()
		select {
		case <-s.drained:
		case <-ctx.Done():
		}
		s.mu.Lock()
		s.stopped = true
		for _, q := range s.queues {
			if q.timer != nil {
				q.timer.Stop()
			}
			keep := 0 // the head being posted is settled by its worker
			if q.state == queuePosting {
				keep = 1
			}
			for _, n := range q.items[keep:] {
				s.release(q.key.agent, n)
				s.metrics.dropped.WithLabelValues(q.key.agent, dropClosed).Inc()
				s.undelivered++
			}
			q.items = q.items[:keep]
			if keep == 0 {
				delete(s.queues, q.key)
			}
		}
		s.ready = nil
		s.wake.Broadcast()
		s.mu.Unlock()
		s.cancel()
		s.running.Wait()
		s.mu.Lock()
		left := s.undelivered
		s.mu.Unlock()
		if left > 0 {
			s.log.Warn("push sender closed before delivering every notification", "undelivered", left, "err", ctx.Err())
			s.closeErr = fmt.Errorf("a2anats: push sender closed with %d notifications undelivered: %w", left, ctx.Err())
		}
	})
	return s.closeErr
}
