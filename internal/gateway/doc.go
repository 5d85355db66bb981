// Package gateway is agentd's A2A gateway: standard A2A endpoints over the
// bus, and HTTP agents joined to the bus as sidecars.
//
// For every agent in the registry (a2anats.Registry) the gateway serves
//
//	POST /a2a/<agentID>                                  JSON-RPC, A2A 1.0 (SSE for streams)
//	POST /a2a/<agentID>/v0.3                             JSON-RPC, A2A 0.3 (older clients)
//	     /a2a/<agentID>/rest/...                         HTTP+JSON, A2A 1.0
//	GET  /a2a/<agentID>/.well-known/agent-card.json      the agent's card
//	GET  /a2a/                                           the registered agent IDs
//	gRPC lf.a2a.v1.A2AService (GRPCServer)                A2A 1.0 gRPC, the agent named by the tenant
//
// built on the A2A Go SDK's own JSON-RPC handlers: each call is carried
// over the bus (a2anats) to the agent's consumer and back. The card is the
// registered one with its interfaces pointing at this gateway (JSON-RPC 1.0,
// HTTP+JSON, gRPC with the agent's ID as tenant, JSON-RPC 0.3) and at the
// bus binding. A tenant of the caller's own reaches the agent: in the
// JSON-RPC params, before the method's path over HTTP+JSON, after
// "<agent>/" in the gRPC tenant.
//
// Security: with a bearer token the call endpoints want
// "Authorization: Bearer <token>" (over gRPC, in the "authorization"
// metadata); with client certificates (mutual TLS, set up on the HTTP
// server and given to GRPCServer) they want a verified one; with neither
// they answer loopback clients only. Cards are public, as A2A discovery expects;
// with a token the card names the bearer scheme and is written in the A2A
// 1.0 form only (the SDK's 0.3 form of security schemes is one 1.0 clients
// cannot read), without one it is written in both forms.
//
// Sidecars (ServeSidecar) are the other way round: an agent that speaks
// A2A over HTTP, with any SDK, is served on the bus by forwarding each call
// to its endpoint with the SDK's JSON-RPC client.
//
// All exported functions and methods are safe for concurrent use.
package gateway
