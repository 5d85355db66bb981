package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/a2abus/a2abus/embedded"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
)

// DurabilityProfile is one way to run the servers: how many, how many
// replicas the streams have, and how often JetStream syncs its writes to
// disk: before acknowledging each (SyncAlways), or every SyncInterval (the
// server's default, 2 minutes, when zero).
type DurabilityProfile struct {
	Name         string        `json:"profile"`
	Servers      int           `json:"servers"`
	Replicas     int           `json:"replicas"`
	SyncAlways   bool          `json:"sync_always"`
	SyncInterval time.Duration `json:"sync_interval_ns,omitempty"`
}

// DurabilityProfiles are the profiles the README documents: the default
// (one server, the OS flushes writes, fsync every 2 minutes), a sync every
// second, the durable single server (fsync before every ack), and the
// same three on a 3-node cluster with R3 streams (an ack means a majority
// stored the message).
var DurabilityProfiles = []DurabilityProfile{
	{Name: "R1, sync 2m", Servers: 1, Replicas: 1},
	{Name: "R1, sync 1s", Servers: 1, Replicas: 1, SyncInterval: time.Second},
	{Name: "R1, sync always", Servers: 1, Replicas: 1, SyncAlways: true},
	{Name: "R3, sync 2m", Servers: 3, Replicas: 3},
	{Name: "R3, sync 1s", Servers: 3, Replicas: 3, SyncInterval: time.Second},
	{Name: "R3, sync always", Servers: 3, Replicas: 3, SyncAlways: true},
}

// DurabilityConfig sizes the durability scenario.
type DurabilityConfig struct {
	Msgs     int                 // messages per profile and party (default 100 000)
	Senders  int                 // sender goroutines (default 4)
	Profiles []DurabilityProfile // default DurabilityProfiles
}

// DurabilityRun is one profile's throughput, the bus's and raw
// JetStream's, and what it costs against the first profile.
type DurabilityRun struct {
	DurabilityProfile
	BusMsgsPerS   float64 `json:"bus_msgs_per_s"`
	RawJSMsgsPerS float64 `json:"raw_js_msgs_per_s"`
	RatioVsRawJS  float64 `json:"ratio_vs_raw_js"`
	// BusVsFirst is the bus's throughput over the first profile's.
	BusVsFirst float64 `json:"bus_vs_first_profile"`
}

// DurabilityResult is the durability scenario's report.
type DurabilityResult struct {
	MsgSize int             `json:"msg_size"`
	Msgs    int             `json:"msgs"`
	Senders int             `json:"senders"`
	Runs    []DurabilityRun `json:"runs"`
}

// Durability measures what durability costs: for each profile it starts
// fresh embedded servers in dir and runs the bus and raw JetStream publish
// (256 B messages to 64 destinations) against them.
func Durability(ctx context.Context, dir string, c DurabilityConfig, progress io.Writer) (DurabilityResult, error) {
	if c.Msgs == 0 {
		c.Msgs = 100_000
	}
	if c.Senders == 0 {
		c.Senders = 4
	}
	if len(c.Profiles) == 0 {
		c.Profiles = DurabilityProfiles
	}
	tc := ThroughputConfig{Msgs: c.Msgs}.withDefaults()
	res := DurabilityResult{MsgSize: tc.MsgSize, Msgs: c.Msgs, Senders: c.Senders}
	if c.Msgs < 1 || c.Senders < 1 {
		return res, fmt.Errorf("bench: %d messages from %d senders: want both positive", c.Msgs, c.Senders)
	}
	for i, p := range c.Profiles {
		if p.Servers < 1 || p.Replicas < 1 || p.Replicas > p.Servers {
			return res, fmt.Errorf("bench: profile %q: %d replicas on %d servers", p.Name, p.Replicas, p.Servers)
		}
		env := Env{Progress: progress}
		env.progress("durability: %s: starting %d server(s)...", p.Name, p.Servers)
		servers, err := startProfile(ctx, filepath.Join(dir, fmt.Sprintf("profile-%d", i)), p)
		if err != nil {
			return res, fmt.Errorf("bench: profile %s: %w", p.Name, err)
		}
		run, err := durabilityRun(ctx, servers, p, tc, c.Senders, progress)
		for _, s := range servers {
			_ = s.Shutdown(context.Background())
		}
		if err != nil {
			return res, fmt.Errorf("bench: profile %s: %w", p.Name, err)
		}
		if len(res.Runs) > 0 {
			run.BusVsFirst = ratio(run.BusMsgsPerS, res.Runs[0].BusMsgsPerS)
		} else {
			run.BusVsFirst = 1
		}
		res.Runs = append(res.Runs, run)
	}
	return res, nil
}

func durabilityRun(ctx context.Context, servers []*embedded.Server, p DurabilityProfile, tc ThroughputConfig, senders int, progress io.Writer) (DurabilityRun, error) {
	run := DurabilityRun{DurabilityProfile: p}
	urls := make([]string, len(servers))
	for i, s := range servers {
		urls[i] = s.ClientURL()
	}
	env := Env{URL: strings.Join(urls, ","), Progress: progress}
	tc.Replicas = p.Replicas
	if err := waitPlacement(ctx, env, p.Replicas); err != nil {
		return run, err
	}
	raw, err := rawJS(ctx, env, tc, senders)
	if err != nil {
		return run, fmt.Errorf("raw_js: %w", err)
	}
	bus, err := busThroughput(ctx, env, tc, senders, nil)
	if err != nil {
		return run, fmt.Errorf("bus: %w", err)
	}
	if raw.Errors > 0 || bus.Errors > 0 || !raw.StoredOK || !bus.StoredOK {
		return run, fmt.Errorf("errors: raw JetStream %d (all stored %v), bus %d (all stored %v)", raw.Errors, raw.StoredOK, bus.Errors, bus.StoredOK)
	}
	run.RawJSMsgsPerS, run.BusMsgsPerS = raw.MsgsPerS, bus.MsgsPerS
	run.RatioVsRawJS = ratio(bus.MsgsPerS, raw.MsgsPerS)
	env.progress("durability: %s: bus %.0f msgs/s, raw JetStream %.0f msgs/s", p.Name, bus.MsgsPerS, raw.MsgsPerS)
	return run, nil
}

// startProfile starts p.Servers embedded servers under dir, clustered when
// more than one, syncing as p says.
func startProfile(ctx context.Context, dir string, p DurabilityProfile) ([]*embedded.Server, error) {
	syncOpt := embedded.WithServerOptions(func(o *server.Options) {
		o.SyncAlways = p.SyncAlways
		if p.SyncInterval > 0 {
			o.SyncInterval = p.SyncInterval
		}
	})
	if p.Servers == 1 {
		s, err := embedded.Start(ctx, embedded.WithStoreDir(filepath.Join(dir, "n1")), syncOpt)
		if err != nil {
			return nil, err
		}
		return []*embedded.Server{s}, nil
	}
	ports, err := freeRoutePorts(p.Servers)
	if err != nil {
		return nil, err
	}
	routes := make([]*url.URL, len(ports))
	for i, port := range ports {
		routes[i] = &url.URL{Scheme: "nats-route", Host: fmt.Sprintf("127.0.0.1:%d", port)}
	}
	// Start the nodes together: a clustered server is ready only once it
	// reaches its peers.
	servers := make([]*embedded.Server, p.Servers)
	errs := make([]error, p.Servers)
	var wg sync.WaitGroup
	for i := range servers {
		wg.Go(func() {
			name := fmt.Sprintf("n%d", i+1)
			servers[i], errs[i] = embedded.Start(ctx, embedded.WithServerName(name),
				embedded.WithStoreDir(filepath.Join(dir, name)), syncOpt,
				embedded.WithCluster(embedded.Cluster{Name: "a2abus-bench", Port: ports[i], Routes: routes}))
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			for _, s := range servers {
				if s != nil {
					_ = s.Shutdown(context.Background())
				}
			}
			return nil, fmt.Errorf("node n%d: %w", i+1, err)
		}
	}
	return servers, nil
}

// freeRoutePorts finds n free ports for route listeners.
func freeRoutePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// waitPlacement waits until the servers can place a stream of the given
// replicas (right after a cluster forms, its meta leader may not know every
// peer yet), with a probe stream.
func waitPlacement(ctx context.Context, env Env, replicas int) error {
	nc, err := env.connect("bench-durability-probe")
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(time.Minute)
	for {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := js.CreateStream(pctx, jetstream.StreamConfig{Name: "BENCH_PROBE", Subjects: []string{"bench.probe"},
			Storage: jetstream.FileStorage, Replicas: replicas})
		cancel()
		if err == nil {
			return js.DeleteStream(ctx, "BENCH_PROBE")
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			return fmt.Errorf("a stream of %d replicas cannot be placed: %w", replicas, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// WriteDurability prints res as a table, or with asJSON as one JSON object
// on the last line.
func WriteDurability(w io.Writer, res DurabilityResult, asJSON bool) error {
	if asJSON {
		return json.NewEncoder(w).Encode(res)
	}
	if _, err := fmt.Fprintf(w, "what durability costs: %d messages of %d B to 64 destinations, %d senders, per profile\n"+
		"  %-18s %14s %16s %12s %14s\n", res.Msgs, res.MsgSize, res.Senders, "profile", "bus msgs/s", "raw JS msgs/s", "bus/raw JS", "bus vs first"); err != nil {
		return err
	}
	for _, r := range res.Runs {
		if _, err := fmt.Fprintf(w, "  %-18s %14.0f %16.0f %12.2f %14.2f\n", r.Name, r.BusMsgsPerS, r.RawJSMsgsPerS, r.RatioVsRawJS, r.BusVsFirst); err != nil {
			return err
		}
	}
	return nil
}
