package agentd

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/a2abus/a2abus/agentbus"
	"github.com/a2abus/a2abus/internal/lease"
	"github.com/a2abus/a2abus/internal/sysinfo"
	"github.com/a2abus/a2abus/placement"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
	"github.com/prometheus/client_golang/prometheus"
)

// HostsBucket holds one key per agentd that runs consumers, <pool>.<host>,
// with the CPUs it offers: a lease (internal/lease) that the agentd renews
// every hostTTL/4 and that expires hostTTL after its last renewal. A
// pool's scale target is spread over the hosts of that pool only, by their
// capacity.
const HostsBucket = "a2abus_hosts"

// hostTTL is how long an agentd that stopped renewing its key counts as a
// host; one heartbeat's requests take at most heartbeatTimeout, and
// releasing the key on the way out at most releaseTimeout (it expires
// anyway).
const (
	hostTTL          = 10 * time.Second
	heartbeatTimeout = 5 * time.Second
	releaseTimeout   = 2 * time.Second
)

// hostInfo is an agentd's value in the hosts bucket.
type hostInfo struct {
	ID        string `json:"id"`
	Pool      string `json:"pool"`
	Capacity  int    `json:"capacity"`  // thousandths of the CPUs it offers
	Consumers int    `json:"consumers"` // consumers it runs
}

// consumerPool runs this agentd's consumers of its pool, one Serve call
// each: as many as its share of the pool's scale target, or def while no
// scaler has set one.
type consumerPool struct {
	bus      *agentbus.Bus
	js       jetstream.JetStream
	log      *slog.Logger
	pool     string // the pool its consumers serve; its target and hosts are this pool's
	id       string // this agentd in the hosts bucket; consumers are id-c<n>
	capacity int
	def      int
	opts     []agentbus.ServeOption
	beat     time.Duration
	retry    time.Duration // wait before retrying a failed set-up step

	// Touched only by run's goroutine until it returns, then by wait.
	next     int            // number of the next consumer started
	running  []*consumerRun // consumers that count
	stopping []*consumerRun // cancelled, handing their partitions over

	gauge  prometheus.Gauge
	wanted prometheus.Gauge

	// For readiness, read by any goroutine: how many consumers run, and
	// how many of those pull all their partitions.
	size, pulling atomic.Int32
}

type consumerRun struct {
	id     string
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	ready   bool // counted in its pool's pulling
	stopped bool // cancelled or ended: never counted again
}

// setReady counts r as pulling in p, unless it was stopped.
func (r *consumerRun) setReady(p *consumerPool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.ready && !r.stopped {
		r.ready = true
		p.pulling.Add(1)
	}
}

// stop uncounts r for good.
func (r *consumerRun) stop(p *consumerPool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ready {
		p.pulling.Add(-1)
	}
	r.ready, r.stopped = false, true
}

// consuming reports whether the pool consumes as it should: a consumer
// pulls all its partitions, or none is meant to run (its size is -1 until
// it is first sized).
func (p *consumerPool) consuming() bool { return p.size.Load() == 0 || p.pulling.Load() > 0 }

func (r *consumerRun) ended() bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

// cpuCapacity is what this host offers, in thousandths of a CPU.
func cpuCapacity() int { return max(int(sysinfo.CPUs()*1000), 1) }

// newConsumerPool returns a pool of bus's consumers of pool, whose size
// follows pool's scale target; its metrics go on reg. Its consumers Serve
// with opts and ServePool(pool).
func newConsumerPool(bus *agentbus.Bus, js jetstream.JetStream, log *slog.Logger, reg prometheus.Registerer, pool string, def int, opts ...agentbus.ServeOption) (*consumerPool, error) {
	if err := placement.ValidatePoolName(pool); err != nil {
		return nil, fmt.Errorf("consumers: %w", err)
	}
	host, _ := os.Hostname()
	id := nuid.Next()
	id = id[len(id)-8:]
	if host != "" && placement.ValidateAgentID(host+"-"+id) == nil {
		id = host + "-" + id
	}
	labels := prometheus.Labels{"pool": pool}
	p := &consumerPool{bus: bus, js: js, log: log.With("pool", pool), pool: pool, id: id, capacity: cpuCapacity(), def: def,
		opts: append(slices.Clip(opts), agentbus.ServePool(pool)),
		beat: hostTTL / 4, retry: time.Second,
		gauge: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "a2abus_agentd_consumers", Help: "Consumers this agentd runs.", ConstLabels: labels,
		}),
		wanted: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "a2abus_agentd_consumers_wanted", Help: "This agentd's share of its pool's consumer target (or its --consumers default).",
			ConstLabels: labels,
		}),
	}
	p.size.Store(-1)
	if reg != nil {
		for _, c := range []prometheus.Collector{p.gauge, p.wanted} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return p, nil
}

// hosts is this agentd's claim in the hosts bucket.
type hosts struct {
	kv    jetstream.KeyValue
	key   string       // <pool>.<id>
	lease *lease.Lease // on key
}

// run joins the hosts bucket, follows the pool's scale target and resizes
// the pool until ctx ends; then it cancels every consumer (each hands its
// partitions over: wait for them with wait) and leaves the hosts bucket.
// Set-up steps that fail (a cluster still electing leaders) are retried
// until ctx ends; the pool runs its default meanwhile.
func (p *consumerPool) run(ctx context.Context) {
	defer p.resize(0)
	h := p.openHosts(ctx)
	if h == nil {
		return // ctx ended
	}
	defer func() {
		rctx, cancel := context.WithTimeout(context.Background(), releaseTimeout)
		defer cancel()
		if err := h.lease.Release(rctx); err != nil {
			p.log.Debug("consumer hosts: this host's key stays until it expires", "err", err)
		}
	}()
	var (
		targets <-chan *agentbus.ScaleTarget
		target  *agentbus.ScaleTarget
		peers   []hostInfo // the last list of the pool's hosts read
	)
	tick := time.NewTicker(p.beat)
	defer tick.Stop()
	for {
		if targets == nil {
			var err error
			if targets, err = p.bus.WatchScaleTarget(ctx, p.pool); err != nil && ctx.Err() == nil {
				p.log.Warn("scale target: retrying at the next heartbeat", "err", err)
			} else if err == nil {
				// The watch's first value is the stored target (or none):
				// take it before sizing the pool, so that a host joining a
				// scaled pool does not start its default first.
				select {
				case t, ok := <-targets:
					if ok {
						target = t
					}
				case <-time.After(p.beat):
				case <-ctx.Done():
				}
			}
		}
		// A failed heartbeat keeps the last list: with this host alone it
		// would take the whole target.
		if ps, err := p.heartbeat(ctx, h); err == nil {
			peers = ps
		} else if ctx.Err() == nil {
			p.log.Warn("consumer hosts: keeping the last list", "err", err)
		}
		if ctx.Err() != nil {
			return
		}
		p.reap()
		want := p.want(target, peers)
		p.wanted.Set(float64(want))
		if want != len(p.running) {
			p.log.Info("consumers", "from", len(p.running), "to", want, "hosts", len(peers), "target", target)
			p.resize(want)
		}
		select {
		case <-ctx.Done():
			return
		case t, ok := <-targets:
			if !ok {
				targets = nil // the watch ended: watch again
				continue
			}
			target = t
		case <-tick.C:
		}
	}
}

// want is how many consumers this host should run: its default without a
// target, its share of the target over the pool's hosts peers, or as many
// as it runs while it has no list of hosts yet.
func (p *consumerPool) want(target *agentbus.ScaleTarget, peers []hostInfo) int {
	switch {
	case target == nil || target.Consumers < 0:
		return p.def
	case peers == nil:
		return len(p.running)
	default:
		return min(spread(target.Consumers, peers)[p.id], maxConsumers)
	}
}

// openHosts opens the hosts bucket, with the A2A stream's replicas, and
// this host's lease in it, retrying until it succeeds or ctx ends (then
// nil).
func (p *consumerPool) openHosts(ctx context.Context) *hosts {
	for {
		s, err := p.js.Stream(ctx, agentbus.StreamName)
		if err == nil {
			var kv jetstream.KeyValue
			kv, err = lease.Bucket(ctx, p.js, HostsBucket, "a2abus: agentd hosts that run consumers, <pool>.<host>",
				hostTTL, s.CachedInfo().Config.Replicas)
			if err == nil {
				key := p.pool + "." + p.id
				l, err := lease.New(kv, key, hostTTL)
				if err != nil {
					p.log.Error("consumer hosts", "err", err) // cannot happen: the key and TTL are valid
					return nil
				}
				return &hosts{kv: kv, key: key, lease: l}
			}
		}
		if ctx.Err() != nil {
			return nil
		}
		p.log.Warn("consumer hosts bucket not ready; running the default consumers and retrying", "bucket", HostsBucket, "err", err)
		if len(p.running) == 0 {
			p.resize(p.def)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(p.retry):
		}
	}
}

// heartbeat renews this host's lease and returns the pool's live hosts,
// this one included, or an error if it could not renew or read them all.
// A host whose lease is lost (its key expired while it could not renew)
// keeps its consumers: the hosts registry only divides the target, and
// the consumers' own fences keep the promises; Keep takes the key again.
func (p *consumerPool) heartbeat(ctx context.Context, h *hosts) ([]hostInfo, error) {
	// A request lost in a leader change must not hold the pool's loop.
	ctx, cancel := context.WithTimeout(ctx, heartbeatTimeout)
	defer cancel()
	self := hostInfo{ID: p.id, Pool: p.pool, Capacity: p.capacity, Consumers: len(p.running)}
	val, _ := json.Marshal(self)
	if err := h.lease.Keep(ctx, val); err != nil {
		return nil, fmt.Errorf("heartbeat: %w", err)
	}
	lister, err := h.kv.ListKeysFiltered(ctx, p.pool+".*")
	if err != nil {
		return nil, fmt.Errorf("list hosts: %w", err)
	}
	defer func() { _ = lister.Stop() }()
	peers := []hostInfo{self}
	for k := range lister.Keys() {
		if k == h.key {
			continue
		}
		e, err := h.kv.Get(ctx, k)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue // gone since the listing
		}
		if err != nil {
			return nil, fmt.Errorf("host %s: %w", k, err)
		}
		var hi hostInfo
		if err := json.Unmarshal(e.Value(), &hi); err != nil || hi.Pool+"."+hi.ID != k {
			p.log.Warn("ignoring an unreadable host entry", "key", k, "err", err)
			continue
		}
		peers = append(peers, hi)
	}
	if ctx.Err() != nil {
		// The listing ends early, without an error, when ctx ends: a
		// partial list would give this host too large a share.
		return nil, fmt.Errorf("list hosts: %w", ctx.Err())
	}
	return peers, nil
}

// reap forgets the consumers that have finished: stopped ones, and running
// ones whose Serve returned by itself (resize then starts new ones, at most
// once per heartbeat).
func (p *consumerPool) reap() {
	p.stopping = slices.DeleteFunc(p.stopping, (*consumerRun).ended)
	p.running = slices.DeleteFunc(p.running, func(r *consumerRun) bool {
		if r.ended() {
			p.log.Warn("consumer ended by itself; starting another", "consumer", r.id)
			return true
		}
		return false
	})
	p.size.Store(int32(len(p.running)))
	p.gauge.Set(float64(len(p.running)))
}

// resize starts or cancels consumers until n run. A cancelled consumer
// hands its partitions over in the background; wait waits for them.
func (p *consumerPool) resize(n int) {
	for len(p.running) < n {
		ctx, cancel := context.WithCancel(context.Background())
		r := &consumerRun{id: fmt.Sprintf("%s-c%d", p.id, p.next), cancel: cancel, done: make(chan struct{})}
		p.next++
		opts := append(slices.Clip(p.opts), agentbus.ServeMemberID(r.id), agentbus.ServeOnReady(func() { r.setReady(p) }))
		go func() {
			defer close(r.done)
			defer r.stop(p)
			if err := p.bus.Serve(ctx, opts...); err != nil {
				p.log.Error("consumer stopped", "consumer", r.id, "err", err)
			}
		}()
		p.running = append(p.running, r)
	}
	for len(p.running) > n {
		r := p.running[len(p.running)-1]
		p.running = p.running[:len(p.running)-1]
		r.stop(p)
		r.cancel()
		p.stopping = append(p.stopping, r)
	}
	p.size.Store(int32(len(p.running)))
	p.gauge.Set(float64(len(p.running)))
}

// wait waits, after run returned, until every consumer has handed its
// partitions over, or ctx ends (their leases and member keys then expire).
func (p *consumerPool) wait(ctx context.Context) error {
	for _, r := range append(p.running, p.stopping...) {
		select {
		case <-r.done:
		case <-ctx.Done():
			return fmt.Errorf("consumers still handing over: %w", ctx.Err())
		}
	}
	return nil
}

// spread divides total consumers over hosts in proportion to their
// capacity, by largest remainder (ties to the lower ID), so that every
// agentd computes the same shares from the same hosts.
func spread(total int, hosts []hostInfo) map[string]int {
	out := make(map[string]int, len(hosts))
	capSum := 0
	for _, h := range hosts {
		capSum += max(h.Capacity, 1)
	}
	if total <= 0 || capSum == 0 {
		for _, h := range hosts {
			out[h.ID] = 0
		}
		return out
	}
	type rem struct {
		id   string
		frac int // remainder of total × capacity / capSum, in units of 1/capSum
	}
	rems := make([]rem, 0, len(hosts))
	given := 0
	for _, h := range hosts {
		share := total * max(h.Capacity, 1)
		out[h.ID] = share / capSum
		given += share / capSum
		rems = append(rems, rem{h.ID, share % capSum})
	}
	slices.SortFunc(rems, func(a, b rem) int {
		if c := cmp.Compare(b.frac, a.frac); c != 0 {
			return c
		}
		return cmp.Compare(a.id, b.id)
	})
	for i := 0; given < total; i++ {
		out[rems[i%len(rems)].id]++
		given++
	}
	return out
}
