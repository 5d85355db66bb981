package agentbus

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"time"

	"github.com/a2abus/a2abus/codec"
	"github.com/a2abus/a2abus/internal/tracing"
	"github.com/a2abus/a2abus/placement"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
)

// Option configures Connect.
type Option func(*config) error

type config struct {
	conn       connConfig
	log        *slog.Logger
	registerer prometheus.Registerer
	tracer     *tracing.Tracer
	stream     StreamConfig
	ensure     bool // provision the streams on Connect

	compression codec.Compression
	maxMsgSize  int
	routes      map[string]*placement.Pool // WithRoute
	unknown     UnknownAgents

	batchItems  int
	batchBytes  int
	linger      time.Duration
	maxInFlight int
	bufferItems int
	bufferBytes int
	sendTimeout time.Duration
}

// Send-path defaults.
const (
	DefaultBatchItems  = 500     // the seed's message_batch_size
	DefaultBatchBytes  = 1 << 20 // a batch frame is cut at 1 MiB; a bigger message goes alone
	DefaultSendTimeout = 30 * time.Second

	// DefaultSendBufferItems and DefaultSendBufferBytes bound what a bus
	// holds accepted and not yet stored: enough for 8 batches of 500 in
	// flight per core and as many forming, and at most 64 MiB of buffers.
	DefaultSendBufferItems = 16384
	DefaultSendBufferBytes = 64 << 20
)

func defaultConfig() config {
	return config{
		conn: connConfig{
			urls:            nats.DefaultURL,
			name:            "a2abus",
			poolSize:        1,
			connectTimeout:  DefaultConnectTimeout,
			pingInterval:    DefaultPingInterval,
			reconnectBuffer: DefaultReconnectBuffer,
			socketBuffer:    DefaultSocketBuffer,
		},
		log:         slog.New(slog.DiscardHandler),
		tracer:      tracing.New(nil),
		compression: codec.CompressAuto,
		maxMsgSize:  codec.DefaultMaxSize,
		batchItems:  DefaultBatchItems,
		batchBytes:  DefaultBatchBytes,
		bufferItems: DefaultSendBufferItems,
		bufferBytes: DefaultSendBufferBytes,
		sendTimeout: DefaultSendTimeout,
	}
}

// WithURL sets the NATS server URLs, comma-separated (default
// nats://127.0.0.1:4222).
func WithURL(urls string) Option {
	return func(c *config) error {
		if urls == "" {
			return fmt.Errorf("agentbus: empty NATS URL")
		}
		c.conn.urls = urls
		return nil
	}
}

// WithConn makes the bus use nc instead of dialing. The bus does not close
// nc. The pool size is then 1.
func WithConn(nc *nats.Conn) Option {
	return func(c *config) error {
		if nc == nil {
			return fmt.Errorf("agentbus: nil connection")
		}
		c.conn.conn = nc
		return nil
	}
}

// WithInProcessServer dials srv in-process (an embedded server) instead of
// over TCP.
func WithInProcessServer(srv nats.InProcessConnProvider) Option {
	return func(c *config) error {
		c.conn.inProcess = srv
		return nil
	}
}

// WithName sets the connection name servers show (default "a2abus").
func WithName(name string) Option {
	return func(c *config) error {
		c.conn.name = name
		return nil
	}
}

// WithPoolSize opens n connections (default 1) and spreads destinations
// over them; each destination always uses the same one, so its order holds.
func WithPoolSize(n int) Option {
	return func(c *config) error {
		if n < 1 || n > 64 {
			return fmt.Errorf("agentbus: pool size %d out of range 1..64", n)
		}
		c.conn.poolSize = n
		return nil
	}
}

// WithConnectTimeout bounds dialing a server (default 30 s).
func WithConnectTimeout(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return fmt.Errorf("agentbus: connect timeout %v must be positive", d)
		}
		c.conn.connectTimeout = d
		return nil
	}
}

// WithPingInterval sets how often an idle connection pings the server to
// find a dead peer; two missed pings close the connection and reconnect
// (default 2 minutes, NATS's own default).
func WithPingInterval(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return fmt.Errorf("agentbus: ping interval %v must be positive", d)
		}
		c.conn.pingInterval = d
		return nil
	}
}

// WithReconnectBuffer bounds the bytes published while disconnected that
// the connection holds for the reconnect (default 8 MiB). Beyond it a
// publish fails with an error rather than buffering without bound.
func WithReconnectBuffer(n int) Option {
	return func(c *config) error {
		if n < 0 {
			return fmt.Errorf("agentbus: negative reconnect buffer")
		}
		c.conn.reconnectBuffer = n
		return nil
	}
}

// WithSocketBuffer sets the TCP send and receive buffer sizes (default
// 64 KiB); 0 keeps the kernel's.
func WithSocketBuffer(n int) Option {
	return func(c *config) error {
		if n < 0 {
			return fmt.Errorf("agentbus: negative socket buffer")
		}
		c.conn.socketBuffer = n
		return nil
	}
}

// WithTLS uses tc for the connection (server verification, client
// certificates).
func WithTLS(tc *tls.Config) Option {
	return func(c *config) error {
		c.conn.tls = tc
		return nil
	}
}

// WithRootCAs trusts the CA certificates in the given PEM files.
func WithRootCAs(files ...string) Option {
	return func(c *config) error {
		c.conn.rootCAs = files
		return nil
	}
}

// WithClientCert presents the certificate and key in the given PEM files.
func WithClientCert(certFile, keyFile string) Option {
	return func(c *config) error {
		c.conn.certFile, c.conn.keyFile = certFile, keyFile
		return nil
	}
}

// WithCredsFile authenticates with a NATS credentials file (JWT and seed).
func WithCredsFile(path string) Option {
	return func(c *config) error {
		c.conn.credsFile = path
		return nil
	}
}

// WithNKeySeedFile authenticates with the nkey seed in path.
func WithNKeySeedFile(path string) Option {
	return func(c *config) error {
		c.conn.nkeySeedFile = path
		return nil
	}
}

// WithToken authenticates with a token.
func WithToken(token string) Option {
	return func(c *config) error {
		c.conn.token = token
		return nil
	}
}

// WithUserPassword authenticates with a user name and password.
func WithUserPassword(user, password string) Option {
	return func(c *config) error {
		c.conn.user, c.conn.password = user, password
		return nil
	}
}

// WithNATSOptions adds nats.go options after the bus's own, for what this
// package has no option for.
func WithNATSOptions(opts ...nats.Option) Option {
	return func(c *config) error {
		c.conn.extra = append(c.conn.extra, opts...)
		return nil
	}
}

// WithLogger logs connection events and dropped work through l (default:
// discard).
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error {
		if l != nil {
			c.log = l
		}
		return nil
	}
}

// WithRegisterer registers the bus's metrics (connection statistics, send
// counters) with r. Without it the bus exports nothing.
func WithRegisterer(r prometheus.Registerer) Option {
	return func(c *config) error {
		c.registerer = r
		return nil
	}
}

// WithEnsureStreams makes Connect provision the streams with cfg (see
// EnsureStreams). Without it Connect expects them to exist.
func WithEnsureStreams(cfg StreamConfig) Option {
	return func(c *config) error {
		if err := cfg.Validate(); err != nil {
			return err
		}
		c.stream, c.ensure = cfg, true
		return nil
	}
}

// WithCompression sets how batch frames are compressed (default
// codec.CompressAuto: S2 when it saves at least 10%, else raw). Use
// codec.CompressLZ4 when consumers written against the seed's Python
// serializer read the stream.
func WithCompression(comp codec.Compression) Option {
	return func(c *config) error {
		c.compression = comp
		return nil
	}
}

// WithMaxMessageSize sets the largest encoded message the bus sends
// (default 10 MiB). Larger messages are refused before anything is sent.
func WithMaxMessageSize(n int) Option {
	return func(c *config) error {
		if n < 1 || n > codec.DefaultMaxSize {
			return fmt.Errorf("agentbus: max message size %d out of range 1..%d", n, codec.DefaultMaxSize)
		}
		c.maxMsgSize = n
		return nil
	}
}

// WithBatch sets the most messages and bytes in one batch (defaults 500
// and 1 MiB; a message bigger than the byte limit goes alone).
func WithBatch(items, bytes int) Option {
	return func(c *config) error {
		if items < 1 || bytes < 1 {
			return fmt.Errorf("agentbus: batch limits %d messages, %d bytes must be positive", items, bytes)
		}
		c.batchItems, c.batchBytes = items, bytes
		return nil
	}
}

// WithLinger makes an idle destination wait up to d (at most 10 ms) for
// more messages before its first batch. The default, 0, sends a lone
// message at once; batches still form while earlier ones are in flight.
func WithLinger(d time.Duration) Option {
	return func(c *config) error {
		if d < 0 || d > 10*time.Millisecond {
			return fmt.Errorf("agentbus: linger %v out of range 0..10ms", d)
		}
		c.linger = d
		return nil
	}
}

// WithMaxInFlight bounds the batches being published at once, over all
// destinations (default: the batcher's, 4 × GOMAXPROCS).
func WithMaxInFlight(n int) Option {
	return func(c *config) error {
		if n < 1 {
			return fmt.Errorf("agentbus: max in flight %d must be positive", n)
		}
		c.maxInFlight = n
		return nil
	}
}

// WithSendBuffer bounds the messages and the buffer bytes (the memory
// their encodings hold) accepted and not yet stored (defaults 16384 and
// 64 MiB). Beyond them SendAsync blocks until its context ends, then fails
// with ErrBackpressure.
func WithSendBuffer(items, bytes int) Option {
	return func(c *config) error {
		if items < 1 || bytes < 1 {
			return fmt.Errorf("agentbus: send buffer %d messages, %d bytes must be positive", items, bytes)
		}
		c.bufferItems, c.bufferBytes = items, bytes
		return nil
	}
}

// WithSendTimeout bounds how long a batch is retried before its messages
// fail (default 30 s).
func WithSendTimeout(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return fmt.Errorf("agentbus: send timeout %v must be positive", d)
		}
		c.sendTimeout = d
		return nil
	}
}
