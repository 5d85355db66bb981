package gateway_test

import (
	"context"
	"iter"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/a2abus/a2abus/agentbus/a2anats"
	"github.com/a2abus/a2abus/agentbus/a2anats/a2anatstest"
	"github.com/a2abus/a2abus/embedded/embeddedtest"
	"github.com/a2abus/a2abus/internal/demoagent"
	"github.com/a2abus/a2abus/internal/gateway"
	"github.com/a2aproject/a2a-go/v2/a2a"
	"github.com/a2aproject/a2a-go/v2/a2aclient"
	"github.com/a2aproject/a2a-go/v2/a2asrv"
)

// countingExec is the worker demo agent that counts its executions, so
// the test knows the calls reached the HTTP agent itself.
type countingExec struct {
	demoagent.Worker
	n *atomic.Int64
}

func (c countingExec) Execute(ctx context.Context, ec *a2asrv.ExecutorContext) iter.Seq2[a2a.Event, error] {
	c.n.Add(1)
	return c.Worker.Execute(ctx, ec)
}

// TestSidecarAgent: an agent served by the A2A SDK's own HTTP server,
// registered as a sidecar, is reached from another agent through the bus,
// with its card, its task store and its events.
func TestSidecarAgent(t *testing.T) {
	// The HTTP agent, as any team would run it with the SDK.
	var calls atomic.Int64
	handler := a2asrv.NewHandler(countingExec{demoagent.Worker{Delay: 10 * time.Millisecond}, &calls})
	card := demoagent.Card("planner", "an HTTP agent")
	mux := http.NewServeMux()
	mux.Handle("/rpc", a2asrv.NewJSONRPCHandler(handler))
	mux.Handle("/rpc"+a2asrv.WellKnownAgentCardPath, a2asrv.NewStaticAgentCardHandler(card))
	agentHTTP := httptest.NewServer(mux)
	t.Cleanup(agentHTTP.Close)
	card.SupportedInterfaces = []*a2a.AgentInterface{a2a.NewAgentInterface(agentHTTP.URL+"/rpc", a2a.TransportProtocolJSONRPC)}

	// agentd's side: the sidecar on a consumer bus.
	srv := embeddedtest.RunServer(t)
	ctx := testCtx(t, time.Minute)
	hostBus := a2anatstest.ConnectBus(t, srv)
	reg, err := a2anats.NewRegistry(ctx, hostBus)
	if err != nil {
		t.Fatal(err)
	}
	sc, err := gateway.ParseSidecars("planner=" + agentHTTP.URL + "/rpc")
	if err != nil {
		t.Fatal(err)
	}
	s, err := gateway.ServeSidecar(ctx, hostBus, reg, sc[0], nil, embeddedtest.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	a2anatstest.Serve(t, hostBus, a2anatstest.PoolName("planner"), s)

	// The registry has the agent's own card, pointing at the bus only.
	got, err := reg.Card(ctx, "planner")
	if err != nil {
		t.Fatal(err)
	}
	if got.Description != "an HTTP agent" || len(got.SupportedInterfaces) != 1 || got.SupportedInterfaces[0].ProtocolBinding != a2anats.ProtocolBinding {
		t.Fatalf("registered card %+v", got)
	}

	// Another agent calls it over the bus with the a2a-go client.
	callerBus := a2anatstest.ConnectBus(t, srv)
	c, err := a2aclient.NewFromCard(ctx, got, a2anats.WithTransport(callerBus))
	if err != nil {
		t.Fatal(err)
	}
	var events []string
	var taskID a2a.TaskID
	for ev, err := range c.SendStreamingMessage(ctx, text("plan")) {
		if err != nil {
			t.Fatalf("stream: %v", err)
		}
		switch e := ev.(type) {
		case *a2a.Task:
			taskID = e.ID
			events = append(events, "task")
		case *a2a.TaskStatusUpdateEvent:
			events = append(events, string(e.Status.State))
		case *a2a.TaskArtifactUpdateEvent:
			events = append(events, demoagent.Text(&a2a.Message{Parts: e.Artifact.Parts}))
		}
	}
	if got := strings.Join(events, ","); got != "task,TASK_STATE_WORKING,done: plan,TASK_STATE_COMPLETED" {
		t.Fatalf("events %s", got)
	}
	task, err := c.GetTask(ctx, &a2a.GetTaskRequest{ID: taskID})
	if err != nil || task.Status.State != a2a.TaskStateCompleted {
		t.Fatalf("GetTask: %+v, %v", task, err)
	}
	res, err := c.SendMessage(ctx, text("again"))
	if err != nil {
		t.Fatal(err)
	}
	if tk, ok := res.(*a2a.Task); !ok || tk.Status.State != a2a.TaskStateCompleted {
		t.Fatalf("SendMessage: %#v", res)
	}
	if n := calls.Load(); n != 2 {
		t.Fatalf("the HTTP agent ran %d times, want 2", n)
	}

	// And the gateway serves it to HTTP clients too.
	hs := startGateway(t, srv, gateway.Config{})
	viaGW, _ := sdkClient(t, hs, "planner")
	if _, err := viaGW.GetTask(ctx, &a2a.GetTaskRequest{ID: taskID}); err != nil {
		t.Fatalf("GetTask through the gateway: %v", err)
	}
}

func TestParseSidecars(t *testing.T) {
	for _, tc := range []struct {
		in, err string
		n       int
	}{
		{"a=http://h:1/rpc, b=https://x/y", "", 2},
		{"", "", 0},
		{"a", "want AGENT=URL", 0},
		{"a.b=http://h/", "agent", 0},
		{"a=ftp://h/", "not an http(s) URL", 0},
		{"a=http://h/,a=http://i/", "given twice", 0},
	} {
		got, err := gateway.ParseSidecars(tc.in)
		if tc.err == "" && (err != nil || len(got) != tc.n) || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("ParseSidecars(%q) = %v, %v; want %d sidecars or an error with %q", tc.in, got, err, tc.n, tc.err)
		}
	}
}
