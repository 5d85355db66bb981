package faults

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/a2abus/a2abus/embedded"
	"github.com/a2abus/a2abus/internal/lazyfs"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Cluster is n embedded NATS servers with clustered JetStream on loopback,
// every route and every client connection passing through a Proxy so that
// a node can be cut off from its peers, and clients from their servers.
//
// Each ordered pair of nodes (i, j) has its own route proxy, the only way
// node i reaches node j: node i's configured routes are its proxies to the
// others. A server also connects to the routes its peers gossip about; each
// node advertises a closed port, so such an implicit route fails at once
// and every route stays on a proxy. Isolate(i) cuts node i's proxies both
// ways.
//
// A node keeps its name, ports and store directory across Stop and
// Restart. Clients connect to the client proxies (ClientURLs): CutClients
// drops every client connection at once, a reconnect storm.
//
// A cluster of one node is a standalone server (no cluster, no routes),
// as agentd's embedded server runs. With WithLazyStores each node keeps
// its store on a lazy filesystem (internal/lazyfs), and PowerLoss cuts
// nodes' power: what their stores had not synced is lost.
//
// The methods are safe for concurrent use.
type Cluster struct {
	name string
	log  *slog.Logger
	cfg  clusterConfig

	mu      sync.Mutex
	nodes   []*node
	routes  map[[2]int]*Proxy // [from, to] -> proxy from's routes dial to reach to
	clients []*Proxy          // per node, in front of its client port
	links   []*Link
	advert  string // a closed port every node advertises for routes
}

type node struct {
	name       string
	storeDir   string
	clientPort int
	routePort  int
	srv        *embedded.Server // nil while stopped
	lazy       *lazyfs.FS       // the store's filesystem, with WithLazyStores
}

// ClusterOption configures StartCluster.
type ClusterOption func(*clusterConfig)

type clusterConfig struct {
	serverOpts []func(*server.Options)
	lazy       bool
	entries    lazyfs.Entries
}

// WithServerOptions has fn set every node's server options (after the
// cluster's own), each time the node starts: JetStream's sync_interval,
// say.
func WithServerOptions(fn func(*server.Options)) ClusterOption {
	return func(c *clusterConfig) { c.serverOpts = append(c.serverOpts, fn) }
}

// WithLazyStores keeps each node's store on a lazy filesystem of its own
// (lazyfs.Mount, backed by a folder beside the node's store directory),
// whose directory entries become durable as entries says: PowerLoss then
// drops what a node's store had not synced.
func WithLazyStores(entries lazyfs.Entries) ClusterOption {
	return func(c *clusterConfig) { c.lazy, c.entries = true, entries }
}

// StartTimeout bounds how long StartCluster, Restart and the waits wait
// for servers and leaders.
const StartTimeout = 30 * time.Second

// StartCluster starts n servers (n >= 1) storing under dir (one directory
// per node) and waits until the JetStream meta group has a leader every
// node follows. Servers log through log (nil discards).
//
// The nodes' ports are found free and held until just before the servers
// bind them; another process may still take one in that moment, so a
// start that fails with a port in use is tried again on fresh ports, up to
// three times.
func StartCluster(ctx context.Context, n int, dir string, log *slog.Logger, opts ...ClusterOption) (*Cluster, error) {
	if n < 1 {
		return nil, fmt.Errorf("faults: cluster size %d, want at least 1", n)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var cfg clusterConfig
	for _, o := range opts {
		o(&cfg)
	}
	var err error
	for range 3 {
		var c *Cluster
		if c, err = startCluster(ctx, n, dir, log, cfg); err == nil || !strings.Contains(err.Error(), "address already in use") {
			return c, err
		}
		log.Warn("a port was taken while the cluster started; starting again on other ports", "err", err)
		for i := range n {
			for _, suffix := range []string{"", ".lazy"} {
				if rerr := os.RemoveAll(filepath.Join(dir, fmt.Sprintf("n%d%s", i+1, suffix))); rerr != nil {
					return nil, rerr
				}
			}
		}
	}
	return nil, err
}

func startCluster(ctx context.Context, n int, dir string, log *slog.Logger, cfg clusterConfig) (*Cluster, error) {
	ports, release, err := freePorts(2*n + 1)
	if err != nil {
		return nil, err
	}
	defer release()
	c := &Cluster{
		name:   "a2abus-faults",
		log:    log,
		cfg:    cfg,
		routes: map[[2]int]*Proxy{},
		advert: fmt.Sprintf("127.0.0.1:%d", ports[2*n]),
	}
	fail := func(err error) (*Cluster, error) {
		_ = c.Close(context.Background())
		return nil, err
	}
	for i := range n {
		nd := &node{
			name:       fmt.Sprintf("n%d", i+1),
			storeDir:   filepath.Join(dir, fmt.Sprintf("n%d", i+1)),
			clientPort: ports[2*i],
			routePort:  ports[2*i+1],
		}
		c.nodes = append(c.nodes, nd)
		if cfg.lazy {
			if nd.lazy, err = lazyfs.Mount(nd.storeDir+".lazy", nd.storeDir, lazyfs.WithEntries(cfg.entries)); err != nil {
				return fail(fmt.Errorf("faults: node %s: %w", nd.name, err))
			}
		} else if err := os.MkdirAll(nd.storeDir, 0o750); err != nil {
			return nil, err
		}
	}
	// The proxies take ports of their own while the nodes' are still held,
	// so that none of them takes a node's.
	for i, nd := range c.nodes {
		p, err := NewProxy("127.0.0.1:0", fmt.Sprintf("127.0.0.1:%d", nd.clientPort))
		if err != nil {
			return fail(err)
		}
		c.clients = append(c.clients, p)
		for j, peer := range c.nodes {
			if i == j {
				continue
			}
			p, err := NewProxy("127.0.0.1:0", fmt.Sprintf("127.0.0.1:%d", peer.routePort))
			if err != nil {
				return fail(err)
			}
			c.routes[[2]int{i, j}] = p
		}
	}
	all := make([]int, n)
	for i := range all {
		all[i] = i
	}
	release()
	if err := c.start(ctx, all...); err != nil {
		return fail(err)
	}
	if err := c.WaitRoutes(ctx); err != nil {
		return fail(err)
	}
	if _, err := c.WaitMetaLeader(ctx); err != nil {
		return fail(err)
	}
	return c, nil
}

// WaitRoutes waits until every running node has a route to every other
// running node. Do not call it while a node is isolated.
func (c *Cluster) WaitRoutes(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, StartTimeout)
	defer cancel()
	for {
		missing := ""
		c.mu.Lock()
		running := map[string]bool{}
		for _, nd := range c.nodes {
			if nd.srv != nil {
				running[nd.name] = true
			}
		}
		for _, nd := range c.nodes {
			if nd.srv == nil || missing != "" {
				continue
			}
			rz, err := nd.srv.NATSServer().Routez(nil)
			if err != nil {
				missing = err.Error()
				continue
			}
			peers := map[string]bool{}
			for _, r := range rz.Routes {
				peers[r.RemoteName] = true
			}
			for name := range running {
				if name != nd.name && !peers[name] {
					missing = fmt.Sprintf("%s has no route to %s", nd.name, name)
				}
			}
		}
		c.mu.Unlock()
		if missing == "" {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("faults: routes: %s: %w", missing, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// start starts the given stopped nodes together: a clustered server
// becomes ready only once it reaches enough of its peers.
func (c *Cluster) start(ctx context.Context, idx ...int) error {
	errs := make([]error, len(idx))
	var wg sync.WaitGroup
	for k, i := range idx {
		wg.Go(func() { errs[k] = c.startOne(ctx, i) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (c *Cluster) startOne(ctx context.Context, i int) error {
	c.mu.Lock()
	nd := c.nodes[i]
	var routes []*url.URL
	for j := range c.nodes {
		if j != i {
			routes = append(routes, &url.URL{Scheme: "nats-route", Host: c.routes[[2]int{i, j}].Addr()})
		}
	}
	c.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, StartTimeout)
	defer cancel()
	opts := []embedded.Option{
		embedded.WithServerName(nd.name),
		embedded.WithStoreDir(nd.storeDir),
		embedded.WithPort(nd.clientPort),
		embedded.WithLogger(c.log.With("server", nd.name)),
	}
	if !c.standalone() {
		opts = append(opts,
			embedded.WithCluster(embedded.Cluster{Name: c.name, Port: nd.routePort, Routes: routes}),
			embedded.WithServerOptions(func(o *server.Options) {
				o.Cluster.Advertise = c.advert
			}))
	}
	for _, fn := range c.cfg.serverOpts {
		opts = append(opts, embedded.WithServerOptions(fn))
	}
	srv, err := embedded.Start(ctx, opts...)
	if err != nil {
		return fmt.Errorf("faults: start node %s: %w", nd.name, err)
	}
	c.mu.Lock()
	nd.srv = srv
	c.mu.Unlock()
	return nil
}

// Size returns the number of nodes, running or stopped.
func (c *Cluster) Size() int { return len(c.nodes) }

// standalone reports whether the cluster is one server without a cluster
// of its own.
func (c *Cluster) standalone() bool { return len(c.nodes) == 1 }

// Name returns node i's server name.
func (c *Cluster) Name(i int) string { return c.nodes[i].name }

// Server returns node i's server, or nil while it is stopped.
func (c *Cluster) Server(i int) *embedded.Server {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[i].srv
}

// Running reports whether node i is running.
func (c *Cluster) Running(i int) bool { return c.Server(i) != nil }

// ClientURLs returns the client proxies' URLs, node first's before the
// others, joined with commas as nats.Connect takes them. Give clients
// nats.DontRandomize to make them start on node first.
func (c *Cluster) ClientURLs(first int) string {
	urls := []string{"nats://" + c.clients[first].Addr()}
	for i, p := range c.clients {
		if i != first {
			urls = append(urls, "nats://"+p.Addr())
		}
	}
	return strings.Join(urls, ",")
}

// DirectURLs is ClientURLs without the client proxies: connections that
// CutClients does not drop.
func (c *Cluster) DirectURLs(first int) string {
	urls := []string{fmt.Sprintf("nats://127.0.0.1:%d", c.nodes[first].clientPort)}
	for i, nd := range c.nodes {
		if i != first {
			urls = append(urls, fmt.Sprintf("nats://127.0.0.1:%d", nd.clientPort))
		}
	}
	return strings.Join(urls, ",")
}

// Link is one client's own way to the cluster: a proxy in front of each
// node's client port, for that client alone. Cutting it cuts the client off
// from every node (its connection dropped, its reconnects refused) while
// every other client carries on: a process stalled, or partitioned from
// the servers, as the servers see it.
type Link struct {
	proxies []*Proxy
}

// NewLink returns a new Link to the cluster; Close closes it.
func (c *Cluster) NewLink() (*Link, error) {
	l := &Link{}
	for _, nd := range c.nodes {
		p, err := NewProxy("127.0.0.1:0", fmt.Sprintf("127.0.0.1:%d", nd.clientPort))
		if err != nil {
			_ = l.Close()
			return nil, err
		}
		l.proxies = append(l.proxies, p)
	}
	c.mu.Lock()
	c.links = append(c.links, l)
	c.mu.Unlock()
	return l, nil
}

// URLs returns the link's URLs, node first's before the others, as
// Cluster.ClientURLs does.
func (l *Link) URLs(first int) string {
	urls := []string{"nats://" + l.proxies[first].Addr()}
	for i, p := range l.proxies {
		if i != first {
			urls = append(urls, "nats://"+p.Addr())
		}
	}
	return strings.Join(urls, ",")
}

// Cut drops the link's connections and refuses new ones until Restore.
func (l *Link) Cut() {
	for _, p := range l.proxies {
		p.Cut()
	}
}

// Restore lets the link's client connect again.
func (l *Link) Restore() {
	for _, p := range l.proxies {
		p.Restore()
	}
}

// Close closes the link's proxies. It is idempotent.
func (l *Link) Close() error {
	for _, p := range l.proxies {
		_ = p.Close()
	}
	return nil
}

// Stop shuts node i down and waits until it has stopped. Its store is kept
// for Restart.
func (c *Cluster) Stop(ctx context.Context, i int) error {
	c.mu.Lock()
	srv := c.nodes[i].srv
	c.nodes[i].srv = nil
	c.mu.Unlock()
	if srv == nil {
		return fmt.Errorf("faults: node %s is already stopped", c.nodes[i].name)
	}
	return srv.Shutdown(ctx)
}

// StopAll stops every running node at once.
func (c *Cluster) StopAll(ctx context.Context) error {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for i := range c.nodes {
		if !c.Running(i) {
			continue
		}
		wg.Go(func() {
			if err := c.Stop(ctx, i); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Restart starts the given stopped nodes again (all stopped nodes when none
// are given), with their old names, ports and stores, and waits until the
// running nodes are routed to each other and the meta group has a leader
// every running node follows.
func (c *Cluster) Restart(ctx context.Context, idx ...int) error {
	if len(idx) == 0 {
		for i := range c.nodes {
			if !c.Running(i) {
				idx = append(idx, i)
			}
		}
	}
	for _, i := range idx {
		if c.Running(i) {
			return fmt.Errorf("faults: node %s is running", c.nodes[i].name)
		}
	}
	if err := c.start(ctx, idx...); err != nil {
		return err
	}
	if err := c.WaitRoutes(ctx); err != nil {
		return err
	}
	_, err := c.WaitMetaLeader(ctx)
	return err
}

// Isolate cuts node i off from every peer: the route proxies to it and
// from it refuse connections until Heal. Its clients stay connected to it.
func (c *Cluster) Isolate(i int) {
	for k, p := range c.routes {
		if k[0] == i || k[1] == i {
			p.Cut()
		}
	}
}

// DelayRoute makes the route between nodes i and j a slow link: every
// chunk either way waits d (0 restores it).
func (c *Cluster) DelayRoute(i, j int, d time.Duration) {
	for k, p := range c.routes {
		if k == [2]int{i, j} || k == [2]int{j, i} {
			p.SetDelay(d)
		}
	}
}

// Heal restores node i's routes.
func (c *Cluster) Heal(i int) {
	for k, p := range c.routes {
		if k[0] == i || k[1] == i {
			p.Restore()
		}
	}
}

// CutClients drops every client connection to every node and refuses new
// ones until RestoreClients.
func (c *Cluster) CutClients() {
	for _, p := range c.clients {
		p.Cut()
	}
}

// RestoreClients lets clients connect again.
func (c *Cluster) RestoreClients() {
	for _, p := range c.clients {
		p.Restore()
	}
}

// StreamLeader returns the index of the running node that leads stream in
// the default account, or -1 when none does right now.
func (c *Cluster) StreamLeader(stream string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, nd := range c.nodes {
		if nd.srv != nil && c.leads(nd.srv.NATSServer(), stream) {
			return i
		}
	}
	return -1
}

// leads reports whether ns leads stream in the default account; a
// standalone server leads every stream it has.
func (c *Cluster) leads(ns *server.Server, stream string) bool {
	if !c.standalone() {
		return ns.JetStreamIsStreamLeader(server.DEFAULT_GLOBAL_ACCOUNT, stream)
	}
	jsz, err := ns.Jsz(&server.JSzOptions{Accounts: true, Streams: true})
	if err != nil {
		return false
	}
	for _, acc := range jsz.AccountDetails {
		for _, s := range acc.Streams {
			if acc.Name == server.DEFAULT_GLOBAL_ACCOUNT && s.Name == stream {
				return true
			}
		}
	}
	return false
}

// WaitStreamLeader waits until a running node leads stream and returns its
// index.
func (c *Cluster) WaitStreamLeader(ctx context.Context, stream string) (int, error) {
	return c.waitFor(ctx, "leader of stream "+stream, func(ns *server.Server) bool {
		return c.leads(ns, stream)
	}, nil)
}

// WaitMetaLeader waits until a running node leads the JetStream meta group
// and every running node is current with it, and returns the leader's
// index. A standalone server leads once JetStream is enabled.
func (c *Cluster) WaitMetaLeader(ctx context.Context) (int, error) {
	if c.standalone() {
		return c.waitFor(ctx, "JetStream", func(ns *server.Server) bool { return ns.JetStreamEnabled() }, nil)
	}
	return c.waitFor(ctx, "JetStream meta leader", func(ns *server.Server) bool {
		return ns.JetStreamIsLeader()
	}, func(ns *server.Server) bool {
		return ns.JetStreamIsCurrent()
	})
}

func (c *Cluster) waitFor(ctx context.Context, what string, isLeader, current func(*server.Server) bool) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, StartTimeout)
	defer cancel()
	for {
		leader, ok := -1, true
		c.mu.Lock()
		for i, nd := range c.nodes {
			if nd.srv == nil {
				continue
			}
			ns := nd.srv.NATSServer()
			if isLeader(ns) {
				leader = i
			}
			if current != nil && !current(ns) {
				ok = false
			}
		}
		c.mu.Unlock()
		if leader >= 0 && ok {
			return leader, nil
		}
		select {
		case <-ctx.Done():
			return -1, fmt.Errorf("faults: no %s: %w", what, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// WaitPlacement waits until the servers nc reaches can place a stream of
// the given replicas, by creating and deleting a probe stream: right after
// a node restarts, the meta leader may not know every peer yet and placing
// a replicated asset (a consumer, a KV bucket) fails.
func WaitPlacement(ctx context.Context, nc *nats.Conn, replicas int) error {
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, StartTimeout)
	defer cancel()
	for {
		actx, acancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := js.CreateStream(actx, jetstream.StreamConfig{Name: "PROBE_PLACEMENT", Subjects: []string{"probe.placement"},
			Replicas: replicas, Storage: jetstream.MemoryStorage})
		if err == nil {
			err = js.DeleteStream(actx, "PROBE_PLACEMENT")
		}
		acancel()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("faults: a %d-replica stream cannot be placed: %w", replicas, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Close stops every running node, closes the proxies and links, and
// unmounts the lazy stores.
func (c *Cluster) Close(ctx context.Context) error {
	err := c.StopAll(ctx)
	defer func() {
		for _, nd := range c.nodes {
			if nd.lazy != nil {
				_ = nd.lazy.Close()
			}
		}
	}()
	for _, p := range c.routes {
		_ = p.Close()
	}
	for _, p := range c.clients {
		_ = p.Close()
	}
	c.mu.Lock()
	links := c.links
	c.links = nil
	c.mu.Unlock()
	for _, l := range links {
		_ = l.Close()
	}
	return err
}

// freePorts finds n distinct free TCP ports on loopback and holds them
// until release (idempotent) is called. Another process could take one
// between release and its use; on loopback that is rare.
func freePorts(n int) (ports []int, release func(), err error) {
	var ls []net.Listener
	var once sync.Once
	release = func() {
		once.Do(func() {
			for _, l := range ls {
				_ = l.Close()
			}
		})
	}
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			release()
			return nil, nil, fmt.Errorf("faults: find a free port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, release, nil
}
