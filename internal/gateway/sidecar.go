package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"

	"github.com/a2abus/a2abus/agentbus"
	"github.com/a2abus/a2abus/agentbus/a2anats"
	"github.com/a2abus/a2abus/placement"
	"github.com/a2aproject/a2a-go/v2/a2a"
	"github.com/a2aproject/a2a-go/v2/a2aclient"
	"github.com/a2aproject/a2a-go/v2/a2aclient/agentcard"
	"github.com/a2aproject/a2a-go/v2/a2asrv"
)

// Sidecar is an agent that speaks A2A JSON-RPC over HTTP, joined to the
// bus: its calls arrive over the bus and are made to its endpoint.
type Sidecar struct {
	// ID is the agent's ID on the bus.
	ID string
	// URL is the agent's A2A JSON-RPC endpoint.
	URL string
}

// ParseSidecars parses "id=url,id=url" (agentd's --sidecars) into
// sidecars, checking each ID and URL.
func ParseSidecars(s string) ([]Sidecar, error) {
	var out []Sidecar
	seen := map[string]bool{}
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		id, raw, ok := strings.Cut(item, "=")
		if !ok {
			return nil, fmt.Errorf("sidecar %q: want AGENT=URL", item)
		}
		if err := placement.ValidateAgentID(id); err != nil {
			return nil, fmt.Errorf("sidecar %q: %w", item, err)
		}
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("sidecar %q: %q is not an http(s) URL", item, raw)
		}
		if seen[id] {
			return nil, fmt.Errorf("sidecar %q: agent %s is given twice", item, id)
		}
		seen[id] = true
		out = append(out, Sidecar{ID: id, URL: raw})
	}
	return out, nil
}

// ServeSidecar serves sc on bus: each call is made to sc.URL with the A2A
// SDK's JSON-RPC client (hc, or http.DefaultClient when nil), its answers
// and events go back over the bus. It registers the agent's card in reg:
// the one the agent serves at its well-known path (first under the
// endpoint's URL, then at its host's root), or, when it serves none yet, a
// card naming the endpoint, with a warning. Close the returned Server after
// the bus's Serve ends. opts add to the Server's options (its logger is log).
// Each call to the agent is traced with the bus's TracerProvider and
// carries its trace context in its HTTP headers.
func ServeSidecar(ctx context.Context, bus *agentbus.Bus, reg *a2anats.Registry, sc Sidecar, hc *http.Client, log *slog.Logger, opts ...a2anats.ServerOption) (*a2anats.Server, error) {
	if hc == nil {
		hc = http.DefaultClient
	}
	if log == nil {
		log = slog.Default()
	}
	card, err := resolveCard(ctx, sc.URL, hc)
	if err != nil {
		log.Warn("sidecar agent serves no agent card; registering a minimal one", "agent", sc.ID, "url", sc.URL, "err", err)
		card = &a2a.AgentCard{
			Name: sc.ID, Description: "A2A agent at " + sc.URL, Version: "unknown",
			DefaultInputModes: []string{"text/plain"}, DefaultOutputModes: []string{"text/plain"},
		}
	}
	t := a2aclient.NewJSONRPCTransport(sc.URL, tracedClient(hc, bus.TracerProvider()))
	var h a2asrv.RequestHandler = forward{t: t} // its calls end with the Server's
	srv, err := a2anats.Handle(bus, sc.ID, h, append([]a2anats.ServerOption{a2anats.ServerLogger(log)}, opts...)...)
	if err != nil {
		return nil, err
	}
	if err := reg.Register(ctx, sc.ID, card, ""); err != nil {
		return nil, err
	}
	return srv, nil
}

// resolveCard fetches the card of the agent at endpoint.
func resolveCard(ctx context.Context, endpoint string, hc *http.Client) (*a2a.AgentCard, error) {
	r := agentcard.NewResolver(hc)
	card, err := r.Resolve(ctx, strings.TrimSuffix(endpoint, "/"))
	if err == nil {
		return card, nil
	}
	u, perr := url.Parse(endpoint)
	if perr != nil {
		return nil, perr
	}
	root, err2 := r.Resolve(ctx, u.Scheme+"://"+u.Host)
	if err2 != nil {
		return nil, errors.Join(err, err2)
	}
	return root, nil
}
