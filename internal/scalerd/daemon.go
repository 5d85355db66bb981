package scalerd

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/a2abus/a2abus/agentbus"
	"github.com/a2abus/a2abus/internal/tracing"
	"github.com/a2abus/a2abus/placement"
	"github.com/a2abus/a2abus/scaler"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// Time limits of the daemon.
const (
	connectRetry = time.Second      // wait between two attempts to reach the bus
	callTimeout  = 5 * time.Second  // one evaluation's reads and write
	resignWait   = 2 * time.Second  // deleting the leader key on shutdown
	closeWait    = 2 * time.Second  // closing the bus on shutdown
	refreshAfter = 20               // intervals after which an unchanged target is written again
	readTimeout  = 10 * time.Second // HTTP request headers
)

// PoolStatus is one pool's latest decision, as GET /scale/{pool} returns
// it.
type PoolStatus struct {
	// Pool is the pool decided for.
	Pool string `json:"pool"`
	// DesiredConsumers is the latest decision's consumer count: the value
	// KEDA's metrics-api scaler reads (valueLocation "desiredConsumers").
	DesiredConsumers int    `json:"desiredConsumers"`
	Reason           string `json:"reason"`
	Trigger          string `json:"trigger"`
	// Leader is true when this scalerd leads: its decisions become the
	// target (unless DryRun).
	Leader bool      `json:"leader"`
	DryRun bool      `json:"dryRun"`
	At     time.Time `json:"at"`
	// Consumers is the count the decision started from, Live the pool's
	// members alive and Ready those of them that report their CPU.
	Consumers int `json:"consumers"`
	Live      int `json:"live"`
	Ready     int `json:"ready"`
	// Target is the pool's stored scale target, if any.
	Target *agentbus.ScaleTarget `json:"target,omitempty"`
	// Backlog and Waiting are in stored messages, the rates in stored
	// messages per second.
	Backlog     int64   `json:"backlog"`
	Waiting     int64   `json:"waiting"`
	ArrivalRate float64 `json:"arrivalRate"`
	HandledRate float64 `json:"handledRate"`
	CPU         float64 `json:"cpu"`
}

// Status is the daemon's latest evaluation, as GET /scale returns it: the
// decision of every pool that has reported (has partition consumers or
// live members), by pool name.
type Status struct {
	ID     string                `json:"id"`
	Leader bool                  `json:"leader"`
	DryRun bool                  `json:"dryRun"`
	At     time.Time             `json:"at"`
	Pools  map[string]PoolStatus `json:"pools"`
}

// Option configures a Daemon.
type Option func(*Daemon)

// WithClock makes the daemon read the time from now (default time.Now):
// the snapshots' times, which are the policy's clock, and the targets'.
func WithClock(now func() time.Time) Option { return func(d *Daemon) { d.now = now } }

// WithTracerProvider traces each evaluation with tp: a span per
// evaluation, a child per pool decided, with the decision.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(d *Daemon) { d.tracer = tracing.New(tp) }
}

// Daemon is a running scalerd: every interval it samples each pool's
// backlog and consumers, lets the pool's scaling policy decide, and, while
// it leads and is not a dry run, writes the decision as the pool's
// consumer target.
type Daemon struct {
	cfg Config
	id  string
	log *slog.Logger
	now func() time.Time
	reg *prometheus.Registry
	m   *metrics

	// pools are the pools that reported, touched by the loop only.
	pools map[string]*poolState

	ln       net.Listener
	hs       *http.Server
	serveErr chan error // size one: the HTTP server's exit

	cancel context.CancelFunc
	done   chan struct{} // closed when run returns

	started atomic.Bool
	conn    atomic.Pointer[nats.Conn] // the bus's connection once reached
	status  atomic.Pointer[Status]    // the latest evaluation
	leading atomic.Bool
	// crash, when set before the loop stops, makes it stop as a killed
	// process would: no resignation (tests).
	crash atomic.Bool
	// onStatus, when set before Start, sees every pool's status at every
	// evaluation (tests).
	onStatus func(PoolStatus)

	tracer *tracing.Tracer

	shutdownOnce sync.Once
	shutdownErr  error
}

// NewDaemon returns a daemon for cfg, which must be valid (see
// Config.Validate). Start runs it.
func NewDaemon(cfg Config, log *slog.Logger, opts ...Option) (*Daemon, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if _, err := scaler.New(cfg.Policy); err != nil {
		return nil, err
	}
	d := &Daemon{cfg: cfg, id: cfg.ID, log: log, now: time.Now, pools: map[string]*poolState{},
		reg: prometheus.NewRegistry(), serveErr: make(chan error, 1), done: make(chan struct{}),
		tracer: tracing.New(noop.NewTracerProvider())}
	for _, o := range opts {
		o(d)
	}
	if d.id == "" {
		d.id = defaultID()
	}
	d.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectors.NewBuildInfoCollector(),
	)
	var err error
	if d.m, err = newMetrics(d.reg); err != nil {
		return nil, err
	}
	return d, nil
}

// defaultID is the host name and a unique suffix.
func defaultID() string {
	id := nuid.Next()
	id = "scalerd-" + id[len(id)-8:]
	if host, _ := os.Hostname(); host != "" && placement.ValidateAgentID(host) == nil {
		id = host + "-" + id
	}
	return id
}

// ID returns the name this scalerd leads and writes targets under.
func (d *Daemon) ID() string { return d.id }

// Start opens the HTTP listener and starts the loop, which connects to the
// bus (retrying until the bus's stream exists, so scalerd may start before
// agentd), campaigns for leadership and decides every interval. It returns
// once the listener is open; /readyz answers 200 once the bus is reached
// and sampled.
func (d *Daemon) Start(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if !d.started.CompareAndSwap(false, true) {
		return ErrStarted
	}
	ln, err := net.Listen("tcp", d.cfg.HTTP)
	if err != nil {
		return fmt.Errorf("--http %s: %w", d.cfg.HTTP, err)
	}
	d.ln = ln
	d.hs = &http.Server{Handler: d.handler(), ReadHeaderTimeout: readTimeout}
	go func() { d.serveErr <- d.hs.Serve(ln) }()
	rctx, cancel := context.WithCancel(context.Background())
	d.cancel = cancel
	go func() {
		defer close(d.done)
		d.run(rctx)
	}()
	d.log.Info("scalerd started", "id", d.id, "http", ln.Addr().String(), "nats", d.cfg.NATS,
		"interval", d.cfg.Interval, "lease", d.cfg.Lease, "dry_run", d.cfg.DryRun,
		"min", d.cfg.Policy.MinConsumers, "max", d.cfg.Policy.MaxConsumers)
	return nil
}

// HTTPAddr returns the address the HTTP endpoints listen on.
func (d *Daemon) HTTPAddr() string {
	if d.ln == nil {
		return ""
	}
	return d.ln.Addr().String()
}

// Err yields the HTTP server's error if it stops serving before Shutdown.
func (d *Daemon) Err() <-chan error { return d.serveErr }

// Status returns the latest evaluation; ok is false before the first.
func (d *Daemon) Status() (s Status, ok bool) {
	p := d.status.Load()
	if p == nil {
		return Status{}, false
	}
	return *p, true
}

// PoolStatus returns pool's latest decision; ok is false before the pool
// has reported.
func (d *Daemon) PoolStatus(pool string) (s PoolStatus, ok bool) {
	p := d.status.Load()
	if p == nil {
		return PoolStatus{}, false
	}
	s, ok = p.Pools[pool]
	return s, ok
}

// Leader reports whether this scalerd leads now.
func (d *Daemon) Leader() bool { return d.leading.Load() }

// Shutdown stops deciding, resigns the leadership (deleting the leader key,
// so that a standby takes over at once), closes the bus connection and
// stops the HTTP server. It is idempotent; later calls return the first
// call's result.
func (d *Daemon) Shutdown(ctx context.Context) error {
	d.shutdownOnce.Do(func() {
		if d.cancel != nil {
			d.cancel()
			select {
			case <-d.done:
			case <-ctx.Done():
				d.shutdownErr = ctx.Err()
			}
		}
		if d.hs != nil {
			if err := d.hs.Shutdown(ctx); err != nil && d.shutdownErr == nil {
				d.shutdownErr = err
			}
		}
	})
	return d.shutdownErr
}

// kill stops the daemon as a crash would: it stops refreshing the leader
// key without deleting it (tests).
func (d *Daemon) kill(ctx context.Context) error {
	d.crash.Store(true)
	return d.Shutdown(ctx)
}

// run is the daemon's loop; it returns when ctx ends.
func (d *Daemon) run(ctx context.Context) {
	bus := d.connect(ctx)
	if bus == nil {
		return
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), closeWait)
		defer cancel()
		d.conn.Store(nil)
		_ = bus.Close(cctx)
	}()

	var el *elector
	for el == nil {
		js, err := jetstream.New(bus.Conn())
		if err == nil {
			el, err = newElector(ctx, js, d.id, d.cfg.Lease, d.log, d.now, d.setLeader)
		}
		if err != nil {
			el = nil
			if ctx.Err() != nil {
				return
			}
			d.log.Warn("leader election not ready; retrying", "err", err)
			if !sleep(ctx, connectRetry) {
				return
			}
		}
	}
	streams, err := newStreamSource(bus)
	if err != nil {
		d.log.Error("backlog source", "err", err) // cannot happen: the connection is open
		return
	}
	members := memberSource{bus}

	var wg sync.WaitGroup
	ectx, stopElection := context.WithCancel(ctx)
	wg.Go(func() { el.run(ectx, d.cfg.Lease/3) })
	defer func() {
		stopElection()
		wg.Wait()
		if d.crash.Load() {
			el.abdicate()
			return
		}
		rctx, cancel := context.WithTimeout(context.Background(), resignWait)
		defer cancel()
		el.resign(rctx)
	}()

	tick := time.NewTicker(d.cfg.Interval)
	defer tick.Stop()
	for {
		d.evaluate(ctx, bus, streams, members, el)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// connect reaches the bus, retrying until it succeeds or ctx ends (nil).
func (d *Daemon) connect(ctx context.Context) *agentbus.Bus {
	for attempt := 1; ; attempt++ {
		// Its own inbox prefix lets its role (agentbus.ScalerPermissions)
		// read its replies and no one else's.
		bus, err := agentbus.Connect(ctx, agentbus.WithURL(d.cfg.NATS), agentbus.WithName("scalerd"),
			agentbus.WithLogger(d.log), agentbus.WithRegisterer(d.reg),
			agentbus.WithNATSOptions(nats.CustomInboxPrefix(agentbus.ScalerInboxPrefix)))
		if err == nil {
			d.conn.Store(bus.Conn())
			d.log.Info("connected to the bus", "nats", d.cfg.NATS)
			return bus
		}
		if ctx.Err() != nil {
			return nil
		}
		if attempt == 1 || attempt%30 == 0 {
			d.log.Warn("bus not reachable; retrying", "nats", d.cfg.NATS, "attempt", attempt, "err", err)
		}
		if !sleep(ctx, connectRetry) {
			return nil
		}
	}
}

func (d *Daemon) setLeader(leader bool) {
	d.leading.Store(leader)
	if leader {
		d.m.leader.Set(1)
	} else {
		d.m.leader.Set(0)
	}
}

// poolState is what the daemon keeps of a pool that has reported: its
// policy (whose state, such as the forecast and the learned capacity, is
// the pool's), its sampler, and its stored target as last read or written.
type poolState struct {
	name      string
	src       *poolSource
	sampler   *scaler.Sampler
	policy    *scaler.Policy
	target    agentbus.ScaleTarget
	hasTarget bool
}

// pool returns the state of a pool, made when it first reports.
func (d *Daemon) pool(name string) *poolState {
	if ps := d.pools[name]; ps != nil {
		return ps
	}
	policy, _ := scaler.New(d.cfg.Policy) // validated by NewDaemon
	src := &poolSource{}
	ps := &poolState{name: name, src: src, sampler: scaler.NewSampler(src, src, d.now), policy: policy}
	d.pools[name] = ps
	d.m.addPool(name)
	d.log.Info("pool reported", "pool", name)
	return ps
}

// evaluate is one interval: read the backlog and the members of every
// pool, then for each pool that has reported (it has partition consumers
// or live members) decide, and write the pool's target if this scalerd
// leads, is not a dry run, and the decision is a step to a count other
// than the stored target's (or the stored target is old). A pool that has
// not reported is left alone: it has no state here, and its target is
// neither set nor changed.
func (d *Daemon) evaluate(ctx context.Context, bus *agentbus.Bus, streams *streamSource, members memberSource, el *elector) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	if t, on := d.tracer.Get(); on {
		var span trace.Span
		ctx, span = t.Start(ctx, "scaler evaluate", trace.WithAttributes(attribute.String("a2abus.scaler.id", d.id)))
		defer span.End()
	}
	r, err := readPools(ctx, streams, members)
	if err != nil {
		if ctx.Err() == nil {
			d.m.sampleErrors.Inc()
			d.log.Warn("sample skipped", "err", err)
		}
		return
	}
	// The leadership is confirmed (the leader key refreshed) once per
	// evaluation, right before its first write.
	confirmed, confirmedOK := false, false
	confirm := func() bool {
		if !confirmed {
			confirmed, confirmedOK = true, el.campaign(ctx)
		}
		return confirmedOK
	}
	names := r.pools()
	statuses := make(map[string]PoolStatus, len(names))
	for _, name := range names {
		ps := d.pool(name)
		ps.src.set(r, name)
		statuses[name] = d.decide(ctx, bus, el, ps, confirm)
	}
	for name := range d.pools {
		if _, ok := statuses[name]; !ok {
			delete(d.pools, name) // its consumers were deleted and its members left
			d.m.dropPool(name)
			d.log.Info("pool no longer reports: its partition consumers and members are gone", "pool", name)
		}
	}
	leader := el.leader()
	for name, st := range statuses {
		st.Leader = leader
		statuses[name] = st
		if d.onStatus != nil {
			d.onStatus(st)
		}
	}
	d.m.pools.Set(float64(len(names)))
	d.m.lastSample.Set(float64(d.now().UnixNano()) / 1e9)
	d.status.Store(&Status{ID: d.id, Leader: leader, DryRun: d.cfg.DryRun, At: d.now(), Pools: statuses})
}

// decide samples one pool, lets its policy decide, and writes its target
// when due.
func (d *Daemon) decide(ctx context.Context, bus *agentbus.Bus, el *elector, ps *poolState, confirm func() bool) (st PoolStatus) {
	if t, on := d.tracer.Get(); on {
		var span trace.Span
		ctx, span = t.Start(ctx, "scaler decide "+ps.name, trace.WithAttributes(tracing.ConsumerGroup.String(ps.name)))
		defer func() {
			span.SetAttributes(attribute.Int("a2abus.scaler.from", st.Consumers), attribute.Int("a2abus.scaler.to", st.DesiredConsumers),
				attribute.String("a2abus.scaler.trigger", st.Trigger), attribute.String("a2abus.scaler.reason", st.Reason),
				attribute.Int("a2abus.scaler.backlog", int(st.Backlog)), attribute.Bool("a2abus.scaler.leader", el.leader()))
			span.End()
		}()
	}
	snap, err := ps.sampler.Sample(ctx) // from the reading in memory: cannot fail
	if err != nil {
		d.log.Warn("sample", "pool", ps.name, "err", err)
	}
	if t, ok, err := bus.ScaleTarget(ctx, ps.name); err == nil {
		ps.target, ps.hasTarget = t, ok
	} else if ctx.Err() == nil {
		d.log.Warn("scale target not read; using the last one known", "pool", ps.name, "err", err)
	}
	target, hasTarget := ps.target, ps.hasTarget
	live := snap.Consumers
	// The consumers of a new target count as starting until they have had
	// Lead to start: the policy must not mistake them for missing.
	if hasTarget && target.Consumers > snap.Consumers && snap.Time.Sub(target.At) < d.cfg.Policy.Lead {
		snap.Consumers = target.Consumers
	}
	dec := ps.policy.Decide(snap)
	d.m.observe(ps.name, snap, dec)

	// A pool none of whose members has reported, with nothing waiting, is
	// not decided on: its hosts are starting (or stopped), and a target
	// sized from "no consumers" would override what they are about to
	// run. Work that waits still scales a pool up from zero.
	unreported := live == 0 && snap.Backlog == 0
	if unreported {
		dec.To, dec.Reason = dec.From, "no member has reported and nothing waits: no decision"
	}
	switch {
	case !el.leader() || d.cfg.DryRun || unreported:
	case dec.To != dec.From && (!hasTarget || dec.To != target.Consumers):
		d.write(ctx, bus, ps, dec.To, dec.Reason, dec, confirm)
	case hasTarget && snap.Time.Sub(target.At) >= refreshAfter*d.cfg.Interval:
		why := fmt.Sprintf("unchanged at %d consumers; latest decision: %s", target.Consumers, dec.Reason)
		d.write(ctx, bus, ps, target.Consumers, why, dec, confirm)
	}
	d.m.setTarget(ps.name, ps.target, ps.hasTarget)

	st = PoolStatus{Pool: ps.name, DesiredConsumers: dec.To, Reason: dec.Reason, Trigger: string(dec.Trigger),
		DryRun: d.cfg.DryRun, At: dec.Time, Consumers: dec.From, Live: live, Ready: snap.Ready,
		Backlog: snap.Backlog, Waiting: max(snap.Backlog-max(snap.InFlight, 0), 0),
		ArrivalRate: snap.ArrivalRate, HandledRate: snap.HandledRate, CPU: snap.CPU}
	if ps.hasTarget {
		t := ps.target
		st.Target = &t
	}
	level := slog.LevelDebug
	if dec.To != dec.From {
		level = slog.LevelInfo
	}
	d.log.Log(ctx, level, "decision", "pool", ps.name, "from", dec.From, "to", dec.To, "trigger", dec.Trigger, "reason", dec.Reason,
		"leader", el.leader(), "dry_run", d.cfg.DryRun, "backlog", snap.Backlog, "live", live, "ready", snap.Ready)
	return st
}

// write stores a pool's target after confirming the leadership (a refresh
// of the leader key right before the evaluation's first write), and
// records it as the pool's stored target.
func (d *Daemon) write(ctx context.Context, bus *agentbus.Bus, ps *poolState, n int, why string, dec scaler.Decision, confirm func() bool) {
	t := agentbus.ScaleTarget{Consumers: n, Reason: why, At: dec.Time, By: d.id}
	if !confirm() {
		return // lost the lead: the new leader decides
	}
	if err := bus.SetScaleTarget(ctx, ps.name, t); err != nil {
		d.log.WarnContext(ctx, "scale target not written", "pool", ps.name, "consumers", n, "err", err)
		return
	}
	ps.target, ps.hasTarget = t, true
	d.m.writes.WithLabelValues(ps.name).Inc()
	trace.SpanFromContext(ctx).AddEvent("scale target written", trace.WithAttributes(attribute.Int("a2abus.scaler.consumers", n)))
	d.log.InfoContext(ctx, "scale target written", "pool", ps.name, "consumers", n, "reason", why)
}

// handler serves /metrics, /healthz, /readyz and /scale.
func (d *Daemon) handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(d.reg, promhttp.HandlerOpts{Registry: d.reg}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		switch nc := d.conn.Load(); {
		case nc == nil || !nc.IsConnected():
			http.Error(w, "not connected to the bus", http.StatusServiceUnavailable)
		case d.status.Load() == nil:
			http.Error(w, "no sample yet", http.StatusServiceUnavailable)
		default:
			fmt.Fprintln(w, "ready")
		}
	})
	mux.HandleFunc("GET /scale", func(w http.ResponseWriter, _ *http.Request) {
		st, ok := d.Status()
		if !ok {
			answerJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "no decision yet"})
			return
		}
		answerJSON(w, http.StatusOK, st)
	})
	mux.HandleFunc("GET /scale/{pool}", func(w http.ResponseWriter, r *http.Request) {
		pool := r.PathValue("pool")
		if err := placement.ValidatePoolName(pool); err != nil {
			answerJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		if _, ok := d.Status(); !ok {
			answerJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "no decision yet"})
			return
		}
		st, ok := d.PoolStatus(pool)
		if !ok {
			answerJSON(w, http.StatusNotFound, map[string]string{
				"error": fmt.Sprintf("pool %s has not reported: it has no partition consumers and no live members", pool)})
			return
		}
		answerJSON(w, http.StatusOK, st)
	})
	return mux
}

// answerJSON answers with v as JSON.
func answerJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false) // reasons say "backlog 5400 > 1000", not \u003e
	_ = enc.Encode(v)
}

// sleep waits for d or until ctx ends; it reports whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
