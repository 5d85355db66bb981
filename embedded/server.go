package embedded

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// Server is a running in-process NATS server with JetStream.
type Server struct {
	ns      *server.Server
	log     *slogAdapter
	tempDir string // removed on shutdown; empty when the store dir was given

	shutdownOnce sync.Once
	done         chan struct{} // closed when shutdown has finished
	shutdownErr  error
}

// Start starts a server and returns once it accepts connections and
// JetStream is enabled. The context bounds the wait; when it ends first,
// Start shuts the server down and returns an error wrapping ErrNotReady.
// Start-up failures (port in use, unwritable store dir, bad configuration)
// are returned with the server's own description.
func Start(ctx context.Context, opts ...Option) (*Server, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotReady, context.Cause(ctx))
	}
	cfg := defaultConfig()
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	sopts, err := serverOptions(&cfg)
	if err != nil {
		return nil, err
	}

	s := &Server{log: newSlogAdapter(cfg.logger), done: make(chan struct{})}
	if sopts.StoreDir == "" {
		dir, err := os.MkdirTemp("", "a2abus-nats-*")
		if err != nil {
			return nil, fmt.Errorf("embedded: store dir: %w", err)
		}
		sopts.StoreDir = dir
		s.tempDir = dir
	} else if err := checkWritableDir(sopts.StoreDir); err != nil {
		return nil, err
	}

	ns, err := server.NewServer(sopts)
	if err != nil {
		s.removeTemp()
		return nil, fmt.Errorf("embedded: %w", err)
	}
	s.ns = ns
	ns.SetLoggerV2(s.log, s.log.debugEnabled(), s.log.debugEnabled(), false)
	ns.Start()

	if err := s.waitReady(ctx); err != nil {
		_ = s.Shutdown(context.Background())
		return nil, err
	}
	return s, nil
}

func (s *Server) waitReady(ctx context.Context) error {
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		if err := s.log.fatalErr(); err != nil {
			return err
		}
		// ReadyForConnections checks once per call given any positive wait.
		if s.ns.ReadyForConnections(time.Millisecond) && s.ns.JetStreamEnabled() {
			return nil
		}
		select {
		case <-s.log.fatalc:
		case <-tick.C:
		case <-ctx.Done():
			return fmt.Errorf("%w: %w", ErrNotReady, context.Cause(ctx))
		}
	}
}

// serverOptions builds the server's options: defaults, then the
// configuration file, then the explicit options.
func serverOptions(cfg *config) (*server.Options, error) {
	o := &server.Options{}
	switch {
	case cfg.configFile != "":
		if err := o.ProcessConfigFile(cfg.configFile); err != nil {
			return nil, fmt.Errorf("embedded: config file %s: %w", cfg.configFile, err)
		}
	case cfg.configText != "":
		if err := o.ProcessConfigString(cfg.configText); err != nil {
			return nil, fmt.Errorf("embedded: config: %w", err)
		}
	}

	o.JetStream = true
	o.NoSigs = true // the host process owns signals
	o.ServerName = cfg.name
	if cfg.storeDir != "" {
		o.StoreDir = cfg.storeDir
	}
	switch {
	case cfg.maxPayload != 0:
		o.MaxPayload = cfg.maxPayload
	case o.MaxPayload == 0:
		o.MaxPayload = DefaultMaxPayload
	}

	// Listeners are the options' business, whatever the file says.
	o.Host = cfg.host
	o.Port = cfg.port
	o.DontListen = cfg.dontListen
	o.HTTPHost, o.HTTPPort, o.HTTPSPort = "", 0, 0
	if cfg.monitorPort != 0 {
		o.HTTPHost, o.HTTPPort = cfg.host, cfg.monitorPort
	}
	o.Cluster = server.ClusterOpts{}
	o.Routes = nil
	o.RoutesStr = ""
	if cl := cfg.cluster; cl != nil {
		if cfg.name == "" {
			return nil, errors.New("embedded: a cluster member needs a server name")
		}
		host := cl.Host
		if host == "" {
			host = DefaultHost
		}
		o.Cluster = server.ClusterOpts{Name: cl.Name, Host: host, Port: cl.Port}
		o.Routes = cl.Routes
	}

	for _, fn := range cfg.tweaks {
		fn(o)
	}
	return o, nil
}

// checkWritableDir creates dir if needed and proves it takes a file, so
// that an unwritable store fails Start with a clear error rather than deep
// inside JetStream.
func checkWritableDir(dir string) error {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("embedded: store dir: %w", err)
	}
	f, err := os.CreateTemp(dir, ".write-check-*")
	if err != nil {
		return fmt.Errorf("embedded: store dir %s is not writable: %w", dir, err)
	}
	name := f.Name()
	_ = f.Close()
	return os.Remove(name)
}

// Connect opens an in-process connection to the server: no TCP, no port
// needed. The options are nats.go's; the in-process dialer is added last.
func (s *Server) Connect(opts ...nats.Option) (*nats.Conn, error) {
	opts = append(opts, nats.InProcessServer(s.ns))
	return nats.Connect("", opts...)
}

// ClientURL returns the URL other processes connect to, or "" when the
// server has no client listener.
func (s *Server) ClientURL() string {
	addr, ok := s.ns.Addr().(*net.TCPAddr)
	if !ok || addr == nil {
		return ""
	}
	return "nats://" + net.JoinHostPort(dialHost(addr.IP), strconv.Itoa(addr.Port))
}

// MonitorURL returns the HTTP monitoring endpoint's base URL, or "" when
// monitoring is off.
func (s *Server) MonitorURL() string {
	addr := s.ns.MonitorAddr()
	if addr == nil {
		return ""
	}
	return "http://" + net.JoinHostPort(dialHost(addr.IP), strconv.Itoa(addr.Port))
}

// ClusterURL returns the route URL peers connect to, or "" when the server
// is not a cluster member.
func (s *Server) ClusterURL() string {
	addr := s.ns.ClusterAddr()
	if addr == nil {
		return ""
	}
	return "nats-route://" + net.JoinHostPort(dialHost(addr.IP), strconv.Itoa(addr.Port))
}

// dialHost turns a listen address into one a client can dial: a wildcard
// listener is reached through loopback.
func dialHost(ip net.IP) string {
	if ip == nil || ip.IsUnspecified() {
		return "127.0.0.1"
	}
	return ip.String()
}

// Name returns the server's name (its ID when no name was given).
func (s *Server) Name() string { return s.ns.Name() }

// StoreDir returns the directory JetStream writes to: the server puts it
// in a "jetstream" directory under the configured store dir.
func (s *Server) StoreDir() string { return s.ns.StoreDir() }

// NATSServer returns the underlying nats-server for what this package does
// not wrap (leadership queries, monitoring structures). Do not call its
// Shutdown; use Server.Shutdown.
func (s *Server) NATSServer() *server.Server { return s.ns }

// Shutdown stops the server, waits until it has stopped, and removes the
// temporary store dir if Start made one. It is idempotent: later and
// concurrent calls wait for the same shutdown. When ctx ends first,
// Shutdown returns its error and the shutdown goes on in the background.
func (s *Server) Shutdown(ctx context.Context) error {
	s.shutdownOnce.Do(func() {
		go func() {
			defer close(s.done)
			s.ns.Shutdown()
			s.ns.WaitForShutdown()
			s.shutdownErr = s.removeTemp()
		}()
	})
	select {
	case <-s.done:
		return s.shutdownErr
	case <-ctx.Done():
		return fmt.Errorf("embedded: shutdown: %w", context.Cause(ctx))
	}
}

func (s *Server) removeTemp() error {
	if s.tempDir == "" {
		return nil
	}
	if err := os.RemoveAll(s.tempDir); err != nil {
		return fmt.Errorf("embedded: remove temporary store dir: %w", err)
	}
	return nil
}
