package agentd

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"github.com/a2abus/a2abus/agentbus"
	"github.com/a2abus/a2abus/internal/gateway"
	"github.com/a2abus/a2abus/internal/sysinfo"
	"github.com/a2abus/a2abus/placement"
	"io"
	"net"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Config is agentd's configuration. Each field is a flag, an AGENTD_*
// environment variable and a key of the JSON config file, in that order of
// precedence over the defaults.
type Config struct {
	NATS            string // NATS server URL(s); empty starts the embedded server
	Data            string // data directory of the embedded server
	NATSHost        string // embedded server's client listener host
	NATSPort        int    // embedded server's client port; 0 picks a free one, -1 none
	NATSMonitorPort int    // embedded server's monitoring port; 0 picks a free one, -1 off
	HTTP            string // address of the A2A gateway, /healthz, /readyz and /metrics
	// GRPC is the address of the A2A gateway's gRPC binding; "" or "off":
	// none. GRPCDefaultAgent serves gRPC calls that name no tenant.
	GRPC             string
	GRPCDefaultAgent string
	Replicas         int    // stream replicas; 0 chooses 1 on one server, 3 in a cluster
	LogLevel         string // debug, info, warn or error
	LogFormat        string // text or json
	ConfigFile       string // JSON file of settings, keys named as the flags
	Demo             bool   // host the demo agents echo and worker and the conformance agent tck
	DemoDelay        time.Duration
	Consumers        int // consumers of the hosted agents while no scaler sets a target
	// Pool names the pool of the agents this agentd hosts (the demo agents
	// and sidecars), Partitions its partition count: every agentd of a
	// pool must host the same agents with the same count.
	Pool       string
	Partitions int
	// HandlerTimeout bounds one handler call of a hosted agent.
	HandlerTimeout time.Duration
	// DrainTimeout is how long the handlers of hosted agents running when
	// a consumer stops (a scale-down, a shutdown) may run on before they
	// are canceled and their batches go to the pool's next member. A
	// shutdown takes up to ShutdownTimeout.
	DrainTimeout time.Duration
	// MemberTTL is how long a consumer that stopped heartbeating keeps its
	// partitions; every consumer of a bus must use the same.
	MemberTTL time.Duration
	// CPUs ("0-3,8") or NUMANode (-1: none) bind the agentd process to
	// those CPUs, where the platform supports it.
	CPUs     string
	NUMANode int

	// The A2A gateway on HTTP. Without a token or client CA it answers
	// loopback clients only.
	HTTPToken     string // bearer token A2A calls must carry
	HTTPTLSCert   string // certificate and key files: serve HTTPS
	HTTPTLSKey    string
	HTTPClientCA  string // CA file: A2A calls with a client certificate it signed are let in
	A2AMode       string // how the gateway's calls travel: auto, durable or direct
	HTTPPublicURL string // the URL clients reach the gateway at, for the cards; empty: the request's host
	Sidecars      string // AGENT=URL,...: A2A HTTP agents to serve on the bus
}

// DefaultConfig returns the defaults: the embedded server on 127.0.0.1:4222
// with its data in ./data, HTTP on 127.0.0.1:8080, gRPC on 127.0.0.1:50051.
func DefaultConfig() Config {
	return Config{
		Data:            "data",
		NATSHost:        "127.0.0.1",
		NATSPort:        4222,
		NATSMonitorPort: -1,
		HTTP:            "127.0.0.1:8080",
		GRPC:            "127.0.0.1:50051",
		LogLevel:        "info",
		LogFormat:       "text",
		DemoDelay:       100 * time.Millisecond,
		Consumers:       1,
		Pool:            "agentd",
		Partitions:      agentbus.DefaultPartitions,
		HandlerTimeout:  agentbus.DefaultHandlerTimeout,
		DrainTimeout:    2 * time.Second,
		MemberTTL:       agentbus.DefaultMemberTTL,
		NUMANode:        -1,
		A2AMode:         "auto",
	}
}

// Validate reports the first setting that is out of range, naming it.
func (c Config) Validate() error {
	if c.NATS != "" && strings.TrimSpace(c.NATS) == "" {
		return errors.New("--nats: empty URL")
	}
	if c.NATS == "" && c.Data == "" {
		return errors.New("--data: the embedded server needs a data directory")
	}
	if err := checkPort("--nats-port", c.NATSPort); err != nil {
		return err
	}
	if err := checkPort("--nats-monitor-port", c.NATSMonitorPort); err != nil {
		return err
	}
	if _, _, err := net.SplitHostPort(c.HTTP); err != nil {
		return fmt.Errorf("--http %q: want host:port: %v", c.HTTP, err)
	}
	if c.Replicas < 0 || c.Replicas > 5 {
		return fmt.Errorf("--replicas %d: want 0 (automatic) or 1..5", c.Replicas)
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("--log-level %q: want debug, info, warn or error", c.LogLevel)
	}
	if c.Consumers < 0 || c.Consumers > maxConsumers {
		return fmt.Errorf("--consumers %d: want 0..%d", c.Consumers, maxConsumers)
	}
	if err := placement.ValidatePoolName(c.Pool); err != nil {
		return fmt.Errorf("--pool %q: %w", c.Pool, err)
	}
	if c.Partitions < 1 || c.Partitions > placement.MaxGroups {
		return fmt.Errorf("--partitions %d: want 1..%d", c.Partitions, placement.MaxGroups)
	}
	if c.HandlerTimeout < time.Second || c.HandlerTimeout > 24*time.Hour {
		return fmt.Errorf("--handler-timeout %v: want 1s..24h", c.HandlerTimeout)
	}
	if c.DrainTimeout < 0 || c.DrainTimeout > time.Hour {
		return fmt.Errorf("--drain-timeout %v: want 0s..1h", c.DrainTimeout)
	}
	if c.MemberTTL < time.Second || c.MemberTTL > 10*time.Minute {
		return fmt.Errorf("--member-ttl %v: want 1s..10m", c.MemberTTL)
	}
	if c.CPUs != "" {
		if _, err := sysinfo.ParseCPUList(c.CPUs); err != nil {
			return fmt.Errorf("--cpus %q: want a CPU list such as 0-3,8", c.CPUs)
		}
		if c.NUMANode >= 0 {
			return errors.New("--cpus and --numa-node: give one of them")
		}
	}
	if c.NUMANode < -1 {
		return fmt.Errorf("--numa-node %d: want a node number, or -1 for none", c.NUMANode)
	}
	if c.DemoDelay < 0 || c.DemoDelay > time.Minute {
		return fmt.Errorf("--demo-delay %v: want 0..1m", c.DemoDelay)
	}
	switch c.LogFormat {
	case "text", "json":
	default:
		return fmt.Errorf("--log-format %q: want text or json", c.LogFormat)
	}
	return c.validateGateway()
}

// validateGateway checks the A2A gateway's settings.
func (c Config) validateGateway() error {
	if c.GRPC != "" && c.GRPC != "off" {
		if _, _, err := net.SplitHostPort(c.GRPC); err != nil {
			return fmt.Errorf("--grpc %q: want host:port, or off: %v", c.GRPC, err)
		}
	}
	if c.GRPCDefaultAgent != "" {
		if err := placement.ValidateAgentID(c.GRPCDefaultAgent); err != nil {
			return fmt.Errorf("--grpc-default-agent: %w", err)
		}
	}
	if (c.HTTPTLSCert == "") != (c.HTTPTLSKey == "") {
		return errors.New("--http-tls-cert and --http-tls-key: give both or neither")
	}
	if c.HTTPClientCA != "" && c.HTTPTLSCert == "" {
		return errors.New("--http-client-ca needs --http-tls-cert and --http-tls-key: client certificates come with TLS")
	}
	if _, err := c.requestMode(); err != nil {
		return err
	}
	if c.HTTPPublicURL != "" {
		u, err := url.Parse(c.HTTPPublicURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("--http-public-url %q: want an http(s) URL such as https://a2a.example.com", c.HTTPPublicURL)
		}
	}
	if _, err := gateway.ParseSidecars(c.Sidecars); err != nil {
		return fmt.Errorf("--sidecars: %w", err)
	}
	return nil
}

// requestMode returns the bus request mode --a2a-mode names.
func (c Config) requestMode() (agentbus.RequestMode, error) {
	switch c.A2AMode {
	case "durable":
		return agentbus.Durable, nil
	case "direct":
		return agentbus.Direct, nil
	case "auto":
		return agentbus.Auto, nil
	}
	return 0, fmt.Errorf("--a2a-mode %q: want auto, durable or direct", c.A2AMode)
}

// maxConsumers bounds the consumers one agentd runs.
const maxConsumers = 256

func checkPort(name string, p int) error {
	if p < -1 || p > 65535 {
		return fmt.Errorf("%s %d: want 1..65535, 0 for any free port or -1 for none", name, p)
	}
	return nil
}

// flagSet binds the run flags to c. Its output is discarded: errors are
// reported once, in one line, by the caller.
func flagSet(c *Config) *flag.FlagSet {
	fs := flag.NewFlagSet("agentd", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&c.NATS, "nats", c.NATS, "NATS server `URL`s, comma-separated, tried in this order (list the host's own server first); empty starts the embedded server")
	fs.StringVar(&c.Data, "data", c.Data, "data `dir`ectory of the embedded NATS server")
	fs.StringVar(&c.NATSHost, "nats-host", c.NATSHost, "`host` the embedded NATS server listens on for clients")
	fs.IntVar(&c.NATSPort, "nats-port", c.NATSPort, "client `port` of the embedded NATS server (0 any free port, -1 in-process only)")
	fs.IntVar(&c.NATSMonitorPort, "nats-monitor-port", c.NATSMonitorPort, "monitoring `port` of the embedded NATS server (0 any free port, -1 off)")
	fs.StringVar(&c.HTTP, "http", c.HTTP, "`address` of the A2A gateway (/a2a/<agent>), /healthz, /readyz and /metrics")
	fs.StringVar(&c.GRPC, "grpc", c.GRPC, "`address` of the A2A gateway's gRPC binding (every agent, by tenant; the same TLS and auth as --http), or off")
	fs.StringVar(&c.GRPCDefaultAgent, "grpc-default-agent", c.GRPCDefaultAgent, "`agent` of gRPC calls that name no tenant (default: such calls are refused)")
	fs.StringVar(&c.HTTPToken, "http-token", c.HTTPToken, "bearer `token` A2A calls to the gateway must carry (without it or --http-client-ca, loopback clients only)")
	fs.StringVar(&c.HTTPTLSCert, "http-tls-cert", c.HTTPTLSCert, "certificate `file` (PEM): serve HTTPS")
	fs.StringVar(&c.HTTPTLSKey, "http-tls-key", c.HTTPTLSKey, "private key `file` (PEM) of --http-tls-cert")
	fs.StringVar(&c.HTTPClientCA, "http-client-ca", c.HTTPClientCA, "CA `file` (PEM): A2A calls with a client certificate it signed are let in (mutual TLS)")
	fs.StringVar(&c.A2AMode, "a2a-mode", c.A2AMode, "`mode` of the gateway's calls on the bus: auto (direct to the agent's consumer, stored when there is none), durable (always stored) or direct (never stored)")
	fs.StringVar(&c.HTTPPublicURL, "http-public-url", c.HTTPPublicURL, "`URL` clients reach the gateway at, written into agent cards (default: each request's own scheme and host)")
	fs.StringVar(&c.Sidecars, "sidecars", c.Sidecars, "A2A HTTP agents to serve on the bus, as `AGENT=URL`,... (URL: the agent's JSON-RPC endpoint)")
	fs.IntVar(&c.Replicas, "replicas", c.Replicas, "stream replicas `n` (0: 1 on one server, 3 in a cluster)")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "log `level`: debug, info, warn or error")
	fs.StringVar(&c.LogFormat, "log-format", c.LogFormat, "log `format`: text or json")
	fs.StringVar(&c.ConfigFile, "config", c.ConfigFile, "JSON `file` of settings named as these flags")
	fs.BoolVar(&c.Demo, "demo", c.Demo, "host the demo agents: echo (replies with the text it got), worker (replies after --demo-delay) and tck (the A2A conformance kit's agent)")
	fs.DurationVar(&c.DemoDelay, "demo-delay", c.DemoDelay, "how long the demo worker agent works on a message")
	fs.StringVar(&c.CPUs, "cpus", c.CPUs, "bind agentd to these CPUs (`list` such as 0-3,8; Linux only, elsewhere a warning)")
	fs.IntVar(&c.NUMANode, "numa-node", c.NUMANode, "bind agentd to the CPUs of this NUMA `node` (-1 none; Linux only)")
	fs.DurationVar(&c.MemberTTL, "member-ttl", c.MemberTTL, "how long a consumer that stopped heartbeating keeps its partitions (the same on every agentd)")
	fs.IntVar(&c.Consumers, "consumers", c.Consumers, "consumers `n` of the agents this agentd hosts while no scaler sets a target (then its share of the target)")
	fs.StringVar(&c.Pool, "pool", c.Pool, "`name` of the pool of the agents this agentd hosts (every agentd of a pool hosts the same agents)")
	fs.IntVar(&c.Partitions, "partitions", c.Partitions, "partition `count` of the pool, fixed when the pool is first declared")
	fs.DurationVar(&c.HandlerTimeout, "handler-timeout", c.HandlerTimeout, "longest a hosted agent may take on one message before the attempt fails (retried, then dead-lettered)")
	fs.DurationVar(&c.DrainTimeout, "drain-timeout", c.DrainTimeout, "how long hosted agents' running handlers may finish when a consumer stops (scale-down, shutdown) before they are canceled and handed to the pool's next member")
	return fs
}

// envName maps a flag name to its environment variable: nats-port is
// AGENTD_NATS_PORT.
func envName(flagName string) string {
	return "AGENTD_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// errHelp is returned by loadConfig when the user asked for help.
var errHelp = flag.ErrHelp

// loadConfig builds the configuration: defaults, then the config file, then
// the environment, then the flags given. It returns the positional
// arguments left after the flags.
func loadConfig(args []string, lookupEnv func(string) (string, bool)) (Config, []string, error) {
	cfg := DefaultConfig()
	fs := flagSet(&cfg)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return cfg, nil, errHelp
		}
		return cfg, nil, err
	}
	given := map[string]string{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = f.Value.String() })

	path := cfg.ConfigFile
	if _, flagged := given["config"]; !flagged {
		if v, ok := lookupEnv(envName("config")); ok {
			path = v
		}
	}
	if path != "" {
		if err := applyFile(fs, path); err != nil {
			return cfg, nil, err
		}
	}
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		if envErr != nil || f.Name == "config" {
			return
		}
		if v, ok := lookupEnv(envName(f.Name)); ok {
			if err := fs.Set(f.Name, v); err != nil {
				envErr = fmt.Errorf("%s=%q: %v", envName(f.Name), v, err)
			}
		}
	})
	if envErr != nil {
		return cfg, nil, envErr
	}
	for name, v := range given { // flags win over file and environment
		if err := fs.Set(name, v); err != nil {
			return cfg, nil, err
		}
	}
	cfg.ConfigFile = path
	return cfg, fs.Args(), cfg.Validate()
}

// applyFile sets the flags named by the keys of the JSON object in path.
func applyFile(fs *flag.FlagSet, path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("--config: %v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return fmt.Errorf("--config %s: not a JSON object of settings: %v", path, err)
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if k == "config" || fs.Lookup(k) == nil {
			return fmt.Errorf("--config %s: unknown setting %q", path, k)
		}
		var s string
		switch v := m[k].(type) {
		case string:
			s = v
		case json.Number:
			s = v.String()
		case bool:
			s = strconv.FormatBool(v)
		default:
			return fmt.Errorf("--config %s: setting %q: want a string, number or boolean", path, k)
		}
		if err := fs.Set(k, s); err != nil {
			return fmt.Errorf("--config %s: setting %q: %v", path, k, err)
		}
	}
	return nil
}

// usage writes the run flags and their environment variables.
func usage(w io.Writer) {
	fmt.Fprint(w, `Usage: agentd [run] [flags]
       agentd codec decode [--compact] [FILE|-]
       agentd codec encode [--compress auto|lz4|s2|zstd|none] [FILE|-]
       agentd send --to AGENT [--wait] [--from AGENT] [--nats URL] TEXT
       agentd bench throughput [--json] [--nats URL] [--msgs N] [--size B] [--senders 1,4]
       agentd bench latency [--json] [--nats URL] [--requests N] [--size B]
       agentd bench e2e [--json] [--nats URL] [--msgs N] [--size B] [--destinations N]
       agentd bench placement [--json]
       agentd bench durability [--json] [--msgs N]
       agentd bench a2a [--json] [--nats URL] [--requests N] [--clients 64] [--size B] [--parties LIST]
       agentd doctor [--json]
       agentd permissions [--role agent|agentd|scalerd] [--agent ID] [--partitions N] [--nkey KEY]

agentd is the a2abus per-host daemon. With no --nats URL it starts an
embedded NATS server with JetStream.

Flags (each also an AGENTD_* environment variable, e.g. --nats-port is
AGENTD_NATS_PORT, and a key of the --config JSON file):
`)
	cfg := DefaultConfig()
	fs := flagSet(&cfg)
	fs.SetOutput(w)
	fs.PrintDefaults()
}

// ShutdownTimeout is how long a shutdown (SIGTERM) may take: the drain of
// the hosted agents' handlers and what follows it.
func (c Config) ShutdownTimeout() time.Duration { return c.DrainTimeout + shutdownAfterDrain }
