package embeddedtest

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/a2abus/a2abus/embedded"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// TestCluster is a set of embedded servers routed to each other on loopback
// with clustered JetStream. Each node keeps its name, ports and store
// directory across Stop and Restart, so a restarted node rejoins as itself.
type TestCluster struct {
	t    testing.TB
	name string

	mu    sync.Mutex
	nodes []*node
}

type node struct {
	name       string
	storeDir   string
	clientPort int
	routePort  int
	srv        *embedded.Server // nil while stopped
}

// Cluster starts n servers (n >= 1) and waits until the JetStream meta
// group has a leader that every node follows. It fails the test otherwise.
func Cluster(t testing.TB, n int) *TestCluster {
	t.Helper()
	if n < 1 {
		t.Fatalf("embeddedtest: cluster size %d, want at least 1", n)
	}
	ports := freePorts(t, 2*n)
	c := &TestCluster{t: t, name: "a2abus-test"}
	for i := range n {
		c.nodes = append(c.nodes, &node{
			name:       fmt.Sprintf("n%d", i+1),
			storeDir:   t.TempDir(),
			clientPort: ports[2*i],
			routePort:  ports[2*i+1],
		})
	}
	t.Cleanup(c.shutdown)

	// Start the nodes together: a clustered server becomes ready only once
	// it can reach its peers.
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range c.nodes {
		wg.Go(func() { errs[i] = c.start(i) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("embeddedtest: start cluster node %s: %v", c.nodes[i].name, err)
		}
	}
	c.WaitMetaLeader()
	return c
}

func (c *TestCluster) start(i int) error {
	c.mu.Lock()
	nd := c.nodes[i]
	routes := make([]*url.URL, 0, len(c.nodes))
	for _, peer := range c.nodes {
		routes = append(routes, &url.URL{Scheme: "nats-route", Host: fmt.Sprintf("127.0.0.1:%d", peer.routePort)})
	}
	c.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), StartTimeout)
	defer cancel()
	srv, err := embedded.Start(ctx,
		embedded.WithServerName(nd.name),
		embedded.WithStoreDir(nd.storeDir),
		embedded.WithPort(nd.clientPort),
		embedded.WithLogger(Logger(c.t).With("server", nd.name)),
		embedded.WithCluster(embedded.Cluster{Name: c.name, Port: nd.routePort, Routes: routes}),
	)
	if err != nil {
		return err
	}
	c.mu.Lock()
	nd.srv = srv
	c.mu.Unlock()
	return nil
}

// Size returns the number of nodes, running or stopped.
func (c *TestCluster) Size() int { return len(c.nodes) }

// Server returns node i's server, or nil while the node is stopped.
func (c *TestCluster) Server(i int) *embedded.Server {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[i].srv
}

// Name returns node i's server name.
func (c *TestCluster) Name(i int) string { return c.nodes[i].name }

// ClientURLs returns the client URLs of all nodes, running or not, joined
// with commas as nats.Connect takes them.
func (c *TestCluster) ClientURLs() string {
	urls := make([]string, len(c.nodes))
	for i, nd := range c.nodes {
		urls[i] = fmt.Sprintf("nats://127.0.0.1:%d", nd.clientPort)
	}
	return strings.Join(urls, ",")
}

// Connect opens a TCP connection to the cluster that reconnects without a
// limit, closed when the test ends.
func (c *TestCluster) Connect(opts ...nats.Option) *nats.Conn {
	c.t.Helper()
	all := append([]nats.Option{
		nats.MaxReconnects(-1),
		nats.ReconnectWait(50 * time.Millisecond),
	}, opts...)
	nc, err := nats.Connect(c.ClientURLs(), all...)
	if err != nil {
		c.t.Fatalf("embeddedtest: connect to cluster: %v", err)
	}
	c.t.Cleanup(nc.Close)
	return nc
}

// Stop shuts node i down and waits until it has stopped. Its store
// directory is kept for Restart.
func (c *TestCluster) Stop(i int) {
	c.t.Helper()
	c.mu.Lock()
	srv := c.nodes[i].srv
	c.nodes[i].srv = nil
	c.mu.Unlock()
	if srv == nil {
		c.t.Fatalf("embeddedtest: node %s is already stopped", c.nodes[i].name)
	}
	shutdown(c.t, srv)
}

// Restart starts a stopped node i again with its old name, ports and store.
func (c *TestCluster) Restart(i int) {
	c.t.Helper()
	if c.Server(i) != nil {
		c.t.Fatalf("embeddedtest: node %s is running", c.nodes[i].name)
	}
	if err := c.start(i); err != nil {
		c.t.Fatalf("embeddedtest: restart node %s: %v", c.nodes[i].name, err)
	}
}

// WaitMetaLeader waits until a running node leads the JetStream meta group
// and every running node is current with it, and returns the leader's index.
func (c *TestCluster) WaitMetaLeader() int {
	c.t.Helper()
	return c.waitFor("JetStream meta leader", func(ns *server.Server) bool {
		return ns.JetStreamIsLeader()
	}, func(ns *server.Server) bool {
		return ns.JetStreamIsCurrent()
	})
}

// StreamLeader returns the index of the running node that leads stream (in
// the default account), or -1 when none does right now.
func (c *TestCluster) StreamLeader(stream string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, nd := range c.nodes {
		if nd.srv != nil && nd.srv.NATSServer().JetStreamIsStreamLeader(server.DEFAULT_GLOBAL_ACCOUNT, stream) {
			return i
		}
	}
	return -1
}

// WaitStreamLeader waits until a running node leads stream and returns its
// index.
func (c *TestCluster) WaitStreamLeader(stream string) int {
	c.t.Helper()
	return c.waitFor("leader of stream "+stream, func(ns *server.Server) bool {
		return ns.JetStreamIsStreamLeader(server.DEFAULT_GLOBAL_ACCOUNT, stream)
	}, nil)
}

// waitFor polls the running nodes until one satisfies isLeader and all
// satisfy current (when given), failing the test after StartTimeout.
func (c *TestCluster) waitFor(what string, isLeader, current func(*server.Server) bool) int {
	c.t.Helper()
	deadline := time.Now().Add(StartTimeout)
	for time.Now().Before(deadline) {
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
			return leader
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.t.Fatalf("embeddedtest: no %s after %s", what, StartTimeout)
	return -1
}

func (c *TestCluster) shutdown() {
	c.mu.Lock()
	var running []*embedded.Server
	for _, nd := range c.nodes {
		if nd.srv != nil {
			running = append(running, nd.srv)
			nd.srv = nil
		}
	}
	c.mu.Unlock()
	var wg sync.WaitGroup
	for _, srv := range running {
		wg.Go(func() { shutdown(c.t, srv) })
	}
	wg.Wait()
}

// freePorts finds n distinct free TCP ports on loopback. Another process
// could take one before it is used; on loopback in a test that is rare.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	ports := make([]int, 0, n)
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			_ = l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("embeddedtest: find a free port: %v", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

// WaitPlacement waits until the servers nc reaches can place a stream of
// the given replicas, by creating and deleting a probe stream: right after
// a cluster forms or a node restarts, the meta leader may not know every
// peer yet and placing a replicated asset fails ("no suitable peers").
func WaitPlacement(t testing.TB, nc *nats.Conn, replicas int) {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "PROBE_PLACEMENT", Subjects: []string{"probe.placement"},
			Replicas: replicas, Storage: jetstream.MemoryStorage})
		if err == nil {
			err = js.DeleteStream(ctx, "PROBE_PLACEMENT")
		}
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("embeddedtest: a %d-replica stream cannot be placed after 30 s: %v", replicas, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
