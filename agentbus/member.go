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
	"time"

	"github.com/a2abus/a2abus/internal/sysinfo"
	"github.com/a2abus/a2abus/placement"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
)

// KV buckets of the receive path.
const (
	// MembersBucket holds one key per live consumer process, refreshed by
	// its heartbeat and gone TTL after the last one.
	MembersBucket = "a2abus_members"
	// LeasesBucket holds one key per group being consumed, whose value is
	// the member consuming it: at most one member pulls a group at a time.
	LeasesBucket = "a2abus_leases"

	// DefaultMemberTTL is how long a member that stopped heartbeating keeps
	// its groups. Its heartbeat runs every TTL/4.
	DefaultMemberTTL = 10 * time.Second
)

// ServeMemberTTL sets the membership and lease TTL (default 10 s): a
// consumer that dies loses its groups this long after its last heartbeat.
// Every member of a bus must use the same.
func ServeMemberTTL(d time.Duration) ServeOption {
	return func(c *serveConfig) error {
		if d < time.Second {
			return fmt.Errorf("agentbus: member TTL %v under 1s", d)
		}
		c.memberTTL = d
		return nil
	}
}

// ServeMemberID names this consumer in the members bucket (default: the
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

// Member is a live consumer as it reports itself in the members bucket at
// each heartbeat: the scaler reads these reports.
type Member struct {
	ID      string    `json:"id"`
	Host    string    `json:"host,omitempty"`
	PID     int       `json:"pid"`
	Started time.Time `json:"started"`
	At      time.Time `json:"at"`      // when it reported
	Groups  int       `json:"groups"`  // groups held
	Handled uint64    `json:"handled"` // envelopes handled since it started
	// CPUs is how many CPUs the process may use (GOMAXPROCS, or its
	// cgroup's quota where lower). CPU is the process's CPU use since the
	// previous heartbeat as a fraction of those, and HostCPU the host's busy
	// fraction; -1 when unknown (the first heartbeat, or a platform that
	// cannot tell). Consumers in one process report the same CPU.
	CPUs    float64 `json:"cpus"`
	CPU     float64 `json:"cpu"`
	HostCPU float64 `json:"host_cpu"`
}

// Members returns the live consumers of the bus (members whose heartbeat
// has not expired), sorted by ID; none when no consumer ever joined. Give
// ctx a deadline: a read lost to a leader change waits for it.
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
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// lease is a group this member holds or is taking.
type lease struct {
	rev uint64         // revision of our key in the leases bucket
	gc  *groupConsumer // nil until consuming started
	// taking is set while take starts the group; releasing while the group
	// is being handed over; deleteOnStop tells take, when both are set,
	// whether to delete the lease once it has stopped the group.
	taking, releasing, deleteOnStop bool
}

// membership runs Serve's dynamic mode.
type membership struct {
	s       *server
	id      string
	members jetstream.KeyValue
	leases  jetstream.KeyValue
	info    Member
	cpu     sysinfo.Meter

	mu   sync.Mutex
	held map[int]*lease
	// observed are the groups with per-group metric series, touched only
	// by the heartbeat loop.
	observed map[string]bool
	owned    int            // groups last added to the groups-owned gauge
	wg       sync.WaitGroup // start and release goroutines
}

// member joins the members bucket and, on every heartbeat, computes the
// assignment of groups to the live members, takes the leases of the groups
// assigned to it and hands over the others. It returns when ctx ends,
// after releasing every lease.
func (s *server) member(ctx context.Context) error {
	b := s.bus
	id := s.cfg.memberID
	if id == "" {
		host, _ := os.Hostname()
		id = nuid.Next()
		if placement.ValidateAgentID(host) == nil && host != "" {
			id = host + "-" + id[len(id)-8:]
		}
	}
	members, err := s.bucket(ctx, jetstream.KeyValueConfig{
		Bucket: MembersBucket, Description: "a2abus: live consumers", TTL: s.cfg.memberTTL,
		History: 1, Replicas: b.replicas,
	})
	if err != nil {
		return s.setupErr(ctx, err)
	}
	leases, err := s.bucket(ctx, jetstream.KeyValueConfig{
		Bucket: LeasesBucket, Description: "a2abus: which member consumes each group", TTL: s.cfg.memberTTL,
		History: 1, Replicas: b.replicas,
	})
	if err != nil {
		return s.setupErr(ctx, err)
	}
	host, _ := os.Hostname()
	m := &membership{s: s, id: id, members: members, leases: leases, held: map[int]*lease{},
		info: Member{ID: id, Host: host, PID: os.Getpid(), Started: time.Now(), CPUs: sysinfo.CPUs()}}
	b.cfg.log.Info("joined as consumer", "member", id)

	tick := time.NewTicker(s.cfg.memberTTL / 4)
	defer tick.Stop()
	for {
		if err := m.reconcile(ctx); err != nil && ctx.Err() == nil {
			b.cfg.log.Warn("membership", "member", id, "err", err)
		}
		select {
		case <-ctx.Done():
			m.leave()
			return nil
		case <-tick.C:
		}
	}
}

// bucket creates or opens a KV bucket, retrying for a minute through what
// a cluster recovering from a node restart answers (no suitable peers, no
// leader yet) rather than failing Serve on a passing condition.
func (s *server) bucket(ctx context.Context, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	deadline := time.Now().Add(time.Minute)
	for {
		kv, err := s.bus.js[0].CreateOrUpdateKeyValue(ctx, cfg)
		if err == nil || ctx.Err() != nil || time.Now().After(deadline) {
			if err != nil {
				err = fmt.Errorf("agentbus: bucket %s: %w", cfg.Bucket, err)
			}
			return kv, err
		}
		s.bus.cfg.log.Warn("KV bucket not ready; retrying", "bucket", cfg.Bucket, "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

func (s *server) setupErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// reconcile is one heartbeat: refresh our member key and leases, then act
// on the assignment of the members alive now.
func (m *membership) reconcile(ctx context.Context) error {
	m.mu.Lock()
	m.info.Groups = len(m.held)
	m.mu.Unlock()
	m.info.At = time.Now()
	m.info.Handled = m.s.handled.Load()
	m.info.CPU, m.info.HostCPU = m.cpu.Sample(m.info.At)
	val, _ := json.Marshal(m.info)
	if _, err := m.members.Put(ctx, m.id, val); err != nil {
		return fmt.Errorf("heartbeat: %w", err)
	}
	names, err := m.members.Keys(ctx)
	if err != nil {
		return fmt.Errorf("list members: %w", err)
	}
	if !slices.Contains(names, m.id) {
		names = append(names, m.id)
	}
	a, err := placement.Assign(m.s.bus.groups.Count(), names)
	if err != nil {
		return err
	}
	want := map[int]bool{}
	for _, g := range a.Groups(m.id) {
		want[g] = true
	}

	m.observe(ctx)
	m.mu.Lock()
	defer m.mu.Unlock()
	for g, l := range m.held {
		if l.releasing {
			continue
		}
		// Refresh the lease; losing it means another member took the group
		// (we stalled past the TTL): stop at once.
		rev, err := m.leases.Update(ctx, groupKey(g), []byte(m.id), l.rev)
		if err != nil && ctx.Err() != nil {
			// Serve is ending: leave hands the groups over.
			return ctx.Err()
		}
		if err != nil {
			m.s.bus.cfg.log.Warn("lost the lease of a group", "member", m.id, "group", g, "err", err)
			m.release(g, l, false)
			continue
		}
		l.rev = rev
		if !want[g] {
			m.release(g, l, true)
		}
	}
	for g := range want {
		if _, ok := m.held[g]; ok {
			continue
		}
		rev, err := m.leases.Create(ctx, groupKey(g), []byte(m.id))
		if err != nil {
			continue // held by another member until it hands over or expires
		}
		l := &lease{rev: rev, taking: true}
		m.held[g] = l
		m.wg.Go(func() { m.take(ctx, g, l) })
	}
	return nil
}

// take starts consuming a group whose lease we now hold. Batches the
// previous owner was sent but never acknowledged (it died, or a batch
// reached its inbox as it stopped pulling) are redelivered before newer
// ones once their ack wait passes, so we wait until the consumer has
// nothing pending or the ack wait has passed, to keep each agent's order
// across the hand-over. That wait is why the default ack wait is short.
//
// A group released while take runs is handed over by take itself, once it
// has stopped whatever it started, so that the lease is never free while
// we might still pull.
func (m *membership) take(ctx context.Context, g int, l *lease) {
	s := m.s
	gc, err := m.start(ctx, g)
	m.mu.Lock()
	defer m.mu.Unlock()
	l.taking = false
	switch {
	case l.releasing:
		del := l.deleteOnStop
		m.wg.Go(func() {
			if gc != nil {
				s.stopGroup(gc)
			}
			m.forget(g, l, del)
		})
	case err != nil:
		if ctx.Err() == nil {
			s.bus.cfg.log.Warn("start group", "group", g, "err", err)
		}
		m.wg.Go(func() { m.forget(g, l, true) })
	default:
		l.gc = gc
		s.bus.cfg.log.Debug("consuming group", "member", m.id, "group", g)
	}
}

// start waits for the group's earlier deliveries (see take) and starts
// consuming it.
func (m *membership) start(ctx context.Context, g int) (*groupConsumer, error) {
	s := m.s
	cfg, err := s.bus.consumerConfig(g, s.cfg)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(s.cfg.ackWait)
	for time.Now().Before(deadline) {
		cons, err := s.bus.js[0].Consumer(ctx, StreamName, cfg.Durable)
		if errors.Is(err, jetstream.ErrConsumerNotFound) {
			break
		}
		if err == nil && cons.CachedInfo().NumAckPending == 0 {
			break
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return s.startGroup(ctx, g)
}

// release hands a group over: stop pulling, finish the batches fetched, then
// delete our lease (unless deleteLease is false: it is gone already) so
// that the next owner can take it. Called with m.mu held.
func (m *membership) release(g int, l *lease, deleteLease bool) {
	l.releasing = true
	if l.taking {
		l.deleteOnStop = deleteLease // take finishes the hand-over
		return
	}
	gc := l.gc
	m.wg.Go(func() {
		if gc != nil {
			m.s.stopGroup(gc)
		}
		m.forget(g, l, deleteLease)
	})
}

// forget drops a group we no longer consume and, with deleteLease, deletes
// its lease (if it is still ours) so that the next owner need not wait for
// it to expire.
func (m *membership) forget(g int, l *lease, deleteLease bool) {
	m.mu.Lock()
	rev := l.rev
	delete(m.held, g)
	m.mu.Unlock()
	if !deleteLease {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), leaseDeleteTimeout)
	defer cancel()
	if err := m.leases.Delete(ctx, groupKey(g), jetstream.LastRevision(rev)); err != nil {
		m.s.bus.cfg.log.Warn("release lease", "group", g, "err", err)
	}
}

// leaseDeleteTimeout bounds deleting a lease or a member key on the way
// out: if it fails, the key expires after the TTL anyway.
const leaseDeleteTimeout = 2 * time.Second

// leave releases every group, waits for the hand-overs, and removes our
// member key so the others reassign at once.
func (m *membership) leave() {
	m.mu.Lock()
	for g, l := range m.held {
		if !l.releasing {
			m.release(g, l, true)
		}
	}
	m.mu.Unlock()
	m.wg.Wait()
	if r := &m.s.bus.recv; r.groupsOwned != nil {
		r.groupsOwned.Sub(float64(m.owned))
		m.owned = 0
		for key := range m.observed {
			m.dropSeries(key)
		}
		m.observed = nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), leaseDeleteTimeout)
	defer cancel()
	_ = m.members.Delete(ctx, m.id)
}

// observe updates the per-group metrics of the groups held, once per
// heartbeat: one consumer info request per group.
func (m *membership) observe(ctx context.Context) {
	r := &m.s.bus.recv
	if r.groupsOwned == nil {
		return
	}
	m.mu.Lock()
	var consuming []int
	for g, l := range m.held {
		if l.gc != nil && !l.releasing {
			consuming = append(consuming, g)
		}
	}
	// Several Serve calls may share the gauge: each adds its change.
	r.groupsOwned.Add(float64(len(m.held) - m.owned))
	m.owned = len(m.held)
	m.mu.Unlock()
	seen := make(map[string]bool, len(consuming))
	for _, g := range consuming {
		key := groupKey(g)
		info, err := m.s.bus.js[0].Consumer(ctx, StreamName, key)
		if err != nil {
			continue
		}
		ci := info.CachedInfo()
		r.seriesMu.Lock()
		r.seriesOwner[key] = m
		r.groupPending.WithLabelValues(key).Set(float64(ci.NumPending))
		r.groupAckPending.WithLabelValues(key).Set(float64(ci.NumAckPending))
		r.groupRedelivered.WithLabelValues(key).Set(float64(ci.NumRedelivered))
		r.seriesMu.Unlock()
		seen[key] = true
	}
	// Drop the series of groups no longer consumed here (not Reset, which
	// would show a scrape no series at all between heartbeats).
	for key := range m.observed {
		if !seen[key] {
			m.dropSeries(key)
		}
	}
	m.observed = seen
}

// dropSeries deletes a group's per-group series, unless another consumer of
// this bus reports the group now.
func (m *membership) dropSeries(key string) {
	r := &m.s.bus.recv
	r.seriesMu.Lock()
	defer r.seriesMu.Unlock()
	if r.seriesOwner[key] != m {
		return
	}
	delete(r.seriesOwner, key)
	r.groupPending.DeleteLabelValues(key)
	r.groupAckPending.DeleteLabelValues(key)
	r.groupRedelivered.DeleteLabelValues(key)
}

func groupKey(g int) string { return fmt.Sprintf("g%04d", g) }
