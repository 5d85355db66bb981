package embedded

import (
	"fmt"
	"log/slog"
	"net/url"

	"github.com/nats-io/nats-server/v2/server"
)

const (
	// RandomPort asks the server to pick a free port.
	RandomPort = server.RANDOM_PORT

	// DefaultMaxPayload is large enough for a 10 MiB A2A message plus its
	// envelope and headers. It matches max_payload in nats.conf.
	DefaultMaxPayload = 16 << 20

	// DefaultHost is the address the client listener binds when no host is
	// given: loopback only, so an embedded server is not reachable from other
	// machines unless asked.
	DefaultHost = "127.0.0.1"
)

// Option configures Start.
type Option func(*config) error

type config struct {
	host        string
	port        int
	dontListen  bool
	monitorPort int
	name        string
	storeDir    string
	maxPayload  int32
	configFile  string
	configText  string
	logger      *slog.Logger
	cluster     *Cluster
	tweaks      []func(*server.Options)
}

func defaultConfig() config {
	return config{
		host: DefaultHost,
		port: RandomPort,
	}
}

// Cluster configures the server's route listener and its peers.
type Cluster struct {
	// Name is the cluster name; every peer must use the same one.
	Name string
	// Host and Port of the route listener. Port may be RandomPort.
	Host string
	Port int
	// Routes are the peers' route URLs (nats-route://host:port). A server
	// may list itself; the server skips it.
	Routes []*url.URL
}

// WithHost sets the address the client listener binds (default 127.0.0.1).
func WithHost(host string) Option {
	return func(c *config) error {
		c.host = host
		return nil
	}
}

// WithPort sets the client port: a fixed port in 1..65535 or RandomPort.
// The default is RandomPort.
func WithPort(port int) Option {
	return func(c *config) error {
		if port != RandomPort && (port < 1 || port > 65535) {
			return fmt.Errorf("embedded: client port %d out of range 1..65535", port)
		}
		c.port = port
		c.dontListen = false
		return nil
	}
}

// WithoutListener starts the server with no client listener at all: only
// in-process connections (Connect) reach it.
func WithoutListener() Option {
	return func(c *config) error {
		c.dontListen = true
		return nil
	}
}

// WithMonitorPort enables the HTTP monitoring endpoint (/varz, /jsz, ...) on
// the given port, on the client listener's host. The default is off.
func WithMonitorPort(port int) Option {
	return func(c *config) error {
		if port != RandomPort && (port < 1 || port > 65535) {
			return fmt.Errorf("embedded: monitor port %d out of range 1..65535", port)
		}
		c.monitorPort = port
		return nil
	}
}

// WithServerName sets the server name, which must be unique in a cluster.
func WithServerName(name string) Option {
	return func(c *config) error {
		c.name = name
		return nil
	}
}

// WithStoreDir sets the JetStream store directory. Without it, the
// configuration file's store_dir is used, and failing that a temporary
// directory that Shutdown removes.
func WithStoreDir(dir string) Option {
	return func(c *config) error {
		if dir == "" {
			return fmt.Errorf("embedded: empty store dir")
		}
		c.storeDir = dir
		return nil
	}
}

// WithMaxPayload sets the largest message the server accepts, in bytes. The
// default is the configuration file's max_payload, or DefaultMaxPayload.
func WithMaxPayload(n int) Option {
	return func(c *config) error {
		if n < 1 || n > 64<<20 {
			return fmt.Errorf("embedded: max payload %d out of range 1..64 MiB", n)
		}
		c.maxPayload = int32(n)
		return nil
	}
}

// WithConfigFile loads a NATS server configuration file, such as the
// repository's nats.conf, with the server's own parser. Options given to
// Start override what the file sets.
func WithConfigFile(path string) Option {
	return func(c *config) error {
		c.configFile = path
		c.configText = ""
		return nil
	}
}

// WithConfig is WithConfigFile for configuration text already in memory,
// such as a2abus.NATSConf. Include directives are not supported in it.
func WithConfig(text string) Option {
	return func(c *config) error {
		c.configText = text
		c.configFile = ""
		return nil
	}
}

// WithLogger sends the server's log through l: notices at Info, warnings at
// Warn, errors and fatal errors at Error, debug and trace at Debug (only when
// l is enabled for Debug). The default discards the log.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error {
		c.logger = l
		return nil
	}
}

// WithCluster makes the server a member of a cluster with clustered
// JetStream. It requires a server name (WithServerName).
func WithCluster(cl Cluster) Option {
	return func(c *config) error {
		if cl.Name == "" {
			return fmt.Errorf("embedded: cluster needs a name")
		}
		c.cluster = &cl
		return nil
	}
}

// WithServerOptions applies fn to the server's options after every other
// setting: an escape hatch for what this package has no option for (TLS,
// authorization, JetStream sync settings). Use it sparingly.
func WithServerOptions(fn func(*server.Options)) Option {
	return func(c *config) error {
		c.tweaks = append(c.tweaks, fn)
		return nil
	}
}
