package agentbus

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/a2abus/a2abus/codec"
	"github.com/a2abus/a2abus/internal/tracing"
	"github.com/a2abus/a2abus/placement"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/semaphore"
)

// Handler handles one envelope addressed to an agent this process hosts.
// A nil error acknowledges it; an error has it retried, and after
// MaxAttempts it goes to the dead-letter stream with the error's text. A
// panic is recovered and treated as an error. ctx ends when the attempt
// passes its handler timeout (cause ErrHandlerTimeout), when the member
// no longer holds the envelope's batch (cause ErrFenced), and when Serve
// stops and its drain time has passed. env is decoded for this delivery
// and shares no memory with the frame or other deliveries: the handler may
// keep it, and its payload, after it returns (a retry passes the same env
// again).
type Handler func(ctx context.Context, env *codec.Envelope) error

// MaxDeliver bounds the deliveries of one stored batch: a batch delivered
// this often without an ack is dead-lettered on that delivery instead of
// handled, so a batch that crashes its members cannot loop. Deliveries also
// count when a member dies, or stops before it finished the batch and
// releases it for the next member, hence the margin. The bound is the
// member's, not the server's (the consumers' MaxDeliver is unlimited): a
// batch released on its last delivery is delivered again, never left in
// the stream where no member would see it.
const MaxDeliver = 20

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
	// ErrHandlerTimeout is the cause of a handler context that ended at
	// the handler timeout (ServeHandlerTimeout).
	ErrHandlerTimeout = errors.New("agentbus: handler timed out")
	// ErrHandlerHung is the cause of the context of a batch given up
	// because one of its handlers ignored its canceled context past the
	// handler timeout and a grace.
	ErrHandlerHung = errors.New("agentbus: handler hung past its timeout")
	// ErrServeStopped is the cause of a handler context that ended because
	// Serve stopped and its drain time passed.
	ErrServeStopped = errors.New("agentbus: serve stopped")
)

// Delivery is how the envelope a handler is called with reached it.
type Delivery struct {
	// Direct is set for a direct request: it was not stored, so there is
	// nothing to acknowledge and nothing is redelivered if the member dies.
	Direct bool
	// Delivered is how many times the stored batch that carries the
	// envelope has been delivered, 1 the first time (0 for a direct
	// request). Above 1, an earlier delivery may have run the handler, in
	// part or to its end: its member stopped, died or lost the batch before
	// it was acknowledged.
	Delivered int
}

type deliveryKey struct{}

// DeliveryOf returns the delivery of the envelope whose handler was given
// ctx (or a context made from it), and false for a context no Serve made.
func DeliveryOf(ctx context.Context) (Delivery, bool) {
	d, ok := ctx.Value(deliveryKey{}).(Delivery)
	return d, ok
}

// receiver is the receive side of a Bus.
type receiver struct {
	mu       sync.RWMutex
	handlers map[string]Handler

	handled   atomic.Uint64 // envelopes handled successfully
	failures  atomic.Uint64 // handler attempts that failed
	dead      atomic.Uint64 // envelopes and frames sent to the dead-letter stream
	poison    atomic.Uint64 // frames that could not be decoded
	redeliver atomic.Uint64 // batches delivered more than once
	fenced    atomic.Uint64 // batches given up because their hold could not be confirmed
	lostParts atomic.Uint64 // partitions whose pull ended unasked
	// waitedTurn counts batches delivered while another batch of their
	// partition was still being handled (a restarted server's redelivery).
	waitedTurn atomic.Uint64
	hung       atomic.Int64 // handlers running past their timeout and grace
	// heldBytes are the frame bytes of the stored batches being handled;
	// heldWaiting the batches waiting for ServeMaxHeldBytes.
	heldBytes   atomic.Int64
	heldWaiting atomic.Int64
	// dlFailures counts dead-letter publishes that failed; dlFailingSince
	// is set while the last one failed.
	dlFailures     atomic.Uint64
	dlMu           sync.Mutex
	dlFailingSince time.Time
	dlReason       string
	// Metrics, all nil without a registerer.
	latency         prometheus.Histogram // handler time per envelope
	batchSize       prometheus.Histogram // envelopes per batch received
	partPending     *prometheus.GaugeVec // by consumer, for the partitions pulled
	partAckPending  *prometheus.GaugeVec
	partRedelivered *prometheus.GaugeVec
	partHandled     *prometheus.CounterVec // by consumer
	partDead        *prometheus.CounterVec
	partsOwned      prometheus.Gauge
	// seriesOwner is the member that last reported each consumer's
	// series, so that another member of the bus does not delete them.
	seriesMu    sync.Mutex
	seriesOwner map[string]*membership
}

// Handle registers h for agentID, replacing any earlier handler. Serve
// delivers to it the envelopes sent to agentID.
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

// handlerIDs returns the agents with a handler, sorted.
func (b *Bus) handlerIDs() []string {
	b.recv.mu.RLock()
	defer b.recv.mu.RUnlock()
	ids := make([]string, 0, len(b.recv.handlers))
	for id := range b.recv.handlers {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// ConsumerConfig is the durable pull consumer of one partition of pool.
// MaxAckPending 1 is the fence of the partition's order: JetStream hands
// out the partition's next batch only once the one before is acknowledged
// or terminated, and gives a batch released or let expire to the next
// puller before any later one (see the design notes in member.go).
func ConsumerConfig(pool *placement.Pool, partition int, ackWait time.Duration) (jetstream.ConsumerConfig, error) {
	name, err := pool.ConsumerName(partition)
	if err != nil {
		return jetstream.ConsumerConfig{}, err
	}
	filter, err := pool.Filter(partition)
	if err != nil {
		return jetstream.ConsumerConfig{}, err
	}
	return jetstream.ConsumerConfig{
		Durable:       name,
		Description:   "a2abus: partition " + name[len(pool.Name())+1:] + " of pool " + pool.Name(),
		FilterSubject: filter,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       ackWait,
		MaxDeliver:    -1, // see MaxDeliver
		MaxAckPending: 1,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	}, nil
}

// Serve declares this member's pool and agents in the pool registry,
// joins the pool's members and consumes the partitions that bounded-load
// rendezvous hashing assigns it, handing each envelope to the handler of
// its agent until ctx ends. Envelopes of one key (agent and conversation,
// or agent alone in a pool ordered by agent) are handled one at a time in
// send order, across members, hand-overs and redeliveries; different keys
// run in parallel, up to ServeWorkers handlers at once. A stored batch is
// acknowledged once every envelope in it was handled or dead-lettered.
//
// When ctx ends Serve stops pulling, lets the handlers running finish for
// the drain time (ServeDrainTimeout), then cancels them, releases the
// batches it could not finish for the next member, leaves the pool and
// returns nil. It returns an error when it cannot start: no handlers, a
// pool or agent that conflicts with the registry (ErrPoolMismatch), or a
// server that does not answer.
//
// Several Serve calls may run at once on one bus, each a member of its
// own (give each its ServeMemberID, or let each make one up): that is how
// a process runs more consumers when the scaler asks for them.
func (b *Bus) Serve(ctx context.Context, opts ...ServeOption) error {
	sc := defaultServeConfig()
	for _, o := range opts {
		if err := o(&sc); err != nil {
			return err
		}
	}
	if sc.agents == nil {
		sc.agents = b.handlerIDs()
	}
	if len(sc.agents) == 0 {
		return errors.New("agentbus: serve: no agents to serve: register handlers with Handle first")
	}
	slices.Sort(sc.agents)
	sc.agents = slices.Compact(sc.agents)
	for _, a := range sc.agents {
		if b.handler(a) == nil {
			return fmt.Errorf("agentbus: serve: agent %s is to be served but has no handler", a)
		}
	}
	if sc.pool == "" {
		sc.pool = DefaultPoolName
		if len(sc.agents) == 1 && placement.ValidatePoolName(sc.agents[0]) == nil {
			sc.pool = sc.agents[0]
		}
	}
	s := &server{bus: b, cfg: &sc, workers: newWorkers(sc.workers), held: semaphore.NewWeighted(sc.maxHeldBytes), stopping: make(chan struct{}), started: make(chan struct{}, 1)}
	var cancel context.CancelCauseFunc
	s.hctx, cancel = context.WithCancelCause(context.WithoutCancel(ctx))
	defer cancel(ErrServeStopped)
	s.directCtx = context.WithValue(s.hctx, deliveryKey{}, Delivery{Direct: true})
	stopWatch, watched := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(watched)
		s.workers.watch(s, stopWatch)
	}()
	defer func() {
		close(stopWatch)
		<-watched
	}()
	return s.member(ctx, cancel)
}

// declare declares the pool and its agents, retrying for a minute through
// what a cluster still forming answers; nil, nil when ctx ended.
func (s *server) declare(ctx context.Context) (*placement.Pool, error) {
	cfg := PoolConfig{Name: s.cfg.pool, Partitions: s.cfg.partitions, Order: s.cfg.order.String()}
	deadline := time.Now().Add(time.Minute)
	for {
		p, err := s.bus.Declare(ctx, cfg, s.cfg.agents...)
		switch {
		case err == nil:
			return p, nil
		case ctx.Err() != nil:
			return nil, nil
		case errors.Is(err, ErrPoolMismatch) || time.Now().After(deadline):
			return nil, err
		}
		s.bus.cfg.log.Warn("pool registry not ready; retrying", "pool", cfg.Name, "err", err)
		select {
		case <-ctx.Done():
			return nil, nil
		case <-time.After(time.Second):
		}
	}
}

// server is one Serve call.
type server struct {
	bus  *Bus
	cfg  *serveConfig
	pool *placement.Pool
	id   string // the member's ID, set before anything is pulled
	// hctx is the handlers' context: it outlives Serve's ctx by the drain
	// time.
	hctx context.Context
	// directCtx is hctx marked as the context of direct requests
	// (DeliveryOf).
	directCtx context.Context
	// workers are the handler slots; their watchdog enforces the handler
	// timeout.
	workers *workers
	// held bounds the frame bytes of the batches being handled
	// (ServeMaxHeldBytes).
	held *semaphore.Weighted

	batches  sync.WaitGroup // batches being handled
	stopping chan struct{}  // closed when Serve starts to stop
	started  chan struct{}  // a partition started pulling (size one: a wake-up)
	handled  atomic.Uint64  // envelopes this Serve call handled successfully
}

// handleDirect handles a direct request: once, in the partition's
// subscription goroutine, answering with an error reply if the handler
// fails.
func (s *server) handleDirect(p *partition, m *nats.Msg) {
	var env codec.Envelope
	if err := s.bus.codec.DecodeEnvelope(m.Data, &env); err != nil {
		s.bus.recv.poison.Add(1)
		s.bus.cfg.log.Warn("undecodable direct request dropped", "subject", m.Subject, "err", err)
		return
	}
	env.ReplyTo = m.Reply
	call := newCallCtx(s.directCtx)
	call.subject = m.Subject
	defer call.end()
	if err := s.attempt(call, nil, env.To, &env); err != nil {
		s.bus.recv.failures.Add(1)
		s.replyError(s.directCtx, &env, err)
		return
	}
	s.countHandled(p, 1)
}

// countHandled counts n envelopes of p handled: for the bus's metrics,
// this member's reports and the partition's series.
func (s *server) countHandled(p *partition, n int) {
	s.bus.recv.handled.Add(uint64(n))
	s.handled.Add(uint64(n))
	if p.handled != nil {
		p.handled.Add(float64(n))
	}
}

// replyError answers a request whose handler failed for good, so that its
// requester learns why instead of waiting for its deadline. ctx is the
// handler's (its delivery decides how the reply is sent; its end does
// not stop the reply).
func (s *server) replyError(ctx context.Context, req *codec.Envelope, err error) {
	if req.ReplyTo == "" {
		return
	}
	resp := &codec.Envelope{Kind: "error"}
	resp.Headers.Set(HeaderError, err.Error())
	ctx = tracing.Extract(ctx, req.Headers)
	if rerr := s.bus.Reply(context.WithoutCancel(ctx), req, resp); rerr != nil {
		s.bus.cfg.log.WarnContext(ctx, "error reply not sent", "request", req.ID, "err", rerr)
	}
}

// dispatch runs in a partition's consume goroutine, which must not block
// (it also reads the pull's heartbeats): the batch is handled in a
// goroutine of its own. MaxAckPending 1 makes that at most one per
// partition.
func (s *server) dispatch(p *partition, msg jetstream.Msg) {
	s.batches.Add(1)
	p.batches.Add(1)
	done := make(chan struct{})
	passTurn := sync.OnceFunc(func() { close(done) })
	p.mu.Lock()
	prev := p.turn
	p.turn = done
	p.mu.Unlock()
	go func() {
		defer s.batches.Done()
		defer p.batches.Done()
		defer passTurn()
		s.handleBatch(p, msg, prev, passTurn)
	}()
}

// handleBatch handles one stored batch: its envelopes grouped by key, the
// keys in parallel and each key's envelopes in order, while a hold keeps
// the batch ours; then it acknowledges the batch, or releases it when
// Serve stopped before it was done, or leaves it alone when the hold was
// lost (the batch may be another member's by now). It starts once prev
// (nil: none), the partition's batch dispatched before it, is done,
// holding its batch meanwhile, and calls passTurn once this batch is done
// or no longer ours (its hold lost or given up to a hung handler, Serve
// stopping): the next batch then goes on.
func (s *server) handleBatch(p *partition, msg jetstream.Msg, prev <-chan struct{}, passTurn func()) {
	b := s.bus
	delivered := 1
	if md, err := msg.Metadata(); err == nil {
		delivered = int(md.NumDelivered)
	}
	ctx, cancel := context.WithCancelCause(context.WithValue(s.hctx, deliveryKey{}, Delivery{Delivered: delivered}))
	defer cancel(nil)
	defer context.AfterFunc(ctx, passTurn)()
	h := s.hold(msg, cancel)
	defer h.release()
	if prev != nil {
		select {
		case <-prev:
		default:
			b.recv.waitedTurn.Add(1)
			select {
			case <-prev:
			case <-ctx.Done():
				if h.held() {
					_ = msg.Nak() // stopping: for the next member
				}
				return
			}
		}
	}

	_, _, agent, err := placement.ParseSubject(msg.Subject())
	if err != nil {
		b.recv.poison.Add(1)
		s.reject(ctx, h, p, msg, "", fmt.Sprintf("subject %q: %v", msg.Subject(), err))
		return
	}
	if delivered > 1 {
		b.recv.redeliver.Add(1)
		if delivered >= MaxDeliver {
			s.reject(ctx, h, p, msg, agent, fmt.Sprintf("delivered %d times without an ack (its members crashed, or stopped before they finished it)", delivered))
			return
		}
	}
	size := min(int64(len(msg.Data())), s.cfg.maxHeldBytes)
	if !s.acquireHeld(ctx, size) {
		if h.held() {
			_ = msg.Nak() // stopping: for the next member, undecoded
		}
		return
	}
	b.recv.heldBytes.Add(size)
	defer func() {
		b.recv.heldBytes.Add(-size)
		s.held.Release(size)
	}()
	envs, err := b.codec.DecodeBatch(nil, msg.Data())
	if err != nil {
		b.recv.poison.Add(1)
		s.reject(ctx, h, p, msg, agent, "undecodable frame: "+err.Error())
		return
	}
	ctx, rspan := b.startReceive(ctx, msg, envs, delivered)
	settled := "fenced"
	defer func() { settle(rspan, settled) }()
	if hist := b.recv.batchSize; hist != nil {
		hist.Observe(float64(len(envs)))
	}

	var (
		handled    atomic.Int64 // counted once the batch is acknowledged: a released batch comes back
		incomplete atomic.Bool  // some envelope was neither handled nor dead-lettered
	)
	run := func(idx []int) {
		call := newCallCtx(ctx)
		call.subject, call.delivered = msg.Subject(), delivered
		defer call.end()
		for _, i := range idx {
			if ctx.Err() != nil {
				incomplete.Store(true)
				return
			}
			env := &envs[i]
			attempts, err := s.handleEnvelope(ctx, call, h, agent, env)
			if err == nil {
				handled.Add(1)
				continue
			}
			if ctx.Err() != nil {
				incomplete.Store(true) // stopping or fenced: the batch comes back
				return
			}
			s.replyError(ctx, env, err)
			if !s.deadLetter(ctx, p, msg, agent, env, err.Error(), attempts) {
				incomplete.Store(true)
				return
			}
		}
	}
	keys := groupByKey(s.pool, envs)
	if len(keys) == 1 {
		run(keys[0])
	} else {
		var wg sync.WaitGroup
		for _, idx := range keys {
			wg.Go(func() { run(idx) })
		}
		wg.Wait()
	}

	switch {
	case !h.held():
		b.recv.fenced.Add(1)
		b.cfg.log.WarnContext(ctx, "gave up a batch whose hold could not be confirmed in time; another member may have it now",
			"subject", msg.Subject(), "err", context.Cause(ctx))
	case incomplete.Load():
		// Stopping, or a dead letter could not be stored: release the batch
		// for the next delivery, which handles it from its start (at least
		// once). It is the partition's only batch out, so none overtakes it.
		_ = msg.Nak()
		settled = "nak"
	default:
		if s.ack(ctx, h, p, msg, int(handled.Load())) {
			settled = "ack"
		}
	}
}

// acquireHeld takes size bytes of the held-bytes bound for a batch,
// waiting while the member handles as many, until ctx ends (the batch is
// lost) or Serve starts to stop; it reports whether it took them.
func (s *server) acquireHeld(ctx context.Context, size int64) bool {
	if s.held.TryAcquire(size) {
		return true
	}
	r := &s.bus.recv
	r.heldWaiting.Add(1)
	defer r.heldWaiting.Add(-1)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-s.stopping:
			cancel()
		case <-ctx.Done():
		}
	}()
	return s.held.Acquire(ctx, size) == nil
}

// groupByKey returns the indexes of envs by ordering key, each key's in
// envelope order, the keys in order of first appearance.
func groupByKey(pool *placement.Pool, envs []codec.Envelope) [][]int {
	if pool.Order() == placement.OrderAgent || len(envs) == 1 {
		idx := make([]int, len(envs))
		for i := range idx {
			idx[i] = i
		}
		return [][]int{idx}
	}
	var (
		keys  [][]int
		index = make(map[string]int, 4)
	)
	for i := range envs {
		c := Conversation(&envs[i])
		k, ok := index[c]
		if !ok {
			k = len(keys)
			index[c] = k
			keys = append(keys, nil)
		}
		keys[k] = append(keys[k], i)
	}
	return keys
}

// ack acknowledges a batch while it is still held. Acks are idempotent: an
// ack whose answer was lost (a reconnect, a leader change) is retried with
// a short wait each.
func (s *server) ack(ctx context.Context, h *hold, p *partition, msg jetstream.Msg, handled int) bool {
	var err error
	for range 3 {
		if !h.held() {
			break
		}
		actx, cancel := context.WithTimeout(context.Background(), min(s.cfg.ackWait/4, time.Second))
		err = msg.DoubleAck(actx)
		cancel()
		if err == nil {
			s.countHandled(p, handled)
			return true
		}
	}
	s.bus.cfg.log.WarnContext(ctx, "ack failed; the batch will be redelivered", "subject", msg.Subject(), "err", err)
	return false
}

// reject dead-letters a whole stored message and terminates it, or, if the
// dead letter cannot be stored, releases it for redelivery.
func (s *server) reject(ctx context.Context, h *hold, p *partition, msg jetstream.Msg, agent, reason string) {
	if !h.held() {
		return
	}
	if s.deadLetter(ctx, p, msg, agent, nil, reason, 0) {
		_ = msg.Term()
	} else {
		_ = msg.Nak()
	}
}

// handleEnvelope calls the agent's handler until it succeeds, MaxAttempts
// is reached or ctx ends, waiting with back-off between attempts. It
// returns the attempts made and the last error.
func (s *server) handleEnvelope(ctx context.Context, call *callCtx, h *hold, agent string, env *codec.Envelope) (int, error) {
	wait := s.cfg.retryBackoff
	var err error
	for attempt := 1; ; attempt++ {
		env.Attempt = uint32(attempt - 1)
		err = s.attempt(call, h, agent, env)
		if err == nil {
			return attempt, nil
		}
		s.bus.recv.failures.Add(1)
		if attempt >= s.cfg.maxAttempts || ctx.Err() != nil {
			return attempt, err
		}
		select {
		case <-ctx.Done():
			return attempt, err
		case <-time.After(wait):
		}
		wait = min(2*wait, s.cfg.maxRetryWait)
	}
}

// attempt runs the handler once in a worker slot, within the handler
// timeout (the workers' watchdog cancels its context then), turning a
// panic into an error. A handler still running a grace after its timeout
// has ignored its canceled context: the watchdog reports it and stops it
// holding anything (see watch).
func (s *server) attempt(call *callCtx, h *hold, agent string, env *codec.Envelope) (err error) {
	handle := s.bus.handler(agent)
	if handle == nil {
		return fmt.Errorf("%w %s on member %s of pool %s", ErrNoHandler, agent, s.id, s.cfg.pool)
	}
	ctx := call.next()
	w, err := s.workers.get(ctx)
	if err != nil {
		return err
	}
	ctx, span := s.bus.startProcess(ctx, env, call.subject, call.delivered)
	start := w.begin(call, h, agent, env.ID)
	defer func() {
		s.workers.put(w, s.bus)
		if hist := s.bus.recv.latency; hist != nil {
			hist.Observe(time.Since(start).Seconds())
		}
		endSpan(span, err)
	}()
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%w: %v", ErrHandlerPanic, p)
		}
	}()
	err = handle(ctx, env)
	if err != nil && ctx.Err() != nil {
		err = fmt.Errorf("%w (%w)", err, context.Cause(ctx))
	}
	return err
}

// deadLetter stores what could not be handled in the dead-letter stream:
// one envelope (as a frame of its own) or, when env is nil, the whole
// stored message as it was. While the dead-letter stream refuses it (full,
// unreachable) the batch stays held, so that nothing is lost and nothing
// overtakes it: the publish is retried with back-off, each failure counted
// (a2abus_receive_dead_letter_failures_total) and logged, until it is
// stored or ctx ends (the member stops or loses the batch); it reports
// whether the dead letter was stored.
func (s *server) deadLetter(ctx context.Context, p *partition, msg jetstream.Msg, agent string, env *codec.Envelope, reason string, attempts int) bool {
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
	ctx, span := b.startDeadLetter(ctx, env, agent, reason, dl)
	stored := false
	defer func() {
		if !stored {
			endSpan(span, errDeadLetterNotStored)
		} else {
			endSpan(span, nil)
		}
	}()
	id := strconv.FormatUint(seq, 10)
	if env != nil {
		id += "/" + env.ID
	}
	wait := deadLetterRetryMin
	for failures := 0; ; failures++ {
		actx, cancel := context.WithTimeout(ctx, min(b.cfg.sendTimeout, deadLetterAttempt))
		err := b.publish(actx, b.js[0], dl, "dlq-"+id, 1)
		cancel()
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return false
		}
		b.recv.dlFailures.Add(1)
		b.recv.noteDeadLetterFailure(err)
		b.cfg.log.WarnContext(ctx, "dead letter not stored; holding the batch and retrying", "subject", msg.Subject(),
			"sequence", seq, "reason", reason, "failures", failures+1, "retry_in", wait, "err", err)
		select {
		case <-ctx.Done():
			return false
		case <-s.stopping:
			// Serve is stopping: the batch goes back for the next member,
			// which tries again, rather than holding up the drain.
			return false
		case <-time.After(wait):
		}
		wait = min(2*wait, deadLetterRetryMax)
	}
	b.recv.noteDeadLetterStored()
	b.recv.dead.Add(1)
	if p.dead != nil {
		p.dead.Inc()
	}
	stored = true
	b.cfg.log.WarnContext(ctx, "dead-lettered", "subject", msg.Subject(), "sequence", seq, "reason", reason, "attempts", attempts)
	return true
}

// Back-off of a dead letter the dead-letter stream refused, and how long
// one try may take (a full stream is retried within it, as backpressure).
const (
	deadLetterRetryMin = time.Second
	deadLetterRetryMax = 30 * time.Second
	deadLetterAttempt  = 5 * time.Second
)

// DeadLetterHealth reports whether the last dead letter this bus tried to
// store failed, since when and why: while it does, batches wait held for
// the dead-letter stream to take them (readiness should say so).
func (b *Bus) DeadLetterHealth() (failing bool, since time.Time, reason string) {
	r := &b.recv
	r.dlMu.Lock()
	defer r.dlMu.Unlock()
	return !r.dlFailingSince.IsZero(), r.dlFailingSince, r.dlReason
}

func (r *receiver) noteDeadLetterFailure(err error) {
	r.dlMu.Lock()
	defer r.dlMu.Unlock()
	if r.dlFailingSince.IsZero() {
		r.dlFailingSince = time.Now()
	}
	r.dlReason = err.Error()
}

func (r *receiver) noteDeadLetterStored() {
	r.dlMu.Lock()
	defer r.dlMu.Unlock()
	r.dlFailingSince, r.dlReason = time.Time{}, ""
}
