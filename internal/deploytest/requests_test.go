//go:build deploy

package deploytest

import (
	"context"
	"fmt"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/a2abus/a2abus/agentbus"
	"github.com/a2abus/a2abus/codec"
	"github.com/nats-io/nuid"
)

// The cross-server request/reply runs: durable requests to echo from a
// requester on one server, while echo's partitions are consumed by the
// three agentds, each on its own server, so that about two requests in
// three are handled on another server than the requester's and their
// replies cross servers. Each request must come back with its text.

// requestTimeout bounds one request, as agentd send's default does.
const requestTimeout = 30 * time.Second

// echoRequest is a durable request to echo with text, in a conversation of
// its own out of 256, so that the requests spread over echo's partitions.
func echoRequest(i int, text string) *codec.Envelope {
	id := nuid.Next()
	return &codec.Envelope{ID: id, From: "deploytest", To: "echo", Kind: "message",
		Message: &codec.Message{MessageID: id, Role: codec.RoleUser, ContextID: "conv-" + strconv.Itoa(i%256),
			Parts: []codec.Part{codec.TextPart(text)}}}
}

// runRequests makes n requests, parallel at a time, with do, which returns
// the reply's text; it logs the figures and fails the test for every
// request lost or answered wrong.
func (d *deployment) runRequests(t *testing.T, what string, n, parallel int, do func(ctx context.Context, i int, text string) (string, error)) {
	ctx := t.Context()
	var (
		next     atomic.Int64
		mu       sync.Mutex
		failures []string
		lat      []time.Duration
		wg       sync.WaitGroup
	)
	start := time.Now()
	for range parallel {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				text := fmt.Sprintf("request %d %s", i, nuid.Next())
				rctx, cancel := context.WithTimeout(ctx, requestTimeout+5*time.Second)
				t0 := time.Now()
				got, err := do(rctx, i, text)
				took := time.Since(t0)
				cancel()
				mu.Lock()
				switch {
				case err != nil:
					failures = append(failures, fmt.Sprintf("request %d: %v after %v", i, err, took.Round(time.Millisecond)))
				case got != text:
					failures = append(failures, fmt.Sprintf("request %d: reply %q, want %q", i, got, text))
				default:
					lat = append(lat, took)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	slices.Sort(lat)
	pct := func(p float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[min(len(lat)-1, int(p*float64(len(lat))))].Round(100 * time.Microsecond)
	}
	var where []string
	for _, a := range d.agentds {
		where = append(where, fmt.Sprintf("%s on %s runs %s consumers", a.name, a.server.name, a.metric(ctx, "a2abus_agentd_consumers{")))
	}
	t.Logf("%s (%s): %d of %d durable requests answered in %v (%.0f/s, %d at a time), p50 %v, p99 %v, max %v",
		what, strings.Join(where, ", "), len(lat), n, elapsed.Round(time.Millisecond), float64(len(lat))/elapsed.Seconds(), parallel,
		pct(0.5), pct(0.99), pct(1))
	if len(failures) > 0 {
		t.Errorf("%d of %d requests lost or answered wrong; the first: %s", len(failures), n, strings.Join(failures[:min(10, len(failures))], "; "))
	}
}

// checkRequestsOneClient: one long-lived bus client on nats-1.
func (d *deployment) checkRequestsOneClient(t *testing.T) {
	on := d.servers[0]
	bus, err := agentbus.Connect(t.Context(), agentbus.WithURL(on.url()), agentbus.WithName("deploytest-requester"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = bus.Close(context.Background()) }()
	d.runRequests(t, "one bus client on "+on.name, *requests, 16, func(ctx context.Context, i int, text string) (string, error) {
		ctx, cancel := context.WithTimeout(ctx, requestTimeout)
		defer cancel()
		reply, err := bus.Request(ctx, echoRequest(i, text), agentbus.Durable)
		if err != nil {
			return "", err
		}
		return textOf(reply), nil
	})
}

// checkRequestsFreshClients: a new bus client on nats-2 for every request,
// whose reply subscription is made just before its request, as with each
// `agentd send --wait`.
func (d *deployment) checkRequestsFreshClients(t *testing.T) {
	on := d.servers[1]
	d.runRequests(t, "a new bus client per request on "+on.name, *requests, 16, func(ctx context.Context, i int, text string) (string, error) {
		ctx, cancel := context.WithTimeout(ctx, requestTimeout)
		defer cancel()
		bus, err := agentbus.Connect(ctx, agentbus.WithURL(on.url()), agentbus.WithName("deploytest-requester-"+strconv.Itoa(i)))
		if err != nil {
			return "", err
		}
		defer func() { _ = bus.Close(context.Background()) }()
		reply, err := bus.Request(ctx, echoRequest(i, text), agentbus.Durable)
		if err != nil {
			return "", err
		}
		return textOf(reply), nil
	})
}

// checkRequestsCLI: `agentd send --wait --nats <nats-3>` processes.
func (d *deployment) checkRequestsCLI(t *testing.T) {
	on := d.servers[2]
	d.runRequests(t, "agentd send --wait --nats "+on.name, *cliRequests, 4, func(ctx context.Context, _ int, text string) (string, error) {
		out, err := exec.CommandContext(ctx, d.bin.agentd, "send", "--nats", on.url(), "--to", "echo", "--wait",
			"--timeout", requestTimeout.String(), text).CombinedOutput()
		if err != nil {
			return "", fmt.Errorf("%v: %s", err, strings.TrimSpace(string(out)))
		}
		return strings.TrimSpace(string(out)), nil
	})
}

func textOf(env *codec.Envelope) string {
	if env == nil || env.Message == nil {
		return ""
	}
	return env.Message.Text()
}
