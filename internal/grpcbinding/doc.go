// Package grpcbinding serves A2A 1.0's gRPC binding (the lf.a2a.v1.A2AService
// of the specification's a2a.proto) over an a2asrv.RequestHandler: the same
// handler the A2A Go SDK's JSON-RPC and HTTP+JSON bindings serve. The SDK
// (a2a-go v2.2.0) has a gRPC client for A2A 1.0 but serves gRPC for 0.3
// only; this package fills that gap with the SDK's own protobuf types and
// conversions (a2apb/v1, a2apb/v1/pbconv).
//
// One Service may serve many agents: a Resolver picks the handler of each
// call from the request's tenant, as the specification's AgentInterface
// tenant intends for one endpoint in front of several agents.
//
//	svc := grpcbinding.New(grpcbinding.Single(handler))
//	s := grpc.NewServer()
//	svc.Register(s)
//	err := s.Serve(listener)
//
// Errors are answered as the specification's gRPC error table says: the
// status code of each A2A error, with a google.rpc.ErrorInfo detail (domain
// "a2a-protocol.org", the error's reason). Service parameters (A2A-Version,
// A2A-Extensions) are read from the call's metadata.
//
// All exported functions and methods are safe for concurrent use.
package grpcbinding
