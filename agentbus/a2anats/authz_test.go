package a2anats_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/a2abus/a2abus/agentbus"
	"github.com/a2abus/a2abus/agentbus/a2anats"
	"github.com/a2abus/a2abus/agentbus/a2anats/a2anatstest"
	"github.com/a2abus/a2abus/embedded"
	"github.com/a2abus/a2abus/embedded/embeddedtest"
	"github.com/a2abus/a2abus/internal/demoagent"
	"github.com/a2aproject/a2a-go/v2/a2a"
	"github.com/a2aproject/a2a-go/v2/a2asrv"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// refusals records a connection's permission violations.
type refusals struct {
	mu   sync.Mutex
	errs []string
}

func (r *refusals) handler(_ *nats.Conn, _ *nats.Subscription, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, err.Error())
}

func (r *refusals) list() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.errs...)
}

func (r *refusals) has(subject string) bool {
	for _, e := range r.list() {
		if strings.Contains(e, "Permissions Violation") && strings.Contains(e, subject) {
			return true
		}
	}
	return false
}

// TestAgentRoleA2A: an SDK agent connected with its own narrowed
// credentials (agentbus.AgentPermissions) opens the registry and its task
// store, registers its card, serves its own pool (named after it, as Serve
// names it by default) and keeps and lists its tasks and their push
// configs, refused nothing; it cannot write another agent's card nor
// create or read another agent's tasks or push configs.
func TestAgentRoleA2A(t *testing.T) {
	const id = "worker"
	p, err := agentbus.AgentPermissions(id, a2anatstest.Partitions)
	if err != nil {
		t.Fatal(err)
	}
	users := []*server.User{
		{Username: "admin", Password: "admin-secret"},
		{Username: id, Password: id + "-secret", Permissions: &server.Permissions{
			Publish:   &server.SubjectPermission{Allow: p.Publish},
			Subscribe: &server.SubjectPermission{Allow: p.Subscribe},
		}},
	}
	srv := embeddedtest.RunServer(t, embedded.WithServerOptions(func(o *server.Options) { o.Users = users }))
	ctx := testCtx(t, time.Minute)

	// agentd's part, with full rights: the streams and the buckets (the
	// members bucket with the member TTL a2anatstest.Serve uses).
	adminBus := a2anatstest.ConnectBus(t, srv, agentbus.WithUserPassword("admin", "admin-secret"))
	reg, err := a2anats.NewRegistry(ctx, adminBus)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a2anats.NewTaskStore(ctx, adminBus, "other", time.Hour); err != nil {
		t.Fatal(err)
	}
	for _, cfg := range []jetstream.KeyValueConfig{
		{Bucket: agentbus.PoolsBucket, History: 1},
		{Bucket: agentbus.MembersBucket, TTL: 2 * time.Second, History: 1},
	} {
		if _, err := adminBus.KeyValue(ctx, cfg); err != nil {
			t.Fatal(err)
		}
	}

	// The agent, with its own credentials only.
	var r refusals
	agentBus, err := agentbus.Connect(ctx,
		agentbus.WithInProcessServer(srv.NATSServer()),
		agentbus.WithUserPassword(id, id+"-secret"),
		agentbus.WithNATSOptions(nats.CustomInboxPrefix(agentbus.AgentInboxPrefix(id)), nats.ErrorHandler(r.handler)),
		agentbus.WithLogger(embeddedtest.Logger(t)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = agentBus.Close(context.Background()) })
	agentReg, err := a2anats.NewRegistry(ctx, agentBus)
	if err != nil {
		t.Fatalf("the agent opens the registry: %v", err)
	}
	if err := agentReg.Register(ctx, id, demoagent.Card(id, "narrowed"), ""); err != nil {
		t.Fatalf("the agent registers its card: %v", err)
	}
	tasks, err := a2anats.NewTaskStore(ctx, agentBus, id, time.Hour)
	if err != nil {
		t.Fatalf("the agent opens its task store: %v", err)
	}
	s, err := a2anats.Handle(agentBus, id, a2asrv.NewHandler(demoagent.Worker{}, a2asrv.WithTaskStore(tasks)))
	if err != nil {
		t.Fatal(err)
	}
	// Its own pool, named after it: the pool Serve picks for a process
	// with one agent. It returns once the pool is declared and pulled.
	a2anatstest.Serve(t, agentBus, id, s)
	members, err := adminBus.Members(ctx)
	if err != nil || len(members) != 1 || members[0].Pool != id {
		t.Fatalf("members %+v %v, want one in pool %s", members, err, id)
	}

	// A caller reaches it through the card it registered.
	c := client(t, adminBus, reg, id)
	res, err := c.SendMessage(ctx, text("narrow job"))
	if err != nil {
		t.Fatal(err)
	}
	task := res.(*a2a.Task)
	if got, err := c.GetTask(ctx, &a2a.GetTaskRequest{ID: task.ID}); err != nil || got.Status.State != a2a.TaskStateCompleted {
		t.Fatalf("GetTask: %+v, %v", got, err)
	}
	if list, err := c.ListTasks(ctx, &a2a.ListTasksRequest{}); err != nil || len(list.Tasks) != 1 {
		t.Fatalf("ListTasks: %+v, %v", list, err)
	}
	// Its tasks' push configs, beside them.
	push := tasks.PushConfigs()
	if _, err := push.Save(ctx, task.ID, &a2a.PushConfig{ID: "p", URL: "https://hooks.example/"}); err != nil {
		t.Fatalf("the agent saves a push config of its task: %v", err)
	}
	if got, err := push.List(ctx, task.ID); err != nil || len(got) != 1 {
		t.Fatalf("the agent lists its task's push configs: %+v, %v", got, err)
	}
	if err := push.Delete(ctx, task.ID, "p"); err != nil {
		t.Fatalf("the agent deletes a push config of its task: %v", err)
	}
	if got := r.list(); len(got) > 0 {
		t.Fatalf("the agent's role was refused: %v", got)
	}

	// What it must not do: each refused write waits for its ack until its
	// own short deadline.
	short := func() context.Context { return testCtx(t, 2*time.Second) }
	if err := agentReg.Register(short(), "other", demoagent.Card("other", "forged"), ""); err == nil {
		t.Error("the agent wrote another agent's card")
	}
	if _, err := reg.Card(ctx, "other"); !errors.Is(err, a2anats.ErrUnknownAgent) {
		t.Errorf("a forged card for another agent is in the registry: %v", err)
	}
	otherTasks, err := a2anats.NewTaskStore(ctx, agentBus, "other", time.Hour)
	if err != nil {
		t.Fatal(err) // opening is allowed: the bucket is shared
	}
	if _, err := otherTasks.Create(short(), &a2a.Task{ID: a2a.NewTaskID(), ContextID: "c"}); err == nil {
		t.Error("the agent created a task under another agent's keys")
	}
	if _, err := otherTasks.Get(short(), a2a.NewTaskID()); err == nil {
		t.Error("the agent read another agent's task keys")
	}
	if _, err := otherTasks.PushConfigs().List(short(), a2a.NewTaskID()); err == nil {
		t.Error("the agent read another agent's push config keys")
	}
	for _, subject := range []string{
		"$KV.a2abus_agents.other",
		"$KV.a2abus_tasks.other.",
		"$JS.API.DIRECT.GET.KV_a2abus_tasks.$KV.a2abus_tasks.other.", // the read, refused rather than not found
		"$JS.API.DIRECT.GET.KV_a2abus_tasks.$KV.a2abus_tasks.other.push.",
	} {
		if !r.has(subject) {
			t.Errorf("no permission violation on %s: %v", subject, r.list())
		}
	}
}
