package agentbus

import (
	"context"
	"crypto/tls"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// Connection defaults, from the seed's A2A_CONFIG where it has one.
const (
	DefaultConnectTimeout   = 30 * time.Second
	DefaultPingInterval     = 2 * time.Minute
	DefaultReconnectWait    = 250 * time.Millisecond
	DefaultMaxReconnectWait = 5 * time.Second
	DefaultReconnectBuffer  = 8 << 20
	DefaultSocketBuffer     = 64 << 10
)

// connConfig is how the bus dials NATS.
type connConfig struct {
	urls            string
	name            string
	conn            *nats.Conn // given by WithConn: used as is, not closed by the bus
	inProcess       nats.InProcessConnProvider
	poolSize        int
	connectTimeout  time.Duration
	pingInterval    time.Duration
	reconnectBuffer int
	socketBuffer    int
	tls             *tls.Config
	rootCAs         []string
	certFile        string
	keyFile         string
	credsFile       string
	nkeySeedFile    string
	token           string
	user, password  string
	extra           []nats.Option
}

// natsOptions turns the configuration into nats.go options.
// The connect timeout bounds every dial, the first and each reconnect's;
// it is not taken from Connect's context, whose deadline would otherwise
// shorten every later reconnect.
func (c *connConfig) natsOptions(hooks nats.Options) ([]nats.Option, error) {
	timeout := c.connectTimeout
	opts := []nats.Option{
		nats.Name(c.name),
		nats.Timeout(timeout),
		nats.PingInterval(c.pingInterval),
		nats.MaxPingsOutstanding(2),
		nats.MaxReconnects(-1),
		nats.CustomReconnectDelay(reconnectBackoff),
		nats.ReconnectBufSize(c.reconnectBuffer),
		nats.DisconnectErrHandler(hooks.DisconnectedErrCB),
		nats.ReconnectHandler(hooks.ReconnectedCB),
		nats.ErrorHandler(hooks.AsyncErrorCB),
	}
	if c.inProcess != nil {
		opts = append(opts, nats.InProcessServer(c.inProcess))
	} else {
		opts = append(opts, nats.SetCustomDialer(&dialer{timeout: timeout, buffer: c.socketBuffer}))
	}
	if c.tls != nil {
		opts = append(opts, nats.Secure(c.tls))
	}
	if len(c.rootCAs) > 0 {
		opts = append(opts, nats.RootCAs(c.rootCAs...))
	}
	if c.certFile != "" {
		opts = append(opts, nats.ClientCert(c.certFile, c.keyFile))
	}
	if c.credsFile != "" {
		opts = append(opts, nats.UserCredentials(c.credsFile))
	}
	if c.nkeySeedFile != "" {
		o, err := nats.NkeyOptionFromSeed(c.nkeySeedFile)
		if err != nil {
			return nil, fmt.Errorf("agentbus: nkey seed %s: %w", c.nkeySeedFile, err)
		}
		opts = append(opts, o)
	}
	if c.token != "" {
		opts = append(opts, nats.Token(c.token))
	}
	if c.user != "" {
		opts = append(opts, nats.UserInfo(c.user, c.password))
	}
	return append(opts, c.extra...), nil
}

// reconnectBackoff doubles the wait after each failed attempt over a whole
// server list, from DefaultReconnectWait up to DefaultMaxReconnectWait,
// with up to 20% jitter so that many clients do not reconnect in step.
func reconnectBackoff(attempts int) time.Duration {
	d := DefaultReconnectWait << min(attempts, 8)
	d = min(d, DefaultMaxReconnectWait)
	return d - time.Duration(jitter(int64(d)/5))
}

// dialer dials TCP with Nagle off (small A2A messages must not wait for
// an ACK) and fixed socket buffers.
type dialer struct {
	timeout time.Duration
	buffer  int
}

func (d *dialer) Dial(network, address string) (net.Conn, error) {
	c, err := (&net.Dialer{Timeout: d.timeout, KeepAlive: 30 * time.Second}).Dial(network, address)
	if err != nil {
		return nil, err
	}
	if tc, ok := c.(*net.TCPConn); ok {
		// Errors here only leave the kernel defaults in place.
		_ = tc.SetNoDelay(true)
		if d.buffer > 0 {
			_ = tc.SetReadBuffer(d.buffer)
			_ = tc.SetWriteBuffer(d.buffer)
		}
	}
	return c, nil
}

func jitter(n int64) int64 {
	if n <= 0 {
		return 0
	}
	return rand.Int64N(n)
}

// Drain drains nc (its subscriptions finish what they hold, its publishes
// are flushed) and waits until it is closed. When ctx ends first, nc is
// closed at once and ctx's error returned. A closed nc is left as it is.
// Drain replaces nc's closed handler.
func Drain(ctx context.Context, nc *nats.Conn) error {
	if nc.IsClosed() {
		return nil
	}
	closed := make(chan struct{})
	var once sync.Once
	nc.SetClosedHandler(func(*nats.Conn) { once.Do(func() { close(closed) }) })
	if nc.IsClosed() { // closed before the handler was set
		once.Do(func() { close(closed) })
	} else if err := nc.Drain(); err != nil {
		nc.Close() // runs the closed handler too
	}
	select {
	case <-closed:
		return nil
	case <-ctx.Done():
		nc.Close()
		return fmt.Errorf("agentbus: drain: %w", ctx.Err())
	}
}
