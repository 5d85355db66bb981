package agentbus_test

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/a2abus/a2abus/agentbus"
	"github.com/a2abus/a2abus/embedded"
	"github.com/a2abus/a2abus/embedded/embeddedtest"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
)

// TestTLSClientsAndRoutes runs a 3-node cluster whose clients and routes
// both need certificates from a test authority: a bus with a client
// certificate stores a message in an R3 stream; without one, or without
// trusting the authority, it cannot connect.
func TestTLSClientsAndRoutes(t *testing.T) {
	certs := embeddedtest.NewCerts(t)
	const n = 3
	routePorts := make([]int, n)
	for i := range routePorts {
		routePorts[i] = freePort(t)
	}
	routes := make([]*url.URL, n)
	for i, p := range routePorts {
		routes[i] = &url.URL{Scheme: "nats-route", Host: fmt.Sprintf("127.0.0.1:%d", p)}
	}
	servers := make([]*embedded.Server, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range servers {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), embeddedtest.StartTimeout)
			defer cancel()
			servers[i], errs[i] = embedded.Start(ctx,
				embedded.WithServerName(fmt.Sprintf("tls-%d", i+1)),
				embedded.WithStoreDir(t.TempDir()),
				embedded.WithLogger(embeddedtest.Logger(t)),
				embedded.WithCluster(embedded.Cluster{Name: "a2abus-tls", Port: routePorts[i], Routes: routes}),
				embedded.WithServerOptions(func(o *server.Options) {
					o.TLS, o.TLSVerify, o.TLSConfig = true, true, certs.ServerTLS()
					o.Cluster.TLSConfig = certs.ServerTLS()
					o.Cluster.TLSTimeout = 2
				}))
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("node %d: %v", i+1, err)
		}
		t.Cleanup(func() { _ = servers[i].Shutdown(context.Background()) })
	}
	url := servers[0].ClientURL() + "," + servers[1].ClientURL() + "," + servers[2].ClientURL()

	ctx := testCtx(t, 40*time.Second)
	var bus *agentbus.Bus
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(200 * time.Millisecond) {
		// Right after the cluster forms it may have no meta leader yet, and
		// a JetStream request sent then goes unanswered: short attempts.
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		var err error
		bus, err = agentbus.Connect(actx, agentbus.WithURL(url), agentbus.WithRootCAs(certs.CAFile),
			agentbus.WithClientCert(certs.ClientCertFile, certs.ClientKeyFile),
			agentbus.WithEnsureStreams(agentbus.StreamConfig{Replicas: 3}))
		cancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("connect with a client certificate: %v", err)
		}
	}
	t.Cleanup(func() { _ = bus.Close(context.Background()) })
	declarePool(t, bus, sendPool, "b")
	if err := bus.Send(ctx, textEnvelope("a", "b", "over-tls", "x")); err != nil {
		t.Fatal(err)
	}
	js, _ := jetstream.New(bus.Conn())
	// A follower reports itself current a moment after the write reaches
	// it: wait for both, for as long as the test may run.
	var info *jetstream.StreamInfo
	for {
		s, err := js.Stream(ctx, agentbus.StreamName)
		if err != nil {
			t.Fatal(err)
		}
		info = s.CachedInfo()
		if info.Cluster != nil && len(info.Cluster.Replicas) == 2 && info.Cluster.Replicas[0].Current && info.Cluster.Replicas[1].Current {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("stream %+v, cluster %+v: the replicas never became current", info.State, info.Cluster)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if info.State.Msgs != 1 || info.Config.Replicas != 3 {
		t.Errorf("stream %+v, config replicas %d: want one message on three replicas", info.State, info.Config.Replicas)
	}

	for name, opts := range map[string][]agentbus.Option{
		"without a client certificate": {agentbus.WithURL(servers[0].ClientURL()), agentbus.WithRootCAs(certs.CAFile)},
		"without trusting the CA":      {agentbus.WithURL(servers[0].ClientURL()), agentbus.WithClientCert(certs.ClientCertFile, certs.ClientKeyFile)},
		"in plain text":                {agentbus.WithURL(servers[0].ClientURL()), agentbus.WithConnectTimeout(2 * time.Second)},
	} {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		b, err := agentbus.Connect(cctx, append(opts, agentbus.WithConnectTimeout(2*time.Second))...)
		cancel()
		if err == nil {
			_ = b.Close(context.Background())
			t.Errorf("connected %s", name)
		}
	}
}

// freePort returns a TCP port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
