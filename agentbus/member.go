package agentbus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/a2abus/a2abus/internal/lease"
	"github.com/a2abus/a2abus/internal/sysinfo"
	"github.com/a2abus/a2abus/placement"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
	"github.com/prometheus/client_golang/prometheus"
)

// Ownership of a pool's partitions: the state machine and what makes each
// step safe. (docs/ownership.md has the same with the reasoning behind the
// choice of fences.)
//
// A member is one Serve call. It holds a lease on its key <pool>.<member>
// in MembersBucket (internal/lease: a KV key that expires TTL after its
// last write, renewed every TTL/4 at the revision last written). Every
// member computes the assignment of the pool's partitions to the pool's
// live members (placement.Assign, a function of the member list alone) at
// each heartbeat, and pulls the partitions assigned to it.
//
// A partition, as one member sees it, is in one of these states:
//
//	idle ──assigned──► starting ──consumer ready──► pulling
//	pulling ──unassigned, or Serve stopping──► draining ──its batch done──► idle
//	starting ──unassigned──► draining
//
// Who pulls is not what keeps the promises: two members may pull one
// partition for a moment while their member lists differ (a join or leave
// seen at different heartbeats). The promises rest on two fences:
//
//  1. The partition's durable consumer has MaxAckPending 1 (checked by the
//     server): it delivers the partition's next batch only once the batch
//     before is acknowledged or terminated. So at most one batch of a
//     partition is out at any time, a batch released (Nak) or let expire
//     is delivered again before any later batch of the partition, and
//     every key, which lives in one partition, is handled in stream order
//     whoever pulls. A new owner needs no wait and no check of the old
//     owner's state: until the old owner acknowledges, releases or lets
//     expire what it holds, the server gives the new owner nothing.
//  2. A hold on each delivered batch (hold.go): the member renews the
//     batch's ack wait with progress acks the server confirms, and loses
//     the hold, cancelling the batch's handlers (ErrFenced) and never
//     acknowledging or releasing it, at a deadline that passes before the
//     server may redeliver. So a member stalled or cut off past its ack
//     wait stops on its own before another member can get the batch.
//
// Draining: a member that stops pulling a partition lets its batch finish
// (its hold renewed meanwhile, however long the handlers take); Serve
// stopping gives the running handlers the drain time, then cancels them
// and releases (Naks) the unfinished batches, which fence 1 keeps in place
// for the next owner.
//
// Heterogeneous processes are kept apart by pools: a pool's partitions
// hold only the agents its members declared (the registry maps each agent
// to one pool), and a member whose agents differ from the pool's live
// members is refused (ErrPoolMismatch), so that no member is handed an
// envelope it has no handler for.

// KV buckets of the receive path.
const (
	// MembersBucket holds one key per live member, <pool>.<member>,
	// refreshed by its heartbeat and gone TTL after the last one.
	MembersBucket = "a2abus_members"

	// DefaultMemberTTL is how long a member that stopped heartbeating
	// counts as live: its partitions move to the others then. Its heartbeat
	// runs every TTL/4.
	DefaultMemberTTL = 10 * time.Second
)

// ServeMemberTTL sets the membership TTL (default 10 s): a member that
// dies loses its partitions this long after its last heartbeat. Every
// member of a bus must use the same.
func ServeMemberTTL(d time.Duration) ServeOption {
	return func(c *serveConfig) error {
		if d < time.Second {
			return fmt.Errorf("agentbus: member TTL %v under 1s", d)
		}
		c.memberTTL = d
		return nil
	}
}

// ServeMemberID names this member in the members bucket (default: the
// host name and a unique suffix). It must be unique among live members.
func ServeMemberID(id string) ServeOption {
	return func(c *serveConfig) error {
		if err := placement.ValidateAgentID(id); err != nil {
			return fmt.Errorf("agentbus: member ID: %w", err)
		}
		c.memberID = id
		return nil
	}
}

// Member is a live member as it reports itself in the members bucket at
// each heartbeat: the scaler reads these reports.
type Member struct {
	ID         string    `json:"id"`
	Pool       string    `json:"pool"`
	Agents     []string  `json:"agents"` // the agents it serves, sorted
	Host       string    `json:"host,omitempty"`
	PID        int       `json:"pid"`
	Started    time.Time `json:"started"`
	At         time.Time `json:"at"`         // when it reported
	Partitions int       `json:"partitions"` // partitions pulled
	Handled    uint64    `json:"handled"`    // envelopes handled since it started
	// CPUs is how many CPUs the process may use (GOMAXPROCS, or its
	// cgroup's quota where lower). CPU is the process's CPU use since the
	// previous heartbeat as a fraction of those, and HostCPU the host's busy
	// fraction; -1 when unknown (the first heartbeat, or a platform that
	// cannot tell). Members in one process report the same CPU.
	CPUs    float64 `json:"cpus"`
	CPU     float64 `json:"cpu"`
	HostCPU float64 `json:"host_cpu"`
}

// Members returns the live members of the bus (members whose heartbeat has
// not expired), of every pool, sorted by pool and ID; none when no member
// ever joined. Give ctx a deadline: a read lost to a leader change waits
// for it.
func (b *Bus) Members(ctx context.Context) ([]Member, error) {
	kv, err := b.js[0].KeyValue(ctx, MembersBucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("agentbus: members: %w", err)
	}
	lister, err := kv.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("agentbus: members: %w", err)
	}
	defer func() { _ = lister.Stop() }()
	var out []Member
	for key := range lister.Keys() {
		e, err := kv.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue // left or expired since the listing
		}
		if err != nil {
			return nil, fmt.Errorf("agentbus: member %s: %w", key, err)
		}
		var m Member
		if err := json.Unmarshal(e.Value(), &m); err != nil {
			return nil, fmt.Errorf("agentbus: member %s: %w", key, err)
		}
		out = append(out, m)
	}
	if err := ctx.Err(); err != nil { // a listing cut short ends without an error
		return nil, fmt.Errorf("agentbus: members: %w", err)
	}
	slices.SortFunc(out, func(a, b Member) int {
		if c := strings.Compare(a.Pool, b.Pool); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out, nil
}

// partition is one partition this member pulls or drains.
type partition struct {
	n    int
	name string // its consumer

	mu       sync.Mutex
	cc       jetstream.ConsumeContext
	direct   *nats.Subscription // direct requests to its agents
	stopping bool
	checking atomic.Bool // checkConsumer is running

	batches sync.WaitGroup // its batches being handled
	done    chan struct{}  // closed once stopped and drained
	// turn is closed when the last batch dispatched has been handled (mu
	// guards it): the next one waits for it. The server hands a partition
	// out one batch at a time (MaxAckPending 1), but a server that
	// restarted forgets the deliveries its consumer state had not written
	// yet and delivers the batch again while its first delivery still runs
	// here; handled one after the other, no two batches of a partition run
	// at once, whatever the server does.
	turn chan struct{}
	// handled and dead count the partition's envelopes handled and
	// dead-lettered here; nil without a registerer.
	handled, dead prometheus.Counter
}

// membership runs one member.
type membership struct {
	s     *server
	id    string
	key   string // <pool>.<id>
	kv    jetstream.KeyValue
	lease *lease.Lease
	info  Member
	cpu   sysinfo.Meter

	parts map[int]*partition // pulled or draining; touched by the heartbeat loop only
	// ready is set once the member pulled every partition assigned to it
	// (ServeOnReady); reconciled once a heartbeat assigned them.
	ready, reconciled bool
	// observed are the consumers with per-partition metric series.
	observed map[string]bool
	owned    int // partitions last added to the owned gauge
}

// member joins the pool and, on every heartbeat, computes the assignment
// of partitions to the pool's live members, pulls the partitions assigned
// to it and drains the others. When ctx ends it drains every partition
// (see Serve), leaves, and returns nil.
func (s *server) member(ctx context.Context, cancelHandlers context.CancelCauseFunc) error {
	b := s.bus
	id := s.cfg.memberID
	if id == "" {
		host, _ := os.Hostname()
		id = nuid.Next()
		if placement.ValidateAgentID(host) == nil && host != "" {
			id = host + "-" + id[len(id)-8:]
		}
	}
	s.id = id
	kv, err := s.bucket(ctx)
	if err != nil || kv == nil {
		return err
	}
	host, _ := os.Hostname()
	pool := s.cfg.pool
	m := &membership{s: s, id: id, key: pool + "." + id, kv: kv, parts: map[int]*partition{},
		info: Member{ID: id, Pool: pool, Agents: s.cfg.agents, Host: host, PID: os.Getpid(),
			Started: time.Now(), CPUs: sysinfo.CPUs()}}
	if m.lease, err = lease.New(kv, m.key, s.cfg.memberTTL); err != nil {
		return err
	}
	// The pool's members are checked before anything is declared, so that
	// a member refused for serving other agents routes none of its agents
	// to a pool whose members have no handler for them.
	if err := m.checkPeers(ctx); err != nil || ctx.Err() != nil {
		return err
	}
	if s.pool, err = s.declare(ctx); err != nil || s.pool == nil {
		return err
	}
	b.cfg.log.Info("joined pool", "pool", pool, "member", id, "agents", len(s.cfg.agents), "partitions", s.pool.Partitions())

	tick := time.NewTicker(s.cfg.memberTTL / 4)
	defer tick.Stop()
	for {
		err := m.reconcile(ctx)
		if errors.Is(err, ErrPoolMismatch) {
			b.cfg.log.Error("leaving the pool", "pool", pool, "member", id, "err", err)
			m.leave(cancelHandlers)
			return err
		}
		if err != nil && ctx.Err() == nil {
			b.cfg.log.Warn("membership", "pool", pool, "member", id, "err", err)
		}
		m.reconciled = m.reconciled || err == nil
	beat:
		for {
			m.checkReady()
			select {
			case <-ctx.Done():
				m.leave(cancelHandlers)
				return nil
			case <-s.started: // a partition pulls: ready now?
			case <-tick.C:
				break beat
			}
		}
	}
}

// bucket opens the members bucket, retrying for a minute through what a
// cluster recovering from a node restart answers (no suitable peers, no
// leader yet) rather than failing Serve on a passing condition. nil, nil
// when ctx ended.
func (s *server) bucket(ctx context.Context) (jetstream.KeyValue, error) {
	deadline := time.Now().Add(time.Minute)
	for {
		// Opened before it would be created, so that an agent's role,
		// which may not create buckets, can join.
		kv, err := s.bus.KeyValue(ctx, membersConfig(s.cfg.memberTTL))
		if err == nil {
			err = checkMemberTTL(ctx, kv, s.cfg.memberTTL)
			if errors.Is(err, ErrPoolMismatch) {
				return nil, err
			}
		}
		switch {
		case err == nil:
			return kv, nil
		case ctx.Err() != nil:
			return nil, nil
		case time.Now().After(deadline):
			return nil, err
		}
		s.bus.cfg.log.Warn("KV bucket not ready; retrying", "bucket", MembersBucket, "err", err)
		select {
		case <-ctx.Done():
			return nil, nil
		case <-time.After(time.Second):
		}
	}
}

func membersConfig(ttl time.Duration) jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{Bucket: MembersBucket, Description: "a2abus: live members of each pool", TTL: ttl, History: 1}
}

// checkMemberTTL refuses a members bucket whose TTL is not the member's:
// a member that heartbeats every TTL/4 of a longer TTL than the bucket's
// would drop out of its pool between heartbeats.
func checkMemberTTL(ctx context.Context, kv jetstream.KeyValue, ttl time.Duration) error {
	st, err := kv.Status(ctx)
	if err != nil {
		return fmt.Errorf("agentbus: bucket %s: %w", MembersBucket, err)
	}
	if have := st.TTL(); have != ttl {
		return fmt.Errorf("%w: bucket %s expires members after %v; this member's TTL is %v (ServeMemberTTL, agentd's --member-ttl, must be the same on every member)",
			ErrPoolMismatch, MembersBucket, have, ttl)
	}
	return nil
}

// EnsureBuckets creates the pool registry and the members bucket (members
// expire memberTTL after their last heartbeat) if they do not exist, as
// agentd does at start-up, so that agents whose credentials may not create
// buckets can serve and send. An existing members bucket with another TTL
// is an error wrapping ErrPoolMismatch.
func (b *Bus) EnsureBuckets(ctx context.Context, memberTTL time.Duration) error {
	if _, err := b.poolsBucket(ctx); err != nil {
		return err
	}
	kv, err := b.KeyValue(ctx, membersConfig(memberTTL))
	if err != nil {
		return err
	}
	return checkMemberTTL(ctx, kv, memberTTL)
}

// checkPeers refuses to join a pool whose live members serve other agents:
// the partitions would hand this member envelopes it has no handler for,
// or the others envelopes of its agents.
func (m *membership) checkPeers(ctx context.Context) error {
	var (
		peers []Member
		err   error
	)
	for attempt := 0; attempt < 5; attempt++ {
		if peers, err = m.peers(ctx); err == nil || ctx.Err() != nil {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Duration(attempt+1) * 200 * time.Millisecond):
		}
	}
	if ctx.Err() != nil {
		return nil // stopping
	}
	if err != nil {
		return fmt.Errorf("agentbus: serve: list the members of pool %s: %w", m.info.Pool, err)
	}
	for _, p := range peers {
		if p.ID != m.id && !slices.Equal(p.Agents, m.info.Agents) {
			return m.mismatch(p)
		}
	}
	return nil
}

func (m *membership) mismatch(p Member) error {
	return fmt.Errorf("%w: pool %s's member %s serves %v; this member serves %v (members of a pool must serve the same agents: give this one its own pool with ServePool)",
		ErrPoolMismatch, m.info.Pool, p.ID, p.Agents, m.info.Agents)
}

// elder reports whether p joined before m: of two members of a pool that
// serve different agents (both checked an empty pool at once), the elder
// stays and the other leaves.
func (m *membership) elder(p Member) bool {
	if !p.Started.Equal(m.info.Started) {
		return p.Started.Before(m.info.Started)
	}
	return p.ID < m.id
}

// peers reads the pool's live members.
func (m *membership) peers(ctx context.Context) ([]Member, error) {
	ctx, cancel := context.WithTimeout(ctx, m.s.cfg.memberTTL/2)
	defer cancel()
	lister, err := m.kv.ListKeysFiltered(ctx, m.info.Pool+".*")
	if err != nil {
		return nil, err
	}
	defer func() { _ = lister.Stop() }()
	var out []Member
	for key := range lister.Keys() {
		e, err := m.kv.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		var p Member
		if err := json.Unmarshal(e.Value(), &p); err != nil || p.Pool+"."+p.ID != key {
			continue // not a member record of this version
		}
		out = append(out, p)
	}
	if err := ctx.Err(); err != nil { // a listing cut short ends without an error
		return nil, err
	}
	return out, nil
}

// reconcile is one heartbeat: renew our member key, then act on the
// assignment of the pool's live members.
func (m *membership) reconcile(ctx context.Context) error {
	m.reap()
	m.info.Partitions = len(m.parts)
	m.info.At = time.Now()
	m.info.Handled = m.s.handled.Load()
	m.info.CPU, m.info.HostCPU = m.cpu.Sample(m.info.At)
	val, _ := json.Marshal(m.info)
	hctx, cancel := context.WithTimeout(ctx, m.s.cfg.memberTTL/2)
	err := m.lease.Keep(hctx, val)
	cancel()
	if err != nil {
		return fmt.Errorf("heartbeat: %w", err)
	}
	peers, err := m.peers(ctx)
	if err != nil {
		return fmt.Errorf("list members: %w", err)
	}
	names := []string{m.id}
	for _, p := range peers {
		switch {
		case p.ID == m.id:
		case slices.Equal(p.Agents, m.info.Agents):
			names = append(names, p.ID)
		case m.elder(p):
			return m.mismatch(p)
		}
	}
	a, err := placement.Assign(m.s.pool.Partitions(), names)
	if err != nil {
		return err
	}
	want := map[int]bool{}
	for _, n := range a.Groups(m.id) {
		want[n] = true
	}
	for n, p := range m.parts {
		if !want[n] && !p.isStopping() {
			go m.s.stopPartition(p)
		}
	}
	for n := range want {
		if p, ok := m.parts[n]; ok && !p.isStopping() {
			continue
		} else if ok {
			continue // still draining: take it again once drained (reap)
		}
		p := m.s.newPartition(n)
		m.parts[n] = p
		go m.s.startPartition(ctx, p)
	}
	m.observe(ctx)
	return nil
}

// checkReady calls ServeOnReady's function once every partition assigned
// to the member at its last heartbeat pulls.
func (m *membership) checkReady() {
	if m.ready || !m.reconciled || m.s.cfg.onReady == nil {
		return
	}
	for _, p := range m.parts {
		p.mu.Lock()
		pulling := p.cc != nil && !p.stopping
		stopping := p.stopping
		p.mu.Unlock()
		if !pulling && !stopping {
			return
		}
	}
	m.ready = true
	go m.s.cfg.onReady()
}

// reap forgets the partitions that have drained.
func (m *membership) reap() {
	for n, p := range m.parts {
		select {
		case <-p.done:
			delete(m.parts, n)
		default:
		}
	}
}

// leave drains every partition: pulls stop at once; the handlers running
// get the drain time, then their contexts are canceled and their batches
// released. Then it removes our member key so the others reassign at once.
func (m *membership) leave(cancelHandlers context.CancelCauseFunc) {
	s := m.s
	close(s.stopping)
	// The member key goes first, so that the others take the partitions
	// at their next heartbeat instead of after the drain: safe, since a
	// partition's next batch waits for the one this member still holds
	// (MaxAckPending 1), whoever pulls.
	kctx, kcancel := context.WithTimeout(context.Background(), leaveTimeout)
	if err := m.lease.Release(kctx); err != nil {
		s.bus.cfg.log.Debug("leave: member key stays until it expires", "member", m.id, "err", err)
	}
	kcancel()
	var stopped sync.WaitGroup
	for _, p := range m.parts {
		stopped.Go(func() { s.stopPartition(p) })
	}
	drained := make(chan struct{})
	go func() {
		stopped.Wait()
		s.batches.Wait()
		close(drained)
	}()
	select {
	case <-drained:
	case <-time.After(s.cfg.drainTimeout):
		s.bus.cfg.log.Warn("drain time over: canceling the handlers still running; their batches go to the next member",
			"pool", s.pool.Name(), "member", m.id, "drain", s.cfg.drainTimeout)
		cancelHandlers(ErrServeStopped)
		select {
		case <-drained:
		case <-time.After(max(s.cfg.drainTimeout, 5*time.Second)):
			// Handlers that ignore their canceled context: their batches
			// are neither acknowledged nor released, and come back when
			// their ack wait passes.
			s.bus.cfg.log.Error("handlers still running after their contexts were canceled; leaving without them",
				"pool", s.pool.Name(), "member", m.id)
		}
	}
	if r := &s.bus.recv; r.partsOwned != nil {
		r.partsOwned.Sub(float64(m.owned))
		m.owned = 0
		for key := range m.observed {
			m.dropSeries(key)
		}
		m.observed = nil
	}
}

// leaveTimeout bounds deleting the member key on the way out: if it fails,
// the key expires after the TTL anyway.
const leaveTimeout = 2 * time.Second

func (s *server) newPartition(n int) *partition {
	name, _ := s.pool.ConsumerName(n)
	p := &partition{n: n, name: name, done: make(chan struct{})}
	if r := &s.bus.recv; r.partHandled != nil {
		p.handled = r.partHandled.WithLabelValues(name)
		p.dead = r.partDead.WithLabelValues(name)
	}
	return p
}

func (p *partition) isStopping() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stopping
}

// startPartition creates (or updates) the partition's durable consumer and
// starts pulling from it, unless it was stopped meanwhile. A failed start
// leaves the partition drained, for the next heartbeat to try again.
func (s *server) startPartition(ctx context.Context, p *partition) {
	cc, direct, err := s.consume(ctx, p)
	p.mu.Lock()
	if err == nil && !p.stopping {
		p.cc, p.direct = cc, direct
		p.mu.Unlock()
		s.bus.cfg.log.Debug("pulling partition", "consumer", p.name)
		select {
		case s.started <- struct{}{}:
		default: // the heartbeat loop has a wake-up pending
		}
		go func() {
			<-cc.Closed()
			s.losePartition(p, "its consume loop ended")
		}()
		return
	}
	p.stopping = true
	p.mu.Unlock()
	if err != nil && ctx.Err() == nil {
		s.bus.cfg.log.Warn("start partition; retrying at the next heartbeat", "consumer", p.name, "err", err)
	}
	if cc != nil {
		stopDirect(direct)
		cc.Drain()
		<-cc.Closed()
	}
	p.batches.Wait()
	close(p.done)
}

func (s *server) consume(ctx context.Context, p *partition) (jetstream.ConsumeContext, *nats.Subscription, error) {
	cfg, err := ConsumerConfig(s.pool, p.n, s.cfg.ackWait)
	if err != nil {
		return nil, nil, err
	}
	cons, err := s.bus.js[0].CreateOrUpdateConsumer(ctx, StreamName, cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("agentbus: consumer %s: %w", cfg.Durable, err)
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
			return nil, nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	cc, err := cons.Consume(func(msg jetstream.Msg) { s.dispatch(p, msg) },
		// MaxAckPending 1 has the server hand out one batch at a time; a
		// pull of a few keeps the next one coming right after the ack.
		jetstream.PullMaxMessages(4),
		// Short pulls: a pull lost in a leader change is noticed (two
		// missed heartbeats) within seconds, not the default 30 s.
		jetstream.PullExpiry(5*time.Second),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			if s.hctx.Err() != nil {
				return
			}
			s.bus.cfg.log.Warn("consume", "consumer", cfg.Durable, "err", err)
			// Missed heartbeats are what a pull on a deleted consumer
			// sees: find out whether it still exists.
			if errors.Is(err, jetstream.ErrNoHeartbeat) || errors.Is(err, jetstream.ErrConsumerDeleted) ||
				errors.Is(err, jetstream.ErrConsumerNotFound) {
				go s.checkConsumer(p)
			}
		}))
	if err != nil {
		return nil, nil, fmt.Errorf("agentbus: consume %s: %w", cfg.Durable, err)
	}
	tok, _ := s.pool.PartitionToken(p.n)
	// A queue group, so that a request goes to one member even while two
	// pull the partition for a moment during a hand-over.
	direct, err := s.bus.conns[0].QueueSubscribe(DirectSubjectPrefix+"."+s.pool.Name()+"."+tok+".*", "a2abus",
		func(m *nats.Msg) { s.handleDirect(p, m) })
	if err != nil {
		cc.Stop()
		return nil, nil, fmt.Errorf("agentbus: direct requests of %s: %w", cfg.Durable, err)
	}
	return cc, direct, nil
}

// stopPartition stops pulling from a partition, lets the batch already
// delivered be dispatched and waits until it is done (acknowledged, or
// released when Serve is stopping). A partition still starting is stopped
// by startPartition when it has started.
func (s *server) stopPartition(p *partition) {
	p.mu.Lock()
	if p.stopping {
		p.mu.Unlock()
		<-p.done
		return
	}
	p.stopping = true
	cc, direct := p.cc, p.direct
	p.mu.Unlock()
	if cc == nil {
		<-p.done // startPartition finishes the stop
		return
	}
	stopDirect(direct)
	cc.Drain()
	<-cc.Closed()
	p.batches.Wait()
	close(p.done)
}

// checkConsumer gives the partition up when its consumer no longer
// exists (deleted by an operator, or lost with its stream's data), so that
// the next heartbeat creates it again rather than this member pulling
// nothing while it keeps its place in the pool.
func (s *server) checkConsumer(p *partition) {
	if !p.checking.CompareAndSwap(false, true) {
		return
	}
	defer p.checking.Store(false)
	// Until the server says whether the consumer exists: a lookup that
	// fails otherwise (a timeout under load, a leader change) is asked
	// again, since the pull that raised the question may have ended and
	// raise no other.
	for wait := 100 * time.Millisecond; ; wait = min(2*wait, 2*time.Second) {
		ctx, cancel := context.WithTimeout(s.hctx, 5*time.Second)
		_, err := s.bus.js[0].Consumer(ctx, StreamName, p.name)
		cancel()
		switch {
		case errors.Is(err, jetstream.ErrConsumerNotFound):
			s.losePartition(p, "its consumer was deleted")
			return
		case err == nil, s.hctx.Err() != nil:
			return
		}
		p.mu.Lock()
		stopping := p.stopping
		p.mu.Unlock()
		if stopping {
			return
		}
		select {
		case <-s.hctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// losePartition stops a partition that stopped being pulled without being
// asked to (its consumer deleted, its consume loop ended), counts and logs
// it, and leaves it for the next heartbeat to start again.
func (s *server) losePartition(p *partition, why string) {
	p.mu.Lock()
	if p.stopping {
		p.mu.Unlock()
		return
	}
	p.stopping = true
	cc, direct := p.cc, p.direct
	p.mu.Unlock()
	s.bus.recv.lostParts.Add(1)
	s.bus.cfg.log.Warn("partition lost: starting it again at the next heartbeat", "consumer", p.name, "why", why)
	cc.Stop()
	stopDirect(direct)
	p.batches.Wait()
	close(p.done)
}

// stopDirect stops a partition's direct requests without losing any: a
// drain, so that the requests the server routed here before it saw the
// unsubscription are still handled and answered (an Unsubscribe drops
// them, and their requesters, who got no "no responders" either, wait
// for their deadlines). It returns once the last handler has returned.
func stopDirect(sub *nats.Subscription) {
	closed := sub.StatusChanged(nats.SubscriptionClosed)
	if sub.Drain() != nil {
		_ = sub.Unsubscribe()
		return
	}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-closed:
			return
		case <-tick.C:
			if !sub.IsValid() { // its connection closed
				return
			}
		}
	}
}

// observe updates the per-partition metrics of the partitions pulled, once
// per heartbeat: one consumer info request per partition.
func (m *membership) observe(ctx context.Context) {
	r := &m.s.bus.recv
	if r.partsOwned == nil {
		return
	}
	var pulling []*partition
	for _, p := range m.parts {
		if !p.isStopping() {
			pulling = append(pulling, p)
		}
	}
	// Several Serve calls may share the gauge: each adds its change.
	r.partsOwned.Add(float64(len(pulling) - m.owned))
	m.owned = len(pulling)
	seen := make(map[string]bool, len(pulling))
	for _, p := range pulling {
		info, err := m.s.bus.js[0].Consumer(ctx, StreamName, p.name)
		if err != nil {
			continue
		}
		ci := info.CachedInfo()
		r.seriesMu.Lock()
		r.seriesOwner[p.name] = m
		r.partPending.WithLabelValues(p.name).Set(float64(ci.NumPending))
		r.partAckPending.WithLabelValues(p.name).Set(float64(ci.NumAckPending))
		r.partRedelivered.WithLabelValues(p.name).Set(float64(ci.NumRedelivered))
		r.seriesMu.Unlock()
		seen[p.name] = true
	}
	// Drop the series of partitions no longer pulled here (not Reset,
	// which would show a scrape no series at all between heartbeats).
	for key := range m.observed {
		if !seen[key] {
			m.dropSeries(key)
		}
	}
	m.observed = seen
}

// dropSeries deletes a consumer's per-partition series, unless another
// member of this bus reports it now.
func (m *membership) dropSeries(key string) {
	r := &m.s.bus.recv
	r.seriesMu.Lock()
	defer r.seriesMu.Unlock()
	if r.seriesOwner[key] != m {
		return
	}
	delete(r.seriesOwner, key)
	r.partPending.DeleteLabelValues(key)
	r.partAckPending.DeleteLabelValues(key)
	r.partRedelivered.DeleteLabelValues(key)
}
