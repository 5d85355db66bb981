package agentbus

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/a2abus/a2abus/codec"
	"github.com/a2abus/a2abus/placement"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// Handler handles one envelope addressed to an agent this process hosts.
// A nil error acknowledges it; an error has it retried, and after
// MaxAttempts it goes to the dead-letter stream with the error's text. A
// panic is recovered and treated as an error. ctx ends when Serve stops.
// env is decoded for this delivery and shares no memory with the frame or
// other deliveries: the handler may keep it, and its payload, after it
// returns (a retry passes the same env again).
type Handler func(ctx context.Context, env *codec.Envelope) error

// Receive-path defaults.
const (
	DefaultMaxAttempts  = 5
	DefaultAckWait      = 5 * time.Second
	DefaultRetryBackoff = 100 * time.Millisecond
	DefaultMaxRetryWait = 5 * time.Second
	// consumerPullMessages and consumerPullBytes bound what one group's
	// consumer holds fetched and not yet handled: they bound the workers'
	// queues, which never block a consumer, so that every batch fetched is
	// held (and kept alive) at once.
	consumerPullMessages = 32
	consumerPullBytes    = 4 << 20
	// MaxDeliver bounds the deliveries of one stored batch: a batch
	// delivered this often without an ack is dead-lettered on that delivery
	// instead of handled, so a batch that crashes its consumers cannot loop.
	// Deliveries also count when a consumer dies or overruns the ack wait,
	// and when one stops or hands its group over before it started the
	// batch (it releases the batch for the next owner), hence the margin.
	MaxDeliver = 20
)

// Headers of a dead letter.
const (
	HeaderDLQReason   = "A2A-DLQ-Reason"   // why it could not be handled
	HeaderDLQAttempts = "A2A-DLQ-Attempts" // handler attempts made
	HeaderDLQSubject  = "A2A-DLQ-Subject"  // the subject it was stored on
	HeaderDLQSequence = "A2A-DLQ-Sequence" // its sequence in the A2A stream
)

var (
	// ErrNoHandler is the reason an envelope for an agent with no handler in
	// this process is retried and then dead-lettered.
	ErrNoHandler = errors.New("agentbus: no handler for agent")
	// ErrHandlerPanic wraps the value of a recovered handler panic.
	ErrHandlerPanic = errors.New("agentbus: handler panicked")
)

// receiver is the receive side of a Bus.
type receiver struct {
	mu       sync.RWMutex
	handlers map[string]Handler

	serveMu sync.Mutex
	serves  int  // Serve calls running
	static  bool // one of them is a ServeGroups call

	handled   atomic.Uint64 // envelopes handled successfully
	failures  atomic.Uint64 // handler attempts that failed
	dead      atomic.Uint64 // envelopes and frames sent to the dead-letter stream
	poison    atomic.Uint64 // frames that could not be decoded
	redeliver atomic.Uint64 // batches delivered more than once
	// Metrics, all nil without a registerer.
	latency          prometheus.Histogram // handler time per envelope
	batchSize        prometheus.Histogram // envelopes per batch received
	groupPending     *prometheus.GaugeVec // by group token, for the groups held
	groupAckPending  *prometheus.GaugeVec
	groupRedelivered *prometheus.GaugeVec
	groupHandled     *prometheus.CounterVec // by group token
	groupDead        *prometheus.CounterVec
	groupsOwned      prometheus.Gauge
	// seriesOwner is the consumer that last reported each group's series,
	// so that another consumer of the bus does not delete them.
	seriesMu    sync.Mutex
	seriesOwner map[string]*membership
}

// Handle registers h for agentID, replacing any earlier handler. Serve
// delivers to it the envelopes sent to agentID in the groups this process
// consumes.
func (b *Bus) Handle(agentID string, h Handler) error {
	if err := placement.ValidateAgentID(agentID); err != nil {
		return fmt.Errorf("agentbus: handle: %w", err)
	}
	if h == nil {
		return fmt.Errorf("agentbus: handle %s: nil handler", agentID)
	}
	b.recv.mu.Lock()
	defer b.recv.mu.Unlock()
	if b.recv.handlers == nil {
		b.recv.handlers = make(map[string]Handler)
	}
	b.recv.handlers[agentID] = h
	return nil
}

func (b *Bus) handler(agentID string) Handler {
	b.recv.mu.RLock()
	defer b.recv.mu.RUnlock()
	return b.recv.handlers[agentID]
}

// ServeOption configures Serve.
type ServeOption func(*serveConfig) error

type serveConfig struct {
	groups       []int
	memberTTL    time.Duration
	memberID     string
	workers      int
	maxAttempts  int
	ackWait      time.Duration
	retryBackoff time.Duration
	maxRetryWait time.Duration
}

// ServeGroups makes Serve consume only these groups (default: all).
func ServeGroups(groups ...int) ServeOption {
	return func(c *serveConfig) error {
		c.groups = groups
		return nil
	}
}

// ServeWorkers sets how many batches are handled at once, each worker
// taking its agents' batches in order (default 16 × GOMAXPROCS: handlers
// mostly wait on I/O, and agents that share a worker wait for each other).
func ServeWorkers(n int) ServeOption {
	return func(c *serveConfig) error {
		if n < 1 {
			return fmt.Errorf("agentbus: %d workers", n)
		}
		c.workers = n
		return nil
	}
}

// ServeMaxAttempts sets how often a handler is tried on one envelope before
// the envelope is dead-lettered (default 5).
func ServeMaxAttempts(n int) ServeOption {
	return func(c *serveConfig) error {
		if n < 1 {
			return fmt.Errorf("agentbus: max attempts %d must be positive", n)
		}
		c.maxAttempts = n
		return nil
	}
}

// ServeRetryBackoff sets the wait after the first failed attempt, doubled
// after each further one up to max (defaults 100 ms and 5 s).
func ServeRetryBackoff(first, max time.Duration) ServeOption {
	return func(c *serveConfig) error {
		if first <= 0 || max < first {
			return fmt.Errorf("agentbus: retry back-off %v..%v", first, max)
		}
		c.retryBackoff, c.maxRetryWait = first, max
		return nil
	}
}

// ServeAckWait sets how long JetStream waits for a batch's ack before it
// redelivers the batch, to another consumer if this one is gone (default
// 5 s). A batch fetched by this consumer, waiting behind others or being
// handled, is kept alive with progress acks every half ack wait. A group handed over can wait up to this long
// for a batch sent to its old owner as it stopped, so keep it short.
func ServeAckWait(d time.Duration) ServeOption {
	return func(c *serveConfig) error {
		if d < time.Second {
			return fmt.Errorf("agentbus: ack wait %v under 1s", d)
		}
		c.ackWait = d
		return nil
	}
}

// ConsumerName is the durable consumer of a group: its group token.
func (b *Bus) ConsumerName(group int) (string, error) { return b.groups.GroupToken(group) }

// consumerConfig is the durable pull consumer of one group.
func (b *Bus) consumerConfig(group int, sc *serveConfig) (jetstream.ConsumerConfig, error) {
	name, err := b.groups.GroupToken(group)
	if err != nil {
		return jetstream.ConsumerConfig{}, err
	}
	filter, err := b.groups.GroupFilter(group)
	if err != nil {
		return jetstream.ConsumerConfig{}, err
	}
	return jetstream.ConsumerConfig{
		Durable:       name,
		Description:   "a2abus: consumer group " + name,
		FilterSubject: filter,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       sc.ackWait,
		// A batch is redelivered only when its consumer died holding it or
		// let its ack wait pass; handler failures are retried in place. A
		// batch on its last delivery is dead-lettered, not handled, so a
		// batch that crashes its consumers cannot loop.
		MaxDeliver:    MaxDeliver,
		MaxAckPending: 4 * consumerPullMessages,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	}, nil
}

// Serve consumes the bus's groups (or those of ServeGroups) and hands each
// envelope to the handler of its agent, in order per agent, different
// agents in parallel. A JetStream message (one batch, all for one agent) is
// acknowledged once every envelope in it was handled or dead-lettered.
// Serve returns when ctx ends, after the batches being handled are done;
// batches fetched but not started are released for redelivery. It returns
// an error if the consumers cannot be created.
//
// Without ServeGroups, Serve joins the bus's members as one consumer, and
// several Serve calls may run at once on one bus, each a consumer of its
// own (give each its ServeMemberID, or let each make one up): that is how a
// process runs more consumers when the scaler asks for them. A ServeGroups
// call runs alone.
func (b *Bus) Serve(ctx context.Context, opts ...ServeOption) error {
	sc := serveConfig{
		workers:      16 * runtime.GOMAXPROCS(0),
		maxAttempts:  DefaultMaxAttempts,
		ackWait:      DefaultAckWait,
		retryBackoff: DefaultRetryBackoff,
		maxRetryWait: DefaultMaxRetryWait,
		memberTTL:    DefaultMemberTTL,
	}
	for _, o := range opts {
		if err := o(&sc); err != nil {
			return err
		}
	}
	if err := b.recv.enter(len(sc.groups) > 0); err != nil {
		return err
	}
	defer b.recv.leave()

	s := &server{bus: b, cfg: &sc, ctx: ctx, queues: make([]*jobQueue, sc.workers), held: map[jetstream.Msg]struct{}{}}
	var workers sync.WaitGroup
	stopKeepAlive := make(chan struct{})
	workers.Go(func() { s.keepAlive(stopKeepAlive) })
	for i := range s.queues {
		s.queues[i] = newJobQueue()
		workers.Go(func() { s.work(s.queues[i]) })
	}
	defer func() {
		// No dispatch may queue once the queues close: it may still be
		// running in a consumer's goroutine after Stop or Drain.
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		for _, q := range s.queues {
			q.close()
		}
		close(stopKeepAlive)
		workers.Wait()
	}()

	if len(sc.groups) == 0 {
		return s.member(ctx)
	}
	var running []*groupConsumer
	defer func() {
		for _, gc := range running {
			s.stopGroup(gc)
		}
	}()
	for _, g := range sc.groups {
		gc, err := s.startGroup(ctx, g)
		if err != nil {
			if ctx.Err() != nil {
				return nil // stopped while starting
			}
			return err
		}
		running = append(running, gc)
	}
	<-ctx.Done()
	return nil
}

// enter admits a Serve call: calls in membership mode may run side by side
// (each is one consumer), a ServeGroups call only alone, since two pulling
// the same group would split its agents' batches between them.
func (r *receiver) enter(static bool) error {
	r.serveMu.Lock()
	defer r.serveMu.Unlock()
	if r.serves > 0 && (static || r.static) {
		return errors.New("agentbus: Serve with ServeGroups cannot run beside another Serve on the same bus")
	}
	r.serves++
	r.static = static
	return nil
}

func (r *receiver) leave() {
	r.serveMu.Lock()
	defer r.serveMu.Unlock()
	r.serves--
	if r.serves == 0 {
		r.static = false
	}
}

// groupConsumer is one group being consumed by this process.
type groupConsumer struct {
	group    int
	cc       jetstream.ConsumeContext
	direct   *nats.Subscription // direct requests to the group's agents
	inflight atomic.Int64       // batches dispatched and not yet done
	// handled and dead count the group's envelopes handled and dead-lettered
	// here; nil without a registerer.
	handled, dead prometheus.Counter
}

// startGroup creates (or updates) the group's durable consumer and starts
// pulling from it.
func (s *server) startGroup(ctx context.Context, g int) (*groupConsumer, error) {
	cfg, err := s.bus.consumerConfig(g, s.cfg)
	if err != nil {
		return nil, err
	}
	cons, err := s.bus.js[0].CreateOrUpdateConsumer(ctx, StreamName, cfg)
	if err != nil {
		return nil, fmt.Errorf("agentbus: consumer of group %s: %w", cfg.Durable, err)
	}
	// A new replicated consumer has no leader for a moment; a pull sent
	// then gets no responders and nats.go only pulls again after two
	// missed heartbeats. Wait for the leader first.
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		info, err := cons.Info(ctx)
		if err == nil && (info.Cluster == nil || info.Cluster.Leader != "") {
			break
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	gc := &groupConsumer{group: g}
	if r := &s.bus.recv; r.groupHandled != nil {
		gc.handled = r.groupHandled.WithLabelValues(cfg.Durable)
		gc.dead = r.groupDead.WithLabelValues(cfg.Durable)
	}
	gc.cc, err = cons.Consume(func(msg jetstream.Msg) { s.dispatch(gc, msg) },
		jetstream.PullMaxMessagesWithBytesLimit(consumerPullMessages, consumerPullBytes),
		// Short pulls: a pull lost in a leader change is noticed (two
		// missed heartbeats) within seconds, not the default 30 s.
		jetstream.PullExpiry(5*time.Second),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			if s.ctx.Err() == nil {
				s.bus.cfg.log.Warn("consume", "group", cfg.Durable, "err", err)
			}
		}))
	if err != nil {
		return nil, fmt.Errorf("agentbus: consume group %s: %w", cfg.Durable, err)
	}
	// A queue group, so that a request goes to one consumer even while two
	// hold the group for a moment during a hand-over.
	gc.direct, err = s.bus.conns[0].QueueSubscribe(DirectSubjectPrefix+"."+cfg.Durable+".*", "a2abus", func(m *nats.Msg) { s.handleDirect(gc, m) })
	if err != nil {
		gc.cc.Stop()
		return nil, fmt.Errorf("agentbus: direct requests of group %s: %w", cfg.Durable, err)
	}
	return gc, nil
}

// handleDirect handles a direct request: once, in the group's subscription
// goroutine, answering with an error reply if the handler fails.
func (s *server) handleDirect(gc *groupConsumer, m *nats.Msg) {
	var env codec.Envelope
	if err := s.bus.codec.DecodeEnvelope(m.Data, &env); err != nil {
		s.bus.recv.poison.Add(1)
		s.bus.cfg.log.Warn("undecodable direct request dropped", "subject", m.Subject, "err", err)
		return
	}
	env.ReplyTo = m.Reply
	if err := s.call(env.To, &env); err != nil {
		s.bus.recv.failures.Add(1)
		s.replyError(&env, err)
		return
	}
	s.countHandled(gc, 1)
}

// countHandled counts n envelopes of gc handled: for the bus's metrics,
// this Serve call's member reports and the group's series.
func (s *server) countHandled(gc *groupConsumer, n int) {
	s.bus.recv.handled.Add(uint64(n))
	s.handled.Add(uint64(n))
	if gc.handled != nil {
		gc.handled.Add(float64(n))
	}
}

// replyError answers a request whose handler failed for good, so that its
// requester learns why instead of waiting for its deadline.
func (s *server) replyError(req *codec.Envelope, err error) {
	if req.ReplyTo == "" {
		return
	}
	resp := &codec.Envelope{Kind: "error"}
	resp.Headers.Set(HeaderError, err.Error())
	if rerr := s.bus.Reply(s.ctx, req, resp); rerr != nil {
		s.bus.cfg.log.Warn("error reply not sent", "request", req.ID, "err", rerr)
	}
}

// stopGroup stops pulling from a group, lets the batches already fetched be
// dispatched, and waits until every dispatched batch of the group is done
// (acknowledged, or released for redelivery when Serve is stopping).
func (s *server) stopGroup(gc *groupConsumer) {
	_ = gc.direct.Unsubscribe()
	gc.cc.Drain()
	<-gc.cc.Closed()
	for gc.inflight.Load() > 0 {
		time.Sleep(5 * time.Millisecond)
	}
}

// server is one Serve call.
type server struct {
	bus    *Bus
	cfg    *serveConfig
	ctx    context.Context
	queues []*jobQueue

	mu     sync.RWMutex // held for reading by dispatch while it sends
	closed bool         // the queues are closed

	// held are the batches fetched and not yet acked, naked or terminated,
	// waiting in a queue or being handled: keepAlive sends them progress
	// acks, so that a batch waiting behind others does not outlive its ack
	// wait and come back as a duplicate.
	heldMu sync.Mutex
	held   map[jetstream.Msg]struct{}

	handled atomic.Uint64 // envelopes this Serve call handled successfully
}

func (s *server) hold(msg jetstream.Msg) {
	s.heldMu.Lock()
	s.held[msg] = struct{}{}
	s.heldMu.Unlock()
}

func (s *server) unhold(msg jetstream.Msg) {
	s.heldMu.Lock()
	delete(s.held, msg)
	s.heldMu.Unlock()
}

// keepAlive sends a progress ack for every held batch each half ack wait,
// until stop is closed.
func (s *server) keepAlive(stop <-chan struct{}) {
	t := time.NewTicker(s.cfg.ackWait / 2)
	defer t.Stop()
	var msgs []jetstream.Msg
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		s.heldMu.Lock()
		msgs = msgs[:0]
		for m := range s.held {
			msgs = append(msgs, m)
		}
		s.heldMu.Unlock()
		for _, m := range msgs {
			_ = m.InProgress()
		}
	}
}

type batchJob struct {
	msg   jetstream.Msg
	agent string
	gc    *groupConsumer
}

// dispatch runs in a group's consume goroutine: it routes the batch to the
// worker that owns its agent, so one agent's batches are handled in order.
func (s *server) dispatch(gc *groupConsumer, msg jetstream.Msg) {
	_, agent, err := placement.ParseSubject(msg.Subject())
	if err != nil {
		s.bus.recv.poison.Add(1)
		s.reject(gc, msg, "", fmt.Sprintf("subject %q: %v", msg.Subject(), err))
		return
	}
	q := s.queues[placement.JumpHashString(agent, len(s.queues))]
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		_ = msg.Nak()
		return
	}
	gc.inflight.Add(1)
	s.hold(msg)
	q.push(&batchJob{msg: msg, agent: agent, gc: gc})
}

func (s *server) work(q *jobQueue) {
	for {
		job := q.pop()
		if job == nil {
			return
		}
		if s.ctx.Err() != nil {
			_ = job.msg.Nak()
		} else {
			s.handleBatch(job)
		}
		s.unhold(job.msg)
		job.gc.inflight.Add(-1)
	}
}

// jobQueue is a worker's queue of batches. push never blocks: its length
// is bounded by what the group consumers fetch (consumerPullMessages per
// group), and a consumer blocked on a full queue would hold batches it has
// fetched where nobody keeps them alive.
type jobQueue struct {
	mu     sync.Mutex
	cond   sync.Cond
	jobs   []*batchJob
	closed bool
}

func newJobQueue() *jobQueue {
	q := &jobQueue{}
	q.cond.L = &q.mu
	return q
}

func (q *jobQueue) push(j *batchJob) {
	q.mu.Lock()
	q.jobs = append(q.jobs, j)
	q.mu.Unlock()
	q.cond.Signal()
}

// pop returns the next job, waiting for one; nil once closed and empty.
func (q *jobQueue) pop() *batchJob {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.jobs) == 0 && !q.closed {
		q.cond.Wait()
	}
	if len(q.jobs) == 0 {
		return nil
	}
	j := q.jobs[0]
	q.jobs[0] = nil
	q.jobs = q.jobs[1:]
	return j
}

func (q *jobQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.cond.Broadcast()
}

// reject dead-letters a whole stored message and terminates it, or, if the
// dead letter cannot be stored, leaves it for redelivery.
func (s *server) reject(gc *groupConsumer, msg jetstream.Msg, agent, reason string) {
	if s.deadLetter(gc, msg, agent, nil, reason, 0) {
		_ = msg.Term()
	} else {
		_ = msg.Nak()
	}
}

// handleBatch decodes a batch and handles its envelopes in order.
func (s *server) handleBatch(job *batchJob) {
	b := s.bus
	msg := job.msg
	if md, err := msg.Metadata(); err == nil && md.NumDelivered > 1 {
		b.recv.redeliver.Add(1)
		if md.NumDelivered >= MaxDeliver {
			s.reject(job.gc, msg, job.agent, fmt.Sprintf("delivered %d times without an ack (its consumers crashed, overran the ack wait or released it at hand-overs)", md.NumDelivered))
			return
		}
	}
	envs, err := b.codec.DecodeBatch(nil, msg.Data())
	if err != nil {
		b.recv.poison.Add(1)
		s.reject(job.gc, msg, job.agent, "undecodable frame: "+err.Error())
		return
	}
	if h := b.recv.batchSize; h != nil {
		h.Observe(float64(len(envs)))
	}

	handled := 0 // counted once the batch is acknowledged: a released batch comes back
	for i := range envs {
		env := &envs[i]
		attempts, err := s.handleEnvelope(job.agent, env)
		if err == nil {
			handled++
			continue
		}
		if s.ctx.Err() == nil {
			s.replyError(env, err)
		}
		if s.ctx.Err() != nil || !s.deadLetter(job.gc, msg, job.agent, env, err.Error(), attempts) {
			// Stopping mid-batch, or the dead letter could not be stored:
			// release the batch. The envelopes before this one will be
			// handled again by the next delivery (at least once).
			_ = msg.Nak()
			return
		}
	}
	// Acks are idempotent: retry an ack whose answer was lost (a reconnect,
	// a leader change) with a short wait each, so that one lost answer does
	// not hold up every agent of this worker.
	for attempt := 0; attempt < 3; attempt++ {
		actx, cancel := context.WithTimeout(context.Background(), min(s.cfg.ackWait/2, time.Second))
		err = msg.DoubleAck(actx)
		cancel()
		if err == nil {
			s.countHandled(job.gc, handled)
			return
		}
	}
	b.cfg.log.Warn("ack failed; the batch will be redelivered", "subject", msg.Subject(), "err", err)
}

// handleEnvelope calls the agent's handler until it succeeds, MaxAttempts
// is reached or Serve stops, waiting with back-off between attempts. It
// returns the attempts made and the last error.
func (s *server) handleEnvelope(agent string, env *codec.Envelope) (int, error) {
	wait := s.cfg.retryBackoff
	var err error
	for attempt := 1; ; attempt++ {
		env.Attempt = uint32(attempt - 1)
		err = s.call(agent, env)
		if err == nil {
			return attempt, nil
		}
		s.bus.recv.failures.Add(1)
		if attempt >= s.cfg.maxAttempts {
			return attempt, err
		}
		select {
		case <-s.ctx.Done():
			return attempt, err
		case <-time.After(wait):
		}
		wait = min(2*wait, s.cfg.maxRetryWait)
	}
}

// call runs the handler, turning a panic into an error.
func (s *server) call(agent string, env *codec.Envelope) (err error) {
	h := s.bus.handler(agent)
	if h == nil {
		return fmt.Errorf("%w %s", ErrNoHandler, agent)
	}
	if hist := s.bus.recv.latency; hist != nil {
		start := time.Now()
		defer func() { hist.Observe(time.Since(start).Seconds()) }()
	}
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%w: %v", ErrHandlerPanic, p)
		}
	}()
	return h(s.ctx, env)
}

// deadLetter stores what could not be handled in the dead-letter stream:
// one envelope (as a frame of its own) or, when env is nil, the whole
// stored message as it was. It retries for the send timeout or until Serve
// stops, and reports whether the dead letter was stored; if not, the
// caller leaves the batch for redelivery, so that nothing is lost.
func (s *server) deadLetter(gc *groupConsumer, msg jetstream.Msg, agent string, env *codec.Envelope, reason string, attempts int) bool {
	b := s.bus
	data := msg.Data()
	if env != nil {
		frame, err := b.codec.EncodeEnvelope(nil, env)
		if err == nil {
			data = frame
		}
	}
	if agent == "" {
		agent = "_"
	}
	seq := uint64(0)
	if md, err := msg.Metadata(); err == nil {
		seq = md.Sequence.Stream
	}
	dl := &nats.Msg{
		Subject: DeadLetterSubjectPrefix + "." + agent,
		Data:    data,
		Header: nats.Header{
			HeaderDLQReason:   []string{reason},
			HeaderDLQAttempts: []string{strconv.Itoa(attempts)},
			HeaderDLQSubject:  []string{msg.Subject()},
			HeaderDLQSequence: []string{strconv.FormatUint(seq, 10)},
		},
	}
	id := fmt.Sprintf("%d", seq)
	if env != nil {
		id += "/" + env.ID
	}
	ctx, cancel := context.WithTimeout(s.ctx, b.cfg.sendTimeout)
	defer cancel()
	if err := b.publish(ctx, b.js[0], dl, "dlq-"+id, 1); err != nil {
		b.cfg.log.Error("dead letter not stored", "subject", msg.Subject(), "reason", reason, "err", err)
		return false
	}
	b.recv.dead.Add(1)
	if gc.dead != nil {
		gc.dead.Inc()
	}
	b.cfg.log.Warn("dead-lettered", "subject", msg.Subject(), "sequence", seq, "reason", reason, "attempts", attempts)
	return true
}
