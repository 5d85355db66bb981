package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/a2abus/a2abus/internal/grpcbinding"
	"github.com/a2aproject/a2a-go/v2/a2a"
	"github.com/a2aproject/a2a-go/v2/a2asrv"
	otelcodes "go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// GRPCServer returns a gRPC server of A2A 1.0's gRPC binding for every
// agent in the registry, with creds (nil: plaintext), behind the same
// door as the HTTP bindings: a bearer token in the "authorization"
// metadata, a verified client certificate, or a loopback peer. Each call
// goes to the agent its request's tenant names ("<agent>", or
// "<agent>/<tenant>" to pass a tenant of its own on to the agent), or
// to Config.GRPCDefaultAgent when it names none; the cards give clients
// the tenant to send. Calls end with the gateway's Close, as HTTP ones do.
func (g *Gateway) GRPCServer(creds credentials.TransportCredentials, opts ...grpc.ServerOption) *grpc.Server {
	if creds != nil {
		opts = append(opts, grpc.Creds(creds))
	}
	opts = append(opts,
		grpc.MaxRecvMsgSize(MaxBodySize),
		grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			start := time.Now()
			res, err := g.grpcCall(ctx, info.FullMethod, func(ctx context.Context) (any, error) { return h(ctx, req) })
			g.m.observeGRPC(start, err)
			return res, err
		}),
		grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			start := time.Now()
			_, err := g.grpcCall(ss.Context(), info.FullMethod, func(ctx context.Context) (any, error) {
				return nil, h(srv, &boundStream{ServerStream: ss, ctx: ctx})
			})
			g.m.observeGRPC(start, err)
			return err
		}),
	)
	s := grpc.NewServer(opts...)
	grpcbinding.New(g.resolveGRPC).Register(s)
	return s
}

// grpcCall lets a call of method in (admit) and runs it, in its caller's
// trace (the metadata's traceparent, tracestate, baggage). The agent's
// handler ends its calls when the gateway closes (see forward); such a
// call's error says so here, with a code that tells a client to try again
// elsewhere.
func (g *Gateway) grpcCall(ctx context.Context, method string, call func(context.Context) (any, error)) (res any, err error) {
	var authz, remote string
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if v := md.Get("authorization"); len(v) > 0 {
			authz = v[0]
		}
		ctx = traceContext(ctx, metadataCarrier(md))
	}
	service, name, _ := strings.Cut(strings.TrimPrefix(method, "/"), "/")
	ctx, span := g.startServerSpan(ctx, strings.TrimPrefix(method, "/"), "", trace.WithAttributes(
		semconv.RPCSystemNameGRPC, semconv.RPCMethod(service+"/"+name)))
	if span != nil {
		defer func() {
			code := status.Code(err)
			span.SetAttributes(semconv.RPCResponseStatusCode(code.String()))
			if err != nil {
				span.SetStatus(otelcodes.Error, err.Error())
			}
			span.End()
		}()
	}
	var cs *tls.ConnectionState
	if p, ok := peer.FromContext(ctx); ok {
		if p.Addr != nil {
			remote = p.Addr.String()
		}
		if info, ok := p.AuthInfo.(credentials.TLSInfo); ok {
			cs = &info.State
		}
	}
	if err := g.admit(authz, cs, remote); err != nil {
		return nil, grpcbinding.Status(err)
	}
	res, err = call(ctx)
	if err != nil && g.closing.Err() != nil {
		// A client may try again: another agentd serves the same agents.
		err = status.Error(codes.Unavailable, ErrClosed.Error())
	}
	return res, err
}

// metadataCarrier carries a trace context in gRPC metadata, whose keys
// are lowercase.
type metadataCarrier metadata.MD

func (c metadataCarrier) Get(key string) string {
	if v := metadata.MD(c).Get(key); len(v) > 0 {
		return v[0]
	}
	return ""
}

func (c metadataCarrier) Set(key, value string) { metadata.MD(c).Set(key, value) }

func (c metadataCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}

// boundStream is a server stream with the context of its call.
type boundStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *boundStream) Context() context.Context { return s.ctx }

// resolveGRPC finds the agent of a gRPC call by its tenant.
func (g *Gateway) resolveGRPC(ctx context.Context, tenant string) (a2asrv.RequestHandler, string, error) {
	id, rest, _ := strings.Cut(tenant, "/")
	if id == "" {
		if g.cfg.GRPCDefaultAgent == "" {
			return nil, "", a2a.NewError(a2a.ErrInvalidRequest,
				"no agent: this gRPC endpoint serves every agent on the bus; set the request's tenant to the agent's ID (its card's gRPC interface gives it)")
		}
		id = g.cfg.GRPCDefaultAgent
	}
	ag, err := g.agentFor(ctx, id)
	switch {
	case errors.Is(err, errNoAgent):
		// Not NotFound: a client reads that as TaskNotFound.
		return nil, "", fmt.Errorf("%w: tenant %q: %v", a2a.ErrInvalidParams, tenant, err)
	case errors.Is(err, a2a.ErrInternalError):
		return nil, "", err
	case err != nil:
		return nil, "", status.Error(codes.Unavailable, err.Error())
	}
	return ag.call, rest, nil
}

// grpcAddr is the host:port of the gateway's gRPC listener as a client
// that reached the card at base (scheme://host[:port]) would dial it, or
// "" without one.
func (g *Gateway) grpcAddr(base string) string {
	if g.cfg.GRPC == "" {
		return ""
	}
	host, port, err := net.SplitHostPort(g.cfg.GRPC)
	if err != nil {
		return ""
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		if u, err := url.Parse(base); err == nil && u.Hostname() != "" {
			host = u.Hostname()
		}
	}
	return net.JoinHostPort(host, port)
}
