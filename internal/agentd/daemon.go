package agentd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/a2abus/a2abus"
	"github.com/a2abus/a2abus/agentbus"
	"github.com/a2abus/a2abus/embedded"
	"github.com/a2abus/a2abus/internal/gateway"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"google.golang.org/grpc"
)

// Time limits of the daemon's life cycle.
const (
	startTimeout = 30 * time.Second // embedded server start, connect, stream provisioning
	// shutdownAfterDrain is what a shutdown may take besides the hosted
	// agents' drain (--drain-timeout): SIGTERM to exit within 4 s by
	// default, within the 5 s operators expect.
	shutdownAfterDrain = 2 * time.Second
	// httpGrace is how long requests in flight at shutdown may run on
	// (an SSE stream can run for as long as its task) before their
	// contexts are canceled; callGrace is the same, after the consumers
	// stopped, for the direct A2A calls the hosted agents still run. The
	// embedded server's own shutdown takes most of shutdownAfterDrain.
	httpGrace    = 500 * time.Millisecond
	callGrace    = 500 * time.Millisecond
	pushGrace    = 500 * time.Millisecond // the hosted agents' push notifications still queued, beside the bus's close
	drainTimeout = 2 * time.Second
	readyTimeout = 2 * time.Second // one /readyz check
)

// busConn is what the HTTP handlers need of a started daemon.
type busConn struct {
	nc *nats.Conn
	js jetstream.JetStream
}

// Daemon is a running agentd: its NATS connection (and embedded server),
// its streams and its HTTP endpoints.
type Daemon struct {
	cfg Config
	log *slog.Logger
	reg *prometheus.Registry
	tp  trace.TracerProvider // nil: no tracing of its own

	ln net.Listener
	hs *http.Server
	// grpcLn and gs are the gateway's gRPC binding (nil with --grpc off;
	// gs is nil until the gateway is up).
	grpcLn net.Listener
	gs     *grpc.Server
	// httpCtx is the requests' base context, canceled once httpGrace has
	// passed in a shutdown.
	httpCtx    context.Context
	httpCancel context.CancelFunc
	srv        *embedded.Server // nil when connected to --nats
	nc         *nats.Conn

	// live is set once the streams are provisioned; the HTTP handlers read it.
	live atomic.Pointer[busConn]

	stopHosted   func(context.Context)        // nil unless --demo or --sidecars
	hosted       atomic.Pointer[agentbus.Bus] // the bus the hosted agents are served on
	consumers    atomic.Pointer[consumerPool] // their consumers; nil when it hosts none
	gw           atomic.Pointer[gateway.Gateway]
	gwBus        *agentbus.Bus
	serveErr     chan error // size one: the first server's exit
	shutdownOnce sync.Once
	shutdownErr  error
}

// DaemonOption configures NewDaemon.
type DaemonOption func(*Daemon)

// WithTracerProvider makes the daemon's spans (its buses', gateway's and
// hosted agents') with tp; without it the daemon traces nothing and only
// passes on the trace contexts calls bring.
func WithTracerProvider(tp trace.TracerProvider) DaemonOption {
	return func(d *Daemon) { d.tp = tp }
}

// NewDaemon returns a daemon for cfg, which must be valid. Start runs it.
func NewDaemon(cfg Config, log *slog.Logger, opts ...DaemonOption) *Daemon {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectors.NewBuildInfoCollector(),
	)
	d := &Daemon{cfg: cfg, log: log, reg: reg, serveErr: make(chan error, 1)}
	for _, o := range opts {
		o(d)
	}
	return d
}

// busOptions are the options of every bus the daemon connects: nc, its
// logger and its tracer provider.
func (d *Daemon) busOptions(nc *nats.Conn, more ...agentbus.Option) []agentbus.Option {
	tp := d.tp
	if tp == nil {
		tp = noop.NewTracerProvider()
	}
	return append([]agentbus.Option{agentbus.WithConn(nc), agentbus.WithLogger(d.log), agentbus.WithTracerProvider(tp)}, more...)
}

// Start opens the HTTP listener (so /healthz answers during start-up),
// starts the embedded NATS server unless cfg.NATS is set, connects,
// provisions the streams, and returns once /readyz would answer 200. On
// error everything started is stopped again.
func (d *Daemon) Start(ctx context.Context) (err error) {
	defer func() {
		if err != nil {
			_ = d.Shutdown(context.Background())
		}
	}()
	ln, err := net.Listen("tcp", d.cfg.HTTP)
	if err != nil {
		return fmt.Errorf("--http %s: %w", d.cfg.HTTP, unwrapOp(err))
	}
	d.ln = ln
	d.httpCtx, d.httpCancel = context.WithCancel(context.Background())
	d.hs = &http.Server{Handler: d.handler(), ReadHeaderTimeout: 10 * time.Second,
		BaseContext: func(net.Listener) context.Context { return d.httpCtx }}
	if d.cfg.HTTPTLSCert != "" {
		if d.hs.TLSConfig, err = d.httpTLS(); err != nil {
			return err
		}
		go func() { d.fail(d.hs.ServeTLS(ln, "", "")) }()
	} else {
		go func() { d.fail(d.hs.Serve(ln)) }()
	}

	if d.cfg.GRPC != "" && d.cfg.GRPC != "off" {
		if d.grpcLn, err = net.Listen("tcp", d.cfg.GRPC); err != nil {
			return fmt.Errorf("--grpc %s: %w", d.cfg.GRPC, unwrapOp(err))
		}
	}

	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()

	url := d.cfg.NATS
	if url == "" {
		if err := d.startEmbedded(ctx); err != nil {
			return err
		}
		url = d.srv.ClientURL()
	}
	nc, err := d.connect(url)
	if err != nil {
		return err
	}
	d.nc = nc
	if err := d.reg.Register(agentbus.NewConnCollector(nc, "agentd")); err != nil {
		return err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	replicas := d.replicas(nc)
	if err := agentbus.EnsureStreams(ctx, js, agentbus.StreamConfig{Replicas: replicas}); err != nil {
		return fmt.Errorf("provision streams: %w", err)
	}
	if err := d.ensureBuckets(ctx, nc); err != nil {
		return fmt.Errorf("provision buckets: %w", err)
	}
	if d.cfg.Demo || d.cfg.Sidecars != "" {
		if d.stopHosted, err = d.startHosted(ctx, nc); err != nil {
			return fmt.Errorf("hosted agents: %w", err)
		}
	}
	if err := d.startGateway(ctx, nc); err != nil {
		return fmt.Errorf("A2A gateway: %w", err)
	}
	d.live.Store(&busConn{nc: nc, js: js})
	d.log.Info("agentd ready", "http", ln.Addr().String(), "grpc", d.GRPCAddr(), "nats", d.NATSURL(),
		"embedded", d.srv != nil, "stream", agentbus.StreamName, "replicas", replicas)
	return nil
}

// ensureBuckets creates the pool registry and the members bucket, so that
// agents with their own credentials (which may not create buckets) can
// serve and send whether or not this agentd hosts agents itself.
func (d *Daemon) ensureBuckets(ctx context.Context, nc *nats.Conn) error {
	bus, err := agentbus.Connect(ctx, d.busOptions(nc)...)
	if err != nil {
		return err
	}
	defer func() { _ = bus.Close(context.Background()) }()
	if err := bus.EnsureBuckets(ctx, d.cfg.MemberTTL); err != nil {
		return fmt.Errorf("--member-ttl %v: %w", d.cfg.MemberTTL, err)
	}
	return nil
}

func (d *Daemon) startEmbedded(ctx context.Context) error {
	dir, err := filepath.Abs(d.cfg.Data)
	if err != nil {
		return fmt.Errorf("--data %s: %w", d.cfg.Data, err)
	}
	opts := []embedded.Option{
		embedded.WithConfig(a2abus.NATSConf),
		embedded.WithStoreDir(dir),
		embedded.WithHost(d.cfg.NATSHost),
		embedded.WithLogger(d.natsLog()),
	}
	switch p := d.cfg.NATSPort; p {
	case -1:
		opts = append(opts, embedded.WithoutListener())
	case 0:
		opts = append(opts, embedded.WithPort(embedded.RandomPort))
	default:
		opts = append(opts, embedded.WithPort(p))
	}
	switch p := d.cfg.NATSMonitorPort; p {
	case -1:
	case 0:
		opts = append(opts, embedded.WithMonitorPort(embedded.RandomPort))
	default:
		opts = append(opts, embedded.WithMonitorPort(p))
	}
	if host, err := os.Hostname(); err == nil {
		opts = append(opts, embedded.WithServerName("agentd-"+host))
	}
	srv, err := embedded.Start(ctx, opts...)
	if err != nil {
		return fmt.Errorf("embedded NATS server (--data %s, --nats-port %d): %w", d.cfg.Data, d.cfg.NATSPort, err)
	}
	d.srv = srv
	d.log.Info("embedded NATS server started", "url", srv.ClientURL(), "monitor", srv.MonitorURL(), "store", srv.StoreDir())
	return nil
}

// natsLog is the embedded server's logger: warnings and errors, and
// everything at --log-level debug.
func (d *Daemon) natsLog() *slog.Logger {
	l := d.log.With("component", "nats-server")
	if d.cfg.LogLevel == "debug" {
		return l
	}
	return quieter(l, slog.LevelWarn)
}

func (d *Daemon) connect(url string) (*nats.Conn, error) {
	opts := []nats.Option{
		nats.Name("agentd"),
		// --nats is tried in its order, not shuffled: an agentd per server
		// lists its own server first and runs there while it is up.
		nats.DontRandomize(),
		nats.Timeout(startTimeout),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(time.Second),
		nats.ReconnectJitter(100*time.Millisecond, time.Second),
		nats.DrainTimeout(drainTimeout),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				d.log.Warn("NATS disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			d.log.Info("NATS reconnected", "url", nc.ConnectedUrlRedacted())
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			subj := ""
			if sub != nil {
				subj = sub.Subject
			}
			d.log.Error("NATS async error", "subject", subj, "err", err)
		}),
	}
	if d.srv != nil {
		// The daemon talks to its own embedded server in-process.
		nc, err := d.srv.Connect(opts...)
		if err != nil {
			return nil, fmt.Errorf("connect to embedded NATS server: %w", err)
		}
		return nc, nil
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, fmt.Errorf("--nats %s: %w", url, err)
	}
	return nc, nil
}

// replicas chooses the stream replica count: the configured one, or 1 on a
// single server and 3 (at most the servers known) in a cluster.
func (d *Daemon) replicas(nc *nats.Conn) int {
	if d.cfg.Replicas > 0 {
		return d.cfg.Replicas
	}
	if d.srv != nil || nc.ConnectedClusterName() == "" {
		return 1
	}
	return min(3, len(nc.Servers()))
}

// HTTPAddr returns the address the HTTP endpoints listen on.
func (d *Daemon) HTTPAddr() string {
	if d.ln == nil {
		return ""
	}
	return d.ln.Addr().String()
}

// GRPCAddr returns the address the gateway's gRPC binding listens on, or
// "" with --grpc off.
func (d *Daemon) GRPCAddr() string {
	if d.grpcLn == nil {
		return ""
	}
	return d.grpcLn.Addr().String()
}

// NATSURL returns the URL other processes use to reach the NATS server:
// the embedded server's client URL, or the connected server's.
func (d *Daemon) NATSURL() string {
	if d.srv != nil {
		return d.srv.ClientURL()
	}
	if d.nc != nil {
		return d.nc.ConnectedUrlRedacted()
	}
	return ""
}

// Err returns a channel that yields the error of the HTTP server or the
// gRPC one if it stops serving before Shutdown.
func (d *Daemon) Err() <-chan error { return d.serveErr }

// fail reports a server's exit on Err, unless one is reported already.
func (d *Daemon) fail(err error) {
	select {
	case d.serveErr <- err:
	default:
	}
}

// Shutdown stops the HTTP server, drains the NATS connection so that
// nothing it has accepted is lost, and stops the embedded server. It is
// idempotent; the first call's error is returned to every call.
func (d *Daemon) Shutdown(ctx context.Context) error {
	d.shutdownOnce.Do(func() { d.shutdownErr = d.shutdown(ctx) })
	return d.shutdownErr
}

func (d *Daemon) shutdown(ctx context.Context) error {
	var errs []error
	// Requests in flight and the hosted agents get their grace at the
	// same time. The consumers stop first, so that no call reaches a
	// closed A2A server (it would fail and be dead-lettered); their
	// handlers drain, the batches they could not finish go back to the
	// pool, then the A2A servers close and their direct calls end.
	hosted := make(chan struct{})
	go func() {
		defer close(hosted)
		if d.stopHosted != nil {
			d.stopHosted(ctx)
		}
	}()
	grpcDone := make(chan error, 1)
	go func() { grpcDone <- d.shutdownGRPC(ctx) }()
	if d.hs != nil {
		if err := d.shutdownHTTP(ctx); err != nil {
			errs = append(errs, fmt.Errorf("http: %w", err))
		}
	}
	if err := <-grpcDone; err != nil {
		errs = append(errs, fmt.Errorf("grpc: %w", err))
	}
	<-hosted
	d.live.Store(nil)
	d.gw.Store(nil)
	if d.gwBus != nil {
		_ = d.gwBus.Close(ctx)
	}
	if d.nc != nil {
		if err := agentbus.Drain(ctx, d.nc); err != nil {
			errs = append(errs, err)
		}
	}
	if d.srv != nil {
		if err := d.srv.Shutdown(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// shutdownHTTP stops the HTTP server: requests in flight may end within
// httpGrace; then the gateway ends its calls with an error (an SSE stream
// gets it as its last event) and they get httpGrace more; then their
// contexts are canceled, and after httpGrace more the connections close.
func (d *Daemon) shutdownHTTP(ctx context.Context) error {
	defer d.httpCancel()
	gctx, cancel := context.WithTimeout(ctx, httpGrace)
	err := d.hs.Shutdown(gctx)
	cancel()
	if err == nil || ctx.Err() != nil {
		return err
	}
	// End the gateway's calls with an error their clients see, then, if
	// requests still run, cancel their contexts.
	if gw := d.gw.Load(); gw != nil {
		gw.Close()
		gctx, cancel = context.WithTimeout(ctx, httpGrace)
		err = d.hs.Shutdown(gctx)
		cancel()
		if err == nil || ctx.Err() != nil {
			return err
		}
	}
	d.httpCancel()
	gctx, cancel = context.WithTimeout(ctx, httpGrace)
	defer cancel()
	if err := d.hs.Shutdown(gctx); err != nil {
		_ = d.hs.Close()
		return fmt.Errorf("requests still running %v after their contexts were canceled: %w", httpGrace, err)
	}
	return nil
}

// shutdownGRPC stops the gRPC binding as shutdownHTTP stops HTTP: calls
// in flight may end within httpGrace; then the gateway ends them with an
// error and they get httpGrace more; then the server closes.
func (d *Daemon) shutdownGRPC(ctx context.Context) error {
	if d.gs == nil {
		if d.grpcLn != nil {
			_ = d.grpcLn.Close()
		}
		return nil
	}
	done := make(chan struct{})
	go func() {
		d.gs.GracefulStop()
		close(done)
	}()
	for step := 0; ; step++ {
		t := time.NewTimer(httpGrace)
		select {
		case <-done:
			t.Stop()
			return nil
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
		if gw := d.gw.Load(); step == 0 && gw != nil && ctx.Err() == nil {
			gw.Close()
			continue
		}
		d.gs.Stop()
		<-done
		return nil
	}
}

// unwrapOp drops the "listen tcp addr:" prefix of a net.OpError, which the
// caller's message already names.
func unwrapOp(err error) error {
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		return op.Err
	}
	return err
}
