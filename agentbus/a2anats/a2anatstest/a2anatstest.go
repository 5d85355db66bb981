// Package a2anatstest runs A2A agents on a real bus for tests: buses on an
// embedded server, and A2A SDK executors served over the bus with the KV
// task store and registered, until the test ends.
//
// Its functions are safe for concurrent use by parallel tests.
package a2anatstest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/a2abus/a2abus/agentbus"
	"github.com/a2abus/a2abus/agentbus/a2anats"
	"github.com/a2abus/a2abus/embedded"
	"github.com/a2abus/a2abus/embedded/embeddedtest"
	"github.com/a2abus/a2abus/internal/demoagent"
	"github.com/a2abus/a2abus/placement"
	"github.com/a2aproject/a2a-go/v2/a2a"
	"github.com/a2aproject/a2a-go/v2/a2aclient"
	"github.com/a2aproject/a2a-go/v2/a2asrv"
	"github.com/cespare/xxhash/v2"
	"github.com/nats-io/nats.go/jetstream"
)

// Partitions is the partition count of the pools Serve declares: few, so
// that a member pulls them all quickly.
const Partitions = 8

// ConnectBus connects a bus to srv in-process, provisioning the streams;
// it is closed when the test ends.
func ConnectBus(t testing.TB, srv *embedded.Server, opts ...agentbus.Option) *agentbus.Bus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	bus, err := agentbus.Connect(ctx, append([]agentbus.Option{
		agentbus.WithInProcessServer(srv.NATSServer()),
		agentbus.WithEnsureStreams(agentbus.StreamConfig{}),
		agentbus.WithLogger(embeddedtest.Logger(t)),
	}, opts...)...)
	if err != nil {
		t.Fatalf("connect bus: %v", err)
	}
	t.Cleanup(func() { _ = bus.Close(context.Background()) })
	return bus
}

// HostOption configures Host.
type HostOption func(*hostOptions)

type hostOptions struct {
	push *a2anats.PushSender
}

// WithPush serves the agents with push notifications: their configs in
// KV (TaskStore.PushConfigs), sent by s (s.For each agent); their cards
// say so.
func WithPush(s *a2anats.PushSender) HostOption {
	return func(o *hostOptions) { o.push = s }
}

// Host serves the executors, keyed by agent ID, on a bus of their own:
// each with its KV task store, its card registered. It returns the
// registry.
func Host(t testing.TB, srv *embedded.Server, agents map[string]a2asrv.AgentExecutor, opts ...HostOption) *a2anats.Registry {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var o hostOptions
	for _, opt := range opts {
		opt(&o)
	}
	bus := ConnectBus(t, srv)
	reg, err := a2anats.NewRegistry(ctx, bus)
	if err != nil {
		t.Fatal(err)
	}
	var (
		servers []*a2anats.Server
		ids     []string
	)
	for id, exec := range agents {
		ids = append(ids, id)
		tasks, err := a2anats.NewTaskStore(ctx, bus, id, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		hopts := []a2asrv.RequestHandlerOption{a2asrv.WithTaskStore(tasks)}
		card := Card(id)
		if o.push != nil {
			hopts = append(hopts, a2asrv.WithPushNotifications(tasks.PushConfigs(), o.push.For(id)))
			card.Capabilities.PushNotifications = true
		}
		s, err := a2anats.Handle(bus, id, a2asrv.NewHandler(exec, hopts...), a2anats.ServerLogger(embeddedtest.Logger(t)))
		if err != nil {
			t.Fatal(err)
		}
		servers = append(servers, s)
		if err := reg.Register(ctx, id, card, ""); err != nil {
			t.Fatal(err)
		}
	}
	slices.Sort(ids)
	Serve(t, bus, PoolName(ids...), servers...)
	return reg
}

// Card is the card Host registers for agentID.
func Card(agentID string) *a2a.AgentCard {
	return &a2a.AgentCard{
		Name: agentID, Description: "test agent " + agentID, Version: "1",
		DefaultInputModes: []string{"text/plain"}, DefaultOutputModes: []string{"text/plain"},
		Capabilities: a2a.AgentCapabilities{Streaming: true},
	}
}

// PoolName is the pool Host serves agents in: one per set of agents, so
// that tests sharing a server do not share pools.
func PoolName(agents ...string) string {
	name := "test-" + strings.Join(agents, "-")
	if len(name) > placement.MaxPoolNameLen {
		name = fmt.Sprintf("test-%016x", xxhash.Sum64String(name))
	}
	return name
}

// Serve runs bus.Serve in pool, with Partitions partitions, until the test
// ends, then closes the servers. It returns once the pool and the bus's
// agents are declared in the registry (so that sends to them are routed)
// and a member pulls each of the pool's partitions (so that direct calls
// find a consumer), and fails the test if Serve fails first.
func Serve(t testing.TB, bus *agentbus.Bus, pool string, servers ...*a2anats.Server) {
	t.Helper()
	ServePartitions(t, bus, pool, Partitions, servers...)
}

// ServePartitions is Serve with a pool of partitions partitions.
func ServePartitions(t testing.TB, bus *agentbus.Bus, pool string, partitions int, servers ...*a2anats.Server) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- bus.Serve(ctx, agentbus.ServePool(pool), agentbus.ServePartitions(partitions), agentbus.ServeMemberTTL(2*time.Second))
	}()
	stopped := false // Serve returned before its pool was declared and pulled
	t.Cleanup(func() {
		cancel()
		if !stopped {
			if err := <-done; err != nil {
				t.Errorf("Serve: %v", err)
			}
		}
		for _, s := range servers {
			cctx, ccancel := context.WithTimeout(context.Background(), 5*time.Second)
			if err := s.Close(cctx); err != nil {
				t.Errorf("close A2A server: %v", err)
			}
			ccancel()
		}
	})
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	defer wcancel()
	js, err := jetstream.New(bus.Conn())
	if err != nil {
		t.Fatal(err)
	}
	for {
		if declared(wctx, bus, pool) && pulled(wctx, js, pool, partitions) {
			return
		}
		select {
		case err := <-done:
			stopped = true
			t.Fatalf("Serve in pool %s stopped before its pool was declared and pulled: %v", pool, err)
		case <-wctx.Done():
			t.Fatalf("pool %s not declared and pulled within 30s", pool)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// pulled reports whether a member pulls each partition of pool: its
// consumer has a pull request waiting.
func pulled(ctx context.Context, js jetstream.JetStream, pool string, partitions int) bool {
	p, err := placement.NewPool(pool, partitions, placement.OrderConversation)
	if err != nil {
		return false
	}
	for n := range partitions {
		name, err := p.ConsumerName(n)
		if err != nil {
			return false
		}
		c, err := js.Consumer(ctx, agentbus.StreamName, name)
		if err != nil || c.CachedInfo().NumWaiting == 0 {
			return false
		}
	}
	return true
}

// declared reports whether the registry holds pool with agents.
func declared(ctx context.Context, bus *agentbus.Bus, pool string) bool {
	pools, err := bus.Pools(ctx)
	if err != nil {
		return false
	}
	for c, agents := range pools {
		if c.Name == pool && len(agents) > 0 {
			return true
		}
	}
	return false
}

// WorkerJob streams a job to a demo worker agent (demoagent.Worker)
// through c, checks that its events come in order (the task, working, the
// artifact, completed) and that GetTask reads the task completed, and
// returns the task's ID.
func WorkerJob(t testing.TB, ctx context.Context, c *a2aclient.Client) a2a.TaskID {
	t.Helper()
	var events []string
	var taskID a2a.TaskID
	for ev, err := range c.SendStreamingMessage(ctx, &a2a.SendMessageRequest{Message: a2a.NewMessage(a2a.MessageRoleUser, a2a.NewTextPart("job"))}) {
		if err != nil {
			t.Fatalf("stream: %v", err)
		}
		switch e := ev.(type) {
		case *a2a.Task:
			events = append(events, "task:"+string(e.Status.State))
			taskID = e.ID
		case *a2a.TaskStatusUpdateEvent:
			events = append(events, "status:"+string(e.Status.State))
		case *a2a.TaskArtifactUpdateEvent:
			events = append(events, "artifact:"+demoagent.Text(&a2a.Message{Parts: e.Artifact.Parts}))
		default:
			events = append(events, fmt.Sprintf("%T", ev))
		}
	}
	want := "task:TASK_STATE_SUBMITTED status:TASK_STATE_WORKING artifact:done: job status:TASK_STATE_COMPLETED"
	if got := strings.Join(events, " "); got != want {
		t.Fatalf("stream events %q, want %q", got, want)
	}
	task, err := c.GetTask(ctx, &a2a.GetTaskRequest{ID: taskID})
	if err != nil || task.Status.State != a2a.TaskStateCompleted {
		t.Fatalf("GetTask: %+v, %v", task, err)
	}
	return taskID
}
