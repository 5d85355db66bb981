package agentd

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"

	"github.com/a2abus/a2abus/agentbus"
	"github.com/a2abus/a2abus/agentbus/a2anats"
	"github.com/a2abus/a2abus/internal/gateway"
	"github.com/nats-io/nats.go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
)

// startGateway starts the A2A gateway on nc; the HTTP server routes
// gateway.Prefix to it once it is up.
func (d *Daemon) startGateway(ctx context.Context, nc *nats.Conn) error {
	mode, err := d.cfg.requestMode()
	if err != nil {
		return err
	}
	bus, err := agentbus.Connect(ctx, d.busOptions(nc, agentbus.WithName("agentd-gateway"))...)
	if err != nil {
		return err
	}
	d.gwBus = bus
	reg, err := a2anats.NewRegistry(ctx, bus)
	if err != nil {
		return err
	}
	gw, err := gateway.New(bus, reg, gateway.Config{
		Token:            d.cfg.HTTPToken,
		ClientCerts:      d.cfg.HTTPClientCA != "",
		Mode:             mode,
		NATSServer:       d.natsHost(),
		Logger:           d.log.With("component", "gateway"),
		Registerer:       d.reg,
		PublicURL:        d.cfg.HTTPPublicURL,
		GRPC:             d.GRPCAddr(),
		GRPCDefaultAgent: d.cfg.GRPCDefaultAgent,
	})
	if err != nil {
		return err
	}
	d.gw.Store(gw)
	if d.grpcLn != nil {
		var creds credentials.TransportCredentials
		if d.cfg.HTTPTLSCert != "" {
			// HTTP's certificate and client CA. (Not whether d.hs has a
			// TLSConfig: net/http gives every server one for HTTP/2.)
			tc, err := d.httpTLS()
			if err != nil {
				return err
			}
			creds = credentials.NewTLS(tc)
		}
		d.gs = gw.GRPCServer(creds)
		go func() {
			if err := d.gs.Serve(d.grpcLn); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
				d.fail(fmt.Errorf("--grpc %s: %w", d.GRPCAddr(), err))
			}
		}()
	}
	if d.cfg.HTTPToken == "" && d.cfg.HTTPClientCA == "" && !loopbackAddr(d.cfg.HTTP) {
		d.log.Warn("the A2A gateway answers loopback clients only: set --http-token or --http-client-ca to let others call it",
			"http", d.cfg.HTTP)
	}
	return nil
}

// serveA2A routes a request to the gateway, or says it is not up.
func (d *Daemon) serveA2A(w http.ResponseWriter, r *http.Request) {
	gw := d.gw.Load()
	if gw == nil {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		_ = json.NewEncoder(w).Encode(map[string]any{"jsonrpc": "2.0", "id": nil,
			"error": map[string]any{"code": -32603, "message": "agentd is starting or stopping: the A2A gateway is not up"}})
		return
	}
	gw.ServeHTTP(w, r)
}

// loopbackAddr reports whether the host of addr (host:port) is a loopback
// address or localhost.
func loopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// natsHost is the host:port of the NATS server as clients know it, for
// the bus interface of agent cards.
func (d *Daemon) natsHost() string {
	if u, err := url.Parse(d.NATSURL()); err == nil && u.Host != "" {
		return u.Host
	}
	return ""
}

// httpTLS is the TLS configuration of the HTTP server: its certificate,
// and when --http-client-ca is set, client certificates verified against
// it when given (the gateway wants one; /metrics and the health checks do
// not).
func (d *Daemon) httpTLS() (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(d.cfg.HTTPTLSCert, d.cfg.HTTPTLSKey)
	if err != nil {
		return nil, fmt.Errorf("--http-tls-cert %s, --http-tls-key %s: %w", d.cfg.HTTPTLSCert, d.cfg.HTTPTLSKey, err)
	}
	tc := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if d.cfg.HTTPClientCA != "" {
		pem, err := os.ReadFile(d.cfg.HTTPClientCA)
		if err != nil {
			return nil, fmt.Errorf("--http-client-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--http-client-ca %s: no PEM certificate in it", d.cfg.HTTPClientCA)
		}
		tc.ClientCAs = pool
		tc.ClientAuth = tls.VerifyClientCertIfGiven
	}
	return tc, nil
}
