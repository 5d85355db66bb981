package agentbus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/a2abus/a2abus/codec"
	"github.com/a2abus/a2abus/internal/kvcas"
	"github.com/a2abus/a2abus/placement"
	"github.com/nats-io/nats.go/jetstream"
)

// The pool registry: which pools exist, with their partition count and
// order, and which pool serves each agent. Members write it when they
// start serving (Serve declares its pool and agents); senders watch it and
// keep it in memory, so that a send costs no registry round trip.
//
// Keys: pools.<pool> holds a PoolConfig as JSON; agents.<agent> holds
// {"pool": "<pool>"}.
const (
	PoolsBucket = "a2abus_pools"

	poolKeyPrefix  = "pools."
	agentKeyPrefix = "agents."
)

// Pool defaults.
const (
	// DefaultPartitions is a pool's partition count when its first member
	// does not choose one: enough to spread a pool's conversations over
	// tens of members, few enough that a pool per agent process stays
	// cheap (each partition is one JetStream consumer).
	DefaultPartitions = 64
	// DefaultPoolName is the pool of a Serve call whose process handles
	// several agents and names no pool (one that handles a single agent is
	// a pool named after it).
	DefaultPoolName = "default"
	// partitionHash names the key → partition function of placement.Pool,
	// stored with each pool so that a changed function is refused rather
	// than mixed with the old one.
	partitionHash = "jump-xxhash64"
)

// PoolConfig is a pool as the registry stores it.
type PoolConfig struct {
	Name       string `json:"name"`
	Partitions int    `json:"partitions"`
	// Order is "conversation" (the default: one order per agent and
	// conversation) or "agent" (one order per agent).
	Order string `json:"order"`
	Hash  string `json:"hash"`
}

// placement returns the pool's placement, validating the config.
func (c PoolConfig) placement() (*placement.Pool, error) {
	order, err := placement.ParseOrder(c.Order)
	if err != nil {
		return nil, fmt.Errorf("agentbus: pool %s: %w", c.Name, err)
	}
	if c.Hash != "" && c.Hash != partitionHash {
		return nil, fmt.Errorf("agentbus: pool %s uses key hash %q; this version knows only %q", c.Name, c.Hash, partitionHash)
	}
	p, err := placement.NewPool(c.Name, c.Partitions, order)
	if err != nil {
		return nil, fmt.Errorf("agentbus: pool %s: %w", c.Name, err)
	}
	return p, nil
}

type agentRecord struct {
	Pool string `json:"pool"`
}

// UnknownAgents says what a send to an agent that no pool has declared
// does.
type UnknownAgents uint8

const (
	// FailUnknown fails the send at once with ErrUnknownAgent.
	FailUnknown UnknownAgents = iota
	// WaitUnknown waits until a pool declares the agent or the send's
	// context ends (then ErrUnknownAgent).
	WaitUnknown
)

// routes is the sender's copy of the pool registry, kept by a watch.
type routes struct {
	startMu sync.Mutex
	started bool          // the watch runs (until then each use tries to start it)
	trying  *routesStart  // the start being tried, which concurrent uses share
	ready   chan struct{} // closed once the registry's stored values are in
	stop    context.CancelFunc
	done    chan struct{} // closed when the watch goroutine ends

	mu      sync.RWMutex
	pools   map[string]*placement.Pool // by name
	agents  map[string]string          // agent → pool name
	changed chan struct{}              // closed and replaced on every change

	// resolved caches agent → pool for the send path, read without a
	// lock; cleared on every change of the registry.
	resolved sync.Map // string → *placement.Pool
	// subjects caches the subject of each (agent, partition) sent to, so
	// that a send builds no string. It is cleared when full.
	subjects  sync.Map // subjectKey → string
	nSubjects atomic.Int64
}

type subjectKey struct {
	pool      *placement.Pool
	agent     string
	partition int
}

const maxCachedSubjects = 1 << 16

// routesStart is one try at starting the watch.
type routesStart struct {
	done chan struct{} // closed when err is set
	err  error
}

// start watches the registry on first use. Uses at the same time share
// one try; a try that fails (the registry cannot be opened yet: a cluster
// still electing, or a role that may not create the bucket before agentd
// has) is made again at the next use, not kept as every later send's
// error.
func (r *routes) start(b *Bus) error {
	r.startMu.Lock()
	if r.started {
		r.startMu.Unlock()
		return nil
	}
	if try := r.trying; try != nil {
		r.startMu.Unlock()
		<-try.done
		return try.err
	}
	try := &routesStart{done: make(chan struct{})}
	r.trying = try
	r.startMu.Unlock()
	defer close(try.done)
	try.err = r.open(b)
	r.startMu.Lock()
	r.trying = nil
	r.startMu.Unlock()
	return try.err
}

// open opens the registry and starts the watch; r.started is set once it
// runs.
func (r *routes) open(b *Bus) error {
	// Each try is bounded, and made again while the cluster elects the
	// bucket's leader (its requests get no answer), for up to the send
	// timeout.
	deadline := time.Now().Add(b.cfg.sendTimeout)
	for {
		w, stop, err := r.openWatch(b)
		if err == nil {
			r.run(stop)
			go r.watch(b, w)
			return nil
		}
		if !transient(err) || time.Now().After(deadline) {
			return err
		}
		b.cfg.log.Debug("pool registry unanswered; trying again", "err", err)
		time.Sleep(100 * time.Millisecond)
	}
}

// openWatch opens the registry and watches it, in one bounded try; stop
// ends the watch.
func (r *routes) openWatch(b *Bus) (w jetstream.KeyWatcher, stop context.CancelFunc, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), lookupAttempt)
	kv, err := b.poolsBucket(ctx)
	cancel()
	if err != nil {
		return nil, nil, err
	}
	wctx, stop := context.WithCancel(context.Background())
	if w, err = kv.WatchAll(wctx); err != nil {
		stop()
		return nil, nil, fmt.Errorf("agentbus: watch %s: %w", PoolsBucket, err)
	}
	return w, stop, nil
}

// run records a watch that runs, before its goroutine starts.
func (r *routes) run(stop context.CancelFunc) {
	r.mu.Lock()
	r.changed = make(chan struct{})
	r.pools = map[string]*placement.Pool{}
	r.agents = map[string]string{}
	r.mu.Unlock()
	r.startMu.Lock()
	r.ready, r.stop, r.done, r.started = make(chan struct{}), stop, make(chan struct{}), true
	r.startMu.Unlock()
}

// watch applies the registry's entries until the watch is stopped.
func (r *routes) watch(b *Bus, w jetstream.KeyWatcher) {
	defer close(r.done)
	defer func() { _ = w.Stop() }()
	readyOnce := sync.OnceFunc(func() { close(r.ready) })
	defer readyOnce()
	for e := range w.Updates() {
		if e == nil { // the stored values are all in
			readyOnce()
			continue
		}
		r.apply(b, e)
	}
}

func (r *routes) apply(b *Bus, e jetstream.KeyValueEntry) {
	key, del := e.Key(), e.Operation() != jetstream.KeyValuePut
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case strings.HasPrefix(key, poolKeyPrefix):
		name := key[len(poolKeyPrefix):]
		if del {
			delete(r.pools, name)
			break
		}
		var c PoolConfig
		p, err := decodePool(e.Value(), &c)
		if err != nil {
			b.cfg.log.Warn("pool registry: ignoring a pool", "key", key, "err", err)
			return
		}
		if old := r.pools[name]; old != nil && (old.Partitions() != p.Partitions() || old.Order() != p.Order()) {
			// Members refuse to change a pool's partitioning; a record
			// rewritten by hand moves keys between partitions.
			b.cfg.log.Warn("pool registry: a pool's partitioning changed under this sender; envelopes in flight may be handled out of order",
				"pool", name, "partitions", p.Partitions(), "was", old.Partitions())
		}
		r.pools[name] = p
	case strings.HasPrefix(key, agentKeyPrefix):
		agent := key[len(agentKeyPrefix):]
		if del {
			delete(r.agents, agent)
			break
		}
		var rec agentRecord
		if err := json.Unmarshal(e.Value(), &rec); err != nil {
			b.cfg.log.Warn("pool registry: ignoring an agent", "key", key, "err", err)
			return
		}
		r.agents[agent] = rec.Pool
	default:
		return
	}
	r.resolved.Clear()
	close(r.changed)
	r.changed = make(chan struct{})
}

func decodePool(val []byte, c *PoolConfig) (*placement.Pool, error) {
	if err := json.Unmarshal(val, c); err != nil {
		return nil, err
	}
	return c.placement()
}

// learn records what this bus itself declared, so that its own sends
// right after Declare need not wait for the registry's watch to report it.
func (r *routes) learn(p *placement.Pool, agents []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.pools == nil {
		return // not watching: the registry itself has it
	}
	r.pools[p.Name()] = p
	for _, a := range agents {
		r.agents[a] = p.Name()
	}
	r.resolved.Clear()
	close(r.changed)
	r.changed = make(chan struct{})
}

func (r *routes) close() {
	r.startMu.Lock()
	defer r.startMu.Unlock()
	if r.stop != nil {
		r.stop()
		<-r.done
	}
}

// poolOf returns the pool serving agent: a route given WithRoute, or the
// registry's. With FailUnknown it fails at once for an agent no pool has
// declared; with WaitUnknown it waits for a declaration until ctx ends.
func (b *Bus) poolOf(ctx context.Context, agent string) (*placement.Pool, error) {
	if p := b.cfg.routes[agent]; p != nil {
		return p, nil
	}
	r := &b.routes
	if p, ok := r.resolved.Load(agent); ok { // the send path's usual case
		return p.(*placement.Pool), nil
	}
	for {
		err := r.start(b)
		if err == nil {
			break
		}
		if b.cfg.unknown != WaitUnknown || ctx.Err() != nil {
			return nil, err
		}
		// Waiting for a declaration includes waiting for the registry
		// itself (a cluster still electing its leaders).
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: the pool registry could not be read before the send's context ended: %w", ErrUnknownAgent, err)
		case <-time.After(200 * time.Millisecond):
		}
	}
	select {
	case <-r.ready:
	case <-ctx.Done():
		return nil, fmt.Errorf("agentbus: waiting for the pool registry: %w", context.Cause(ctx))
	}
	for {
		r.mu.RLock()
		name, declared := r.agents[agent]
		p := r.pools[name]
		changed := r.changed
		if p != nil {
			// Stored under the read lock, so that a change (which clears
			// the cache under the write lock) cannot be overtaken by it.
			r.resolved.Store(agent, p)
		}
		r.mu.RUnlock()
		if p != nil {
			return p, nil
		}
		if b.cfg.unknown == FailUnknown {
			// The watch may not have brought a declaration made a moment
			// ago: ask the registry itself before failing.
			if p, err := b.lookupPool(ctx, agent); err != nil || p != nil {
				return p, err
			}
			if declared {
				return nil, fmt.Errorf("%w: %s is declared by pool %s, which the registry does not hold", ErrUnknownAgent, agent, name)
			}
			return nil, fmt.Errorf("%w: no pool serves %s (a member that handles it declares it when it starts serving, or use Bus.Declare or WithRoute)", ErrUnknownAgent, agent)
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: no pool declared %s before the send's context ended: %w", ErrUnknownAgent, agent, context.Cause(ctx))
		}
	}
}

// lookupPool reads agent's pool from the registry, bypassing the watch,
// and keeps what it found; nil, nil when the agent is not declared.
func (b *Bus) lookupPool(ctx context.Context, agent string) (*placement.Pool, error) {
	if _, err := b.poolsBucket(ctx); err != nil {
		return nil, err
	}
	name, err := b.agentPool(ctx, agent)
	if err != nil || name == "" {
		return nil, err
	}
	e, err := kvcas.Get(ctx, b.conns[0], PoolsBucket, poolKeyPrefix+name)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("agentbus: read pool %s: %w", name, err)
	}
	var c PoolConfig
	p, err := decodePool(e.Value, &c)
	if err != nil {
		return nil, fmt.Errorf("agentbus: pool %s in the registry: %w", name, err)
	}
	b.routes.learn(p, []string{agent})
	return p, nil
}

// Conversation returns the conversation env belongs to, which with its
// destination makes its ordering key: the HeaderContextID header, else the
// A2A context ID of its message, task or event, else its sender.
func Conversation(env *codec.Envelope) string {
	if c, ok := env.Headers.Lookup(HeaderContextID); ok && c != "" {
		return c
	}
	switch {
	case env.Message != nil && env.Message.ContextID != "":
		return env.Message.ContextID
	case env.Task != nil && env.Task.ContextID != "":
		return env.Task.ContextID
	case env.StatusUpdate != nil && env.StatusUpdate.ContextID != "":
		return env.StatusUpdate.ContextID
	case env.ArtifactUpdate != nil && env.ArtifactUpdate.ContextID != "":
		return env.ArtifactUpdate.ContextID
	}
	return env.From
}

// HeaderContextID names an envelope's conversation for ordering when the
// envelope carries no A2A object with a context ID (a2anats sets it from
// the call's context ID).
const HeaderContextID = "a2a-context-id"

// destination returns the pool, partition and subject of env.
func (b *Bus) destination(ctx context.Context, env *codec.Envelope) (*placement.Pool, int, string, error) {
	p, err := b.poolOf(ctx, env.To)
	if err != nil {
		return nil, 0, "", err
	}
	part := p.Partition(env.To, Conversation(env))
	key := subjectKey{p, env.To, part}
	r := &b.routes
	if subj, ok := r.subjects.Load(key); ok {
		return p, part, subj.(string), nil
	}
	subj, err := p.Subject(env.To, part)
	if err != nil {
		return nil, 0, "", err
	}
	if r.nSubjects.Add(1) > maxCachedSubjects {
		r.subjects.Clear()
		r.nSubjects.Store(1)
	}
	r.subjects.Store(key, subj)
	return p, part, subj, nil
}

// poolsBucket opens the pool registry, creating it if needed.
func (b *Bus) poolsBucket(ctx context.Context) (jetstream.KeyValue, error) {
	return b.KeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: PoolsBucket, Description: "a2abus: pools and the agents each serves", History: 1,
	})
}

// Declare records in the pool registry that pool serves agents, creating
// the pool with cfg's partitions and order if it does not exist. It is
// what Serve does before it consumes; call it to make agents reachable
// before their members start (sends to them are then stored and wait).
// It fails, naming the conflict, when the pool exists with another
// partition count or order, or an agent is served by another pool; it
// checks every agent before it writes any, so that a refused Declare
// routes no agent anywhere new.
func (b *Bus) Declare(ctx context.Context, cfg PoolConfig, agents ...string) (*placement.Pool, error) {
	if cfg.Partitions == 0 {
		cfg.Partitions = DefaultPartitions
	}
	if cfg.Order == "" {
		cfg.Order = placement.OrderConversation.String()
	}
	cfg.Hash = partitionHash
	want, err := cfg.placement()
	if err != nil {
		return nil, err
	}
	for _, a := range agents {
		if err := placement.ValidateAgentID(a); err != nil {
			return nil, fmt.Errorf("agentbus: declare: %w", err)
		}
	}
	kv, err := b.poolsBucket(ctx)
	if err != nil {
		return nil, err
	}
	// The pool: created, or the same as ours.
	val, _ := json.Marshal(cfg)
	if _, err := kv.Create(ctx, poolKeyPrefix+cfg.Name, val); err != nil {
		if !errors.Is(err, jetstream.ErrKeyExists) {
			return nil, fmt.Errorf("agentbus: declare pool %s: %w", cfg.Name, err)
		}
		e, err := kvcas.Get(ctx, b.conns[0], PoolsBucket, poolKeyPrefix+cfg.Name)
		if err != nil {
			return nil, fmt.Errorf("agentbus: read pool %s: %w", cfg.Name, err)
		}
		var have PoolConfig
		p, err := decodePool(e.Value, &have)
		if err != nil {
			return nil, fmt.Errorf("agentbus: pool %s in the registry: %w", cfg.Name, err)
		}
		if p.Partitions() != want.Partitions() || p.Order() != want.Order() {
			return nil, fmt.Errorf("%w: pool %s has %d partitions ordered by %s in the registry; this member asks for %d ordered by %s (a pool's partitioning is fixed: use another pool name, or delete the pool's key %s%s from bucket %s once it is drained)",
				ErrPoolMismatch, cfg.Name, p.Partitions(), p.Order(), want.Partitions(), want.Order(), poolKeyPrefix, cfg.Name, PoolsBucket)
		}
	}
	// The agents: every one checked before any is written.
	var missing []string
	for _, a := range agents {
		pool, err := b.agentPool(ctx, a)
		switch {
		case err != nil:
			return nil, err
		case pool == "":
			missing = append(missing, a)
		case pool != cfg.Name:
			return nil, agentConflict(a, pool, cfg.Name)
		}
	}
	rec, _ := json.Marshal(agentRecord{Pool: cfg.Name})
	for _, a := range missing {
		_, err := kv.Create(ctx, agentKeyPrefix+a, rec)
		if err == nil {
			continue
		}
		if !errors.Is(err, jetstream.ErrKeyExists) {
			return nil, fmt.Errorf("agentbus: declare agent %s: %w", a, err)
		}
		// Declared by someone else since we looked.
		pool, err := b.agentPool(ctx, a)
		switch {
		case err != nil:
			return nil, err
		case pool == "":
			// Deleted since: not a conflict, a reason to try again (Serve
			// does).
			return nil, fmt.Errorf("agentbus: declare agent %s: it existed and was deleted since", a)
		case pool != cfg.Name:
			return nil, agentConflict(a, pool, cfg.Name)
		}
	}
	b.routes.learn(want, agents)
	return want, nil
}

// agentPool reads the pool an agent is declared in, from the registry's
// leader (a write may depend on it, and a sender may ask right after the
// agent was declared); "" when none.
func (b *Bus) agentPool(ctx context.Context, agent string) (string, error) {
	e, err := kvcas.Get(ctx, b.conns[0], PoolsBucket, agentKeyPrefix+agent)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("agentbus: read agent %s: %w", agent, err)
	}
	var rec agentRecord
	if err := json.Unmarshal(e.Value, &rec); err != nil {
		return "", fmt.Errorf("agentbus: agent %s in the registry: %w", agent, err)
	}
	return rec.Pool, nil
}

func agentConflict(agent, have, want string) error {
	return fmt.Errorf("%w: agent %s is served by pool %q; this member's pool is %s (move it by deleting key %s%s from bucket %s)",
		ErrPoolMismatch, agent, have, want, agentKeyPrefix, agent, PoolsBucket)
}

// Pools returns the pools in the registry and the agents each serves,
// sorted, for operators and the scaler.
func (b *Bus) Pools(ctx context.Context) (map[PoolConfig][]string, error) {
	kv, err := b.js[0].KeyValue(ctx, PoolsBucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("agentbus: pools: %w", err)
	}
	lister, err := kv.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("agentbus: pools: %w", err)
	}
	defer func() { _ = lister.Stop() }()
	pools := map[string]PoolConfig{}
	agents := map[string][]string{}
	for key := range lister.Keys() {
		e, err := kv.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("agentbus: pools: %s: %w", key, err)
		}
		switch {
		case strings.HasPrefix(key, poolKeyPrefix):
			var c PoolConfig
			if _, err := decodePool(e.Value(), &c); err == nil {
				pools[c.Name] = c
			}
		case strings.HasPrefix(key, agentKeyPrefix):
			var rec agentRecord
			if json.Unmarshal(e.Value(), &rec) == nil {
				agents[rec.Pool] = append(agents[rec.Pool], key[len(agentKeyPrefix):])
			}
		}
	}
	out := make(map[PoolConfig][]string, len(pools))
	for name, c := range pools {
		a := agents[name]
		slices.Sort(a)
		out[c] = a
	}
	return out, nil
}

// WithRoute makes the bus send to agent in the given pool without asking
// the registry (for senders that may not read it, and tests).
func WithRoute(agent string, pool PoolConfig) Option {
	return func(c *config) error {
		if err := placement.ValidateAgentID(agent); err != nil {
			return fmt.Errorf("agentbus: route: %w", err)
		}
		if pool.Partitions == 0 {
			pool.Partitions = DefaultPartitions
		}
		p, err := pool.placement()
		if err != nil {
			return err
		}
		if c.routes == nil {
			c.routes = map[string]*placement.Pool{}
		}
		c.routes[agent] = p
		return nil
	}
}

// WithUnknownAgents sets what a send to an agent that no pool has
// declared does (default FailUnknown).
func WithUnknownAgents(u UnknownAgents) Option {
	return func(c *config) error {
		if u > WaitUnknown {
			return fmt.Errorf("agentbus: unknown-agent mode %d", u)
		}
		c.unknown = u
		return nil
	}
}
