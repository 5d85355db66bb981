package agentd

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/a2abus/a2abus/agentbus"
	"github.com/a2abus/a2abus/placement"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
	"github.com/prometheus/client_golang/prometheus"
)

// HostsBucket holds one key per agentd that runs consumers, with the CPUs
// it offers: the scaler's consumer count is spread over these hosts by
// their capacity.
const HostsBucket = "a2abus_hosts"

// hostTTL is how long an agentd that stopped heartbeating counts as a host.
const hostTTL = 10 * time.Second

// hostInfo is an agentd's value in the hosts bucket.
type hostInfo struct {
	ID        string `json:"id"`
	Capacity  int    `json:"capacity"`  // CPUs it offers (GOMAXPROCS)
	Consumers int    `json:"consumers"` // consumers it runs
}

// consumerPool runs this agentd's consumers of the bus, one Serve call
// each: as many as its share of the scaler's target, or def while no
// scaler has set one.
type consumerPool struct {
	bus      *agentbus.Bus
	js       jetstream.JetStream
	log      *slog.Logger
	id       string // this agentd in the hosts bucket; consumers are id-c<n>
	capacity int
	def      int
	opts     []agentbus.ServeOption
	beat     time.Duration

	running []*consumerRun // touched only by run's goroutine
	gauge   prometheus.Gauge
	wanted  prometheus.Gauge
}

type consumerRun struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// newConsumerPool returns a pool of bus's consumers whose size follows the
// scale target; its metrics go on reg.
func newConsumerPool(bus *agentbus.Bus, js jetstream.JetStream, log *slog.Logger, reg prometheus.Registerer, def int, opts ...agentbus.ServeOption) (*consumerPool, error) {
	host, _ := os.Hostname()
	id := nuid.Next()
	id = id[len(id)-8:]
	if host != "" && placement.ValidateAgentID(host+"-"+id) == nil {
		id = host + "-" + id
	}
	p := &consumerPool{bus: bus, js: js, log: log, id: id, capacity: runtime.GOMAXPROCS(0), def: def, opts: opts,
		beat: hostTTL / 4,
		gauge: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "a2abus_agentd_consumers", Help: "Consumers this agentd runs.",
		}),
		wanted: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "a2abus_agentd_consumers_wanted", Help: "This agentd's share of the scaler's consumer target (or its --consumers default).",
		}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{p.gauge, p.wanted} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return p, nil
}

// run joins the hosts bucket, follows the scale target and resizes the
// pool until ctx ends; then it stops every consumer (each hands its groups
// over) and leaves.
func (p *consumerPool) run(ctx context.Context) error {
	hosts, err := p.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: HostsBucket, Description: "a2abus: agentd hosts that run consumers", TTL: hostTTL, History: 1,
	})
	if err != nil {
		return fmt.Errorf("bucket %s: %w", HostsBucket, err)
	}
	targets, err := p.bus.WatchScaleTarget(ctx)
	if err != nil {
		return err
	}
	defer func() {
		p.resize(0)
		dctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = hosts.Delete(dctx, p.id)
	}()
	var target *agentbus.ScaleTarget
	tick := time.NewTicker(p.beat)
	defer tick.Stop()
	for {
		peers, err := p.heartbeat(ctx, hosts)
		if err != nil && ctx.Err() == nil {
			p.log.Warn("consumer hosts", "err", err)
		}
		want := p.def
		if target != nil {
			want = min(spread(target.Consumers, peers)[p.id], maxConsumers)
		}
		p.wanted.Set(float64(want))
		if want != len(p.running) {
			p.log.Info("consumers", "from", len(p.running), "to", want, "hosts", len(peers), "target", target)
			p.resize(want)
		}
		select {
		case <-ctx.Done():
			return nil
		case t, ok := <-targets:
			if !ok {
				targets = nil // the connection closed; keep the last target
				continue
			}
			target = &t
		case <-tick.C:
		}
	}
}

// heartbeat refreshes this host's key and returns the live hosts, this one
// included.
func (p *consumerPool) heartbeat(ctx context.Context, kv jetstream.KeyValue) ([]hostInfo, error) {
	self := hostInfo{ID: p.id, Capacity: p.capacity, Consumers: len(p.running)}
	peers := []hostInfo{self}
	val, _ := json.Marshal(self)
	if _, err := kv.Put(ctx, p.id, val); err != nil {
		return peers, fmt.Errorf("heartbeat: %w", err)
	}
	keys, err := kv.Keys(ctx)
	if errors.Is(err, jetstream.ErrNoKeysFound) {
		return peers, nil
	}
	if err != nil {
		return peers, fmt.Errorf("list hosts: %w", err)
	}
	for _, k := range keys {
		if k == p.id {
			continue
		}
		e, err := kv.Get(ctx, k)
		if err != nil {
			continue // gone since the listing
		}
		var h hostInfo
		if json.Unmarshal(e.Value(), &h) == nil && h.ID == k {
			peers = append(peers, h)
		}
	}
	return peers, nil
}

// resize starts or stops consumers until n run. Stopping one waits until it
// has handed its groups over.
func (p *consumerPool) resize(n int) {
	for len(p.running) < n {
		ctx, cancel := context.WithCancel(context.Background())
		r := &consumerRun{cancel: cancel, done: make(chan struct{})}
		id := fmt.Sprintf("%s-c%d", p.id, len(p.running))
		opts := append(slices.Clip(p.opts), agentbus.ServeMemberID(id))
		go func() {
			defer close(r.done)
			if err := p.bus.Serve(ctx, opts...); err != nil {
				p.log.Error("consumer stopped", "consumer", id, "err", err)
			}
		}()
		p.running = append(p.running, r)
	}
	var stopping sync.WaitGroup
	for len(p.running) > n {
		r := p.running[len(p.running)-1]
		p.running = p.running[:len(p.running)-1]
		r.cancel()
		stopping.Go(func() { <-r.done })
	}
	stopping.Wait()
	p.gauge.Set(float64(len(p.running)))
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
