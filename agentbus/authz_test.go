package agentbus_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/a2abus/a2abus/agentbus"
	"github.com/a2abus/a2abus/codec"
	"github.com/a2abus/a2abus/embedded"
	"github.com/a2abus/a2abus/embedded/embeddedtest"
	"github.com/a2abus/a2abus/placement"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// violations collects a connection's permission violations.
type violations struct {
	mu   sync.Mutex
	errs []string
}

func (v *violations) handler(_ *nats.Conn, _ *nats.Subscription, err error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.errs = append(v.errs, err.Error())
}

func (v *violations) has(subject string) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, e := range v.errs {
		if strings.Contains(e, "Permissions Violation") && strings.Contains(e, subject) {
			return true
		}
	}
	return false
}

// agentPartitions is the partition count of the agents' own pools in the
// permission tests: AgentPermissions lists each partition's consumer.
const agentPartitions = 8

// TestAgentPermissions runs two agents with their own credentials on a real
// server whose authorization is AgentPermissions (agentd, with every right,
// provisions the streams and the registry and members buckets). Each
// agent serves its own agent in its default pool, named after it, sends to
// and asks the other (durable and direct) and is refused nothing on the
// way; neither can read the other's messages (by the other pool's
// consumers, by sequence, over core NATS), write the other's registry keys
// or member keys, or declare another agent into its own pool.
func TestAgentPermissions(t *testing.T) {
	a, b := "alice", "bob"
	users := []*server.User{{Username: "agentd", Password: "agentd-secret"}} // agentd's role: everything
	for _, id := range []string{a, b} {
		p, err := agentbus.AgentPermissions(id, agentPartitions)
		if err != nil {
			t.Fatal(err)
		}
		users = append(users, roleUser(id, p))
	}
	srv := embeddedtest.RunServer(t, embedded.WithServerOptions(func(o *server.Options) { o.Users = users }))
	ctx := testCtx(t, 2*time.Minute)

	// agentd's part: the streams, the pool registry and the members bucket.
	admin, err := agentbus.Connect(ctx, agentbus.WithConn(embeddedtest.Connect(t, srv, nats.UserInfo("agentd", "agentd-secret"))),
		agentbus.WithEnsureStreams(agentbus.StreamConfig{}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = admin.Close(context.Background()) })
	for _, cfg := range []jetstream.KeyValueConfig{
		{Bucket: agentbus.PoolsBucket, History: 1},
		{Bucket: agentbus.MembersBucket, TTL: agentbus.DefaultMemberTTL, History: 1},
	} {
		if _, err := admin.KeyValue(ctx, cfg); err != nil {
			t.Fatal(err)
		}
	}

	type agent struct {
		bus        *agentbus.Bus
		nc         *nats.Conn
		violations *violations
		stop       func()
		mu         sync.Mutex
		got        []string
	}
	agents := map[string]*agent{}
	for _, id := range []string{a, b} {
		ag := &agent{violations: &violations{}}
		ag.nc = roleConn(t, srv, id, ag.violations, nats.CustomInboxPrefix(agentbus.AgentInboxPrefix(id)))
		// The other agent may not have declared itself yet: wait for it.
		ag.bus, err = agentbus.Connect(ctx, agentbus.WithConn(ag.nc), agentbus.WithUnknownAgents(agentbus.WaitUnknown),
			agentbus.WithLogger(embeddedtest.Logger(t)))
		if err != nil {
			t.Fatalf("%s connects with its own permissions: %v", id, err)
		}
		t.Cleanup(func() { _ = ag.bus.Close(context.Background()) })
		bus := ag.bus
		if err := bus.Handle(id, func(ctx context.Context, env *codec.Envelope) error {
			ag.mu.Lock()
			ag.got = append(ag.got, env.Message.Text())
			ag.mu.Unlock()
			return bus.Reply(ctx, env, &codec.Envelope{Message: &codec.Message{MessageID: "r-" + env.ID, Role: codec.RoleAgent,
				Parts: []codec.Part{codec.TextPart("ok " + env.Message.Text())}}})
		}); err != nil {
			t.Fatal(err)
		}
		ag.stop = serve(t, bus, fastRetries, agentbus.ServePartitions(agentPartitions)) // the default pool: its own, named after it
		agents[id] = ag
	}

	// Each sends to the other and asks it, both ways.
	for from, to := range map[string]string{a: b, b: a} {
		bus := agents[from].bus
		if err := bus.Send(ctx, textEnvelope(from, to, "", "note from "+from)); err != nil {
			t.Fatalf("%s sends to %s: %v", from, to, err)
		}
		for _, mode := range []agentbus.RequestMode{agentbus.Durable, agentbus.Direct} {
			var reply *codec.Envelope
			var err error
			for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
				rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				reply, err = bus.Request(rctx, textEnvelope(from, to, "", "question from "+from), mode)
				cancel()
				if err == nil || time.Now().After(deadline) { // a direct request needs the partition served first
					break
				}
			}
			if err != nil || reply.Message.Text() != "ok question from "+from {
				t.Fatalf("%s asks %s (mode %d): %v %+v", from, to, mode, err, reply)
			}
		}
	}
	waitFor(t, "both notes handled", func() bool {
		for from, to := range map[string]string{a: b, b: a} {
			ag := agents[to]
			ag.mu.Lock()
			got := strings.Join(ag.got, "|")
			ag.mu.Unlock()
			if !strings.Contains(got, "note from "+from) {
				return false
			}
		}
		return true
	})
	members, err := admin.Members(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range members {
		if m.Pool != m.Agents[0] || len(m.Agents) != 1 {
			t.Errorf("member %s serves %v in pool %s, want its own agent in a pool named after it", m.ID, m.Agents, m.Pool)
		}
	}
	if len(members) != 2 {
		t.Errorf("members %+v, want one per agent", members)
	}
	// Leaving the pool (draining, deleting the member key, stopping the
	// registry's watch) is refused nothing either.
	for _, id := range []string{a, b} {
		agents[id].stop()
		agents[id].violations.none(t, id)
	}
	if members, err := admin.Members(ctx); err != nil || len(members) != 0 {
		t.Errorf("members after both left: %+v %v", members, err)
	}

	// Alice reads none of Bob's and writes none of his keys: a message
	// goes to Bob while Alice tries every way in.
	alice := agents[a]
	bobPool, err := placement.NewPool(b, agentPartitions, placement.OrderConversation)
	if err != nil {
		t.Fatal(err)
	}
	bobConsumer, _ := bobPool.ConsumerName(bobPool.Partition(b, "agentd-test"))
	next := "$JS.API.CONSUMER.MSG.NEXT." + agentbus.StreamName + "." + bobConsumer
	core, err := alice.nc.SubscribeSync(agentbus.SubjectPrefix + ".>")
	if err != nil {
		t.Fatal(err)
	}
	if err := agents[b].bus.Send(ctx, textEnvelope("agentd-test", b, "", "for bob only")); err != nil {
		t.Fatal(err)
	}
	ajs, _ := jetstream.New(alice.nc)
	registry, err := ajs.KeyValue(ctx, agentbus.PoolsBucket)
	if err != nil {
		t.Fatalf("alice opens the pool registry: %v", err)
	}
	memberKV, err := ajs.KeyValue(ctx, agentbus.MembersBucket)
	if err != nil {
		t.Fatalf("alice opens the members bucket: %v", err)
	}
	a2a, err := ajs.Stream(ctx, agentbus.StreamName)
	if err != nil {
		t.Fatalf("alice cannot read the stream's info: %v", err)
	}
	bobCfg, _ := agentbus.ConsumerConfig(bobPool, 0, time.Minute)
	bobCfg.Durable = "alice-reads-bob"
	refusals(t, ctx, "alice", map[string]func(context.Context) error{
		"look up bob's partition consumer": func(c context.Context) error {
			_, err := ajs.Consumer(c, agentbus.StreamName, bobConsumer)
			return err
		},
		"pull from bob's partition": func(context.Context) error {
			_, err := alice.nc.Request(next, []byte(`{"batch":1}`), time.Second)
			return err
		},
		"create a consumer on bob's subjects": func(c context.Context) error {
			_, err := ajs.CreateConsumer(c, agentbus.StreamName, bobCfg)
			return err
		},
		"read a message by sequence": func(c context.Context) error { _, err := a2a.GetMsg(c, 1); return err },
		"write bob's pool record":    func(c context.Context) error { _, err := registry.Put(c, "pools.bob", []byte("{}")); return err },
		"write bob's agent record": func(c context.Context) error {
			_, err := registry.Put(c, "agents.bob", []byte(`{"pool":"alice"}`))
			return err
		},
		"declare another agent into its pool": func(c context.Context) error {
			_, err := alice.bus.Declare(c, agentbus.PoolConfig{Name: a, Partitions: agentPartitions}, "carol")
			return err
		},
		"write a member key of bob's pool": func(c context.Context) error {
			_, err := memberKV.Put(c, "bob.fake", []byte("{}"))
			return err
		},
	})
	if m, err := core.NextMsg(time.Second); err == nil {
		t.Errorf("alice read %s over core NATS", m.Subject)
	}
	alice.violations.wait(t, "alice",
		"$JS.API.CONSUMER.INFO."+agentbus.StreamName+"."+bobConsumer, next,
		"$JS.API.CONSUMER.CREATE."+agentbus.StreamName+".alice-reads-bob",
		agentbus.SubjectPrefix+".>", "$JS.API.STREAM.MSG.GET."+agentbus.StreamName,
		"$KV."+agentbus.PoolsBucket+".pools.bob", "$KV."+agentbus.PoolsBucket+".agents.bob",
		"$KV."+agentbus.PoolsBucket+".agents.carol", "$KV."+agentbus.MembersBucket+".bob.fake")
}

// TestAgentSendsOnceTheRegistryExists: an agent's role may read the pool
// registry but not create its bucket, which agentd provisions. A send made
// before agentd did fails; once the registry exists and the destination
// is declared, the same bus sends (the failure is not kept).
func TestAgentSendsOnceTheRegistryExists(t *testing.T) {
	p, err := agentbus.AgentPermissions("alice", agentPartitions)
	if err != nil {
		t.Fatal(err)
	}
	users := []*server.User{{Username: "agentd", Password: "agentd-secret"}, roleUser("alice", p)}
	srv := embeddedtest.RunServer(t, embedded.WithServerOptions(func(o *server.Options) { o.Users = users }))
	ctx := testCtx(t, time.Minute)
	admin, err := agentbus.Connect(ctx, agentbus.WithConn(embeddedtest.Connect(t, srv, nats.UserInfo("agentd", "agentd-secret"))),
		agentbus.WithEnsureStreams(agentbus.StreamConfig{}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = admin.Close(context.Background()) })
	nc := roleConn(t, srv, "alice", &violations{}, nats.CustomInboxPrefix(agentbus.AgentInboxPrefix("alice")))
	alice, err := agentbus.Connect(ctx, agentbus.WithConn(nc), agentbus.WithSendTimeout(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = alice.Close(context.Background()) })
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	early := alice.Send(sctx, textEnvelope("alice", "bob", "", "too early"))
	cancel()
	if early == nil {
		t.Fatal("alice sent to bob before any registry existed")
	}
	declarePool(t, admin, agentbus.PoolConfig{Name: "bob", Partitions: agentPartitions}, "bob")
	if err := alice.Send(ctx, textEnvelope("alice", "bob", "", "in time")); err != nil {
		t.Fatalf("alice's send once the registry exists: %v (the first send failed with: %v)", err, early)
	}
}

// roleUser is a user of the given permissions.
func roleUser(name string, p agentbus.Permissions) *server.User {
	return &server.User{Username: name, Password: name + "-secret", Permissions: &server.Permissions{
		Publish:   &server.SubjectPermission{Allow: p.Publish},
		Subscribe: &server.SubjectPermission{Allow: p.Subscribe},
	}}
}

// roleServer runs a server whose users are admin (no limits), agentd
// (DaemonPermissions) and scalerd (ScalerPermissions).
func roleServer(t *testing.T) *embedded.Server {
	t.Helper()
	users := []*server.User{
		{Username: "admin", Password: "admin-secret"},
		roleUser("agentd", agentbus.DaemonPermissions()),
		roleUser("scalerd", agentbus.ScalerPermissions()),
	}
	return embeddedtest.RunServer(t, embedded.WithServerOptions(func(o *server.Options) { o.Users = users }))
}

// roleConn connects as user, reporting its permission violations to v.
func roleConn(t *testing.T, srv *embedded.Server, user string, v *violations, opts ...nats.Option) *nats.Conn {
	t.Helper()
	return embeddedtest.Connect(t, srv, append([]nats.Option{nats.UserInfo(user, user+"-secret"), nats.ErrorHandler(v.handler)}, opts...)...)
}

// none fails the test if v holds any violation: what a role must be able
// to do was done without being refused anything, even what a client
// shrugs off (a watch's consumer it could not delete).
func (v *violations) none(t *testing.T, role string) {
	t.Helper()
	v.mu.Lock()
	defer v.mu.Unlock()
	if len(v.errs) > 0 {
		t.Errorf("%s's role was refused what it needs: %v", role, v.errs)
	}
}

// wait waits until v holds a violation of each subject, failing the test
// with those it does not after 30 s.
func (v *violations) wait(t *testing.T, role string, subjects ...string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var missing []string
		for _, s := range subjects {
			if !v.has(s) {
				missing = append(missing, s)
			}
		}
		if len(missing) == 0 {
			return
		}
		if time.Now().After(deadline) {
			v.mu.Lock()
			defer v.mu.Unlock()
			t.Fatalf("%s was not refused %v; its violations: %q", role, missing, v.errs)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// refusals runs each check at once with a short deadline; each must fail.
func refusals(t *testing.T, ctx context.Context, role string, checks map[string]func(context.Context) error) {
	t.Helper()
	var wg sync.WaitGroup
	for what, check := range checks {
		wg.Go(func() {
			c, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			if err := check(c); err == nil {
				t.Errorf("%s could %s", role, what)
			}
		})
	}
	wg.Wait()
}

// seen reports whether the watch sends a target of n consumers before it
// ends.
func seen(targets <-chan *agentbus.ScaleTarget, n int) bool {
	for target := range targets {
		if target != nil && target.Consumers == n {
			return true
		}
	}
	return false
}

// TestDaemonPermissions runs agentd's role on a real server: it creates
// the streams, declares its pool and agents in the registry and reads it,
// serves every partition of its pool through membership, sends and asks
// (durable and direct), dead-letters, watches its pool's scale target and
// uses the hosts, agent card and task buckets, refused nothing; and it
// cannot delete or purge the streams, delete a consumer, read a message by
// sequence, create another stream, set the scale target or open the
// scaler's leader bucket.
func TestDaemonPermissions(t *testing.T) {
	srv := roleServer(t)
	ctx := testCtx(t, 2*time.Minute)
	v := &violations{}
	connect := func() *agentbus.Bus {
		bus, err := agentbus.Connect(ctx, agentbus.WithConn(roleConn(t, srv, "agentd", v)),
			agentbus.WithEnsureStreams(agentbus.StreamConfig{}))
		if err != nil {
			t.Fatalf("agentd's role provisions the streams and connects: %v", err)
		}
		t.Cleanup(func() { _ = bus.Close(context.Background()) })
		return bus
	}
	host, sender := connect(), connect()
	if err := host.Handle("echo", func(ctx context.Context, env *codec.Envelope) error {
		return host.Reply(ctx, env, &codec.Envelope{Message: &codec.Message{MessageID: "r-" + env.ID, Role: codec.RoleAgent,
			Parts: []codec.Part{codec.TextPart("echo " + env.Message.Text())}}})
	}); err != nil {
		t.Fatal(err)
	}
	if err := host.Handle("broken", func(context.Context, *codec.Envelope) error { return fmt.Errorf("always fails") }); err != nil {
		t.Fatal(err)
	}
	declarePool(t, sender, agentbus.PoolConfig{Name: "agentd", Partitions: 16}, "echo", "broken")
	serve(t, host, fastRetries, agentbus.ServeMaxAttempts(2), agentbus.ServePool("agentd"), agentbus.ServePartitions(16))
	scale, err := host.WatchScaleTarget(ctx, "agentd")
	if err != nil {
		t.Fatalf("agentd watches the scale target: %v", err)
	}

	for _, mode := range []agentbus.RequestMode{agentbus.Durable, agentbus.Direct} {
		var reply *codec.Envelope
		var err error
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			reply, err = sender.Request(ctx, textEnvelope("gateway", "echo", "", "hi"), mode)
			if err == nil || time.Now().After(deadline) { // a direct request needs the partition served first
				break
			}
		}
		if err != nil || reply.Message.Text() != "echo hi" {
			t.Fatalf("request (mode %d): %v %+v", mode, err, reply)
		}
	}
	if err := sender.Send(ctx, textEnvelope("gateway", "broken", "", "doomed")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "agentd to report pulling its pool's 16 partitions", func() bool {
		members, err := host.Members(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return len(members) == 1 && members[0].Pool == "agentd" && members[0].Partitions == 16
	})
	if pools, err := sender.Pools(ctx); err != nil || len(pools[agentbus.PoolConfig{Name: "agentd", Partitions: 16, Order: "conversation", Hash: "jump-xxhash64"}]) != 2 {
		t.Errorf("pools: %v %v", pools, err)
	}
	js, _ := jetstream.New(roleConn(t, srv, "agentd", v))
	for _, bucket := range []string{"a2abus_hosts", "a2abus_agents", "a2abus_tasks"} {
		kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: bucket, TTL: time.Minute})
		if err != nil {
			t.Fatalf("bucket %s: %v", bucket, err)
		}
		if _, err := kv.Put(ctx, "k", []byte("v")); err != nil {
			t.Errorf("put in %s: %v", bucket, err)
		}
		if e, err := kv.Get(ctx, "k"); err != nil || string(e.Value()) != "v" {
			t.Errorf("get from %s: %v", bucket, err)
		}
		if keys, err := kv.Keys(ctx); err != nil || len(keys) != 1 {
			t.Errorf("keys of %s: %v %v", bucket, keys, err)
		}
		if err := kv.Delete(ctx, "k"); err != nil {
			t.Errorf("delete from %s: %v", bucket, err)
		}
	}

	admin, err := agentbus.Connect(ctx, agentbus.WithConn(embeddedtest.Connect(t, srv, nats.UserInfo("admin", "admin-secret"))))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = admin.Close(context.Background()) })
	if err := admin.SetScaleTarget(ctx, "agentd", agentbus.ScaleTarget{Consumers: 3, Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	if !seen(scale, 3) {
		t.Fatal("the scale target's watch did not see 3 consumers")
	}
	ajs, _ := jetstream.New(admin.Conn())
	waitFor(t, "the broken agent's message dead-lettered", func() bool {
		s, err := ajs.Stream(ctx, agentbus.DeadLetterStreamName)
		return err == nil && s.CachedInfo().State.Msgs == 1
	})
	v.none(t, "agentd")

	a2a, err := js.Stream(ctx, agentbus.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	group := "agentd_p0000" // a partition consumer of its pool
	refusals(t, ctx, "agentd", map[string]func(context.Context) error{
		"delete the stream":             func(c context.Context) error { return js.DeleteStream(c, agentbus.StreamName) },
		"delete the dead letters":       func(c context.Context) error { return js.DeleteStream(c, agentbus.DeadLetterStreamName) },
		"purge the stream":              func(c context.Context) error { return a2a.Purge(c) },
		"delete a partition's consumer": func(c context.Context) error { return js.DeleteConsumer(c, agentbus.StreamName, group) },
		"read a message by sequence":    func(c context.Context) error { _, err := a2a.GetMsg(c, 1); return err },
		"set the scale target": func(c context.Context) error {
			return sender.SetScaleTarget(c, "agentd", agentbus.ScaleTarget{Consumers: 9})
		},
		"open the leader bucket": func(c context.Context) error { _, err := js.KeyValue(c, "a2abus_scaler"); return err },
		"create another stream": func(c context.Context) error {
			_, err := js.CreateStream(c, jetstream.StreamConfig{Name: "OTHER", Subjects: []string{"other.>"}})
			return err
		},
		"update the stream's subjects": func(c context.Context) error {
			cfg := a2a.CachedInfo().Config
			cfg.Subjects = append(cfg.Subjects, "other.>")
			_, err := js.UpdateStream(c, cfg)
			return err
		},
	})
	v.wait(t, "agentd", "$JS.API.STREAM.DELETE."+agentbus.StreamName, "$JS.API.STREAM.DELETE."+agentbus.DeadLetterStreamName,
		"$JS.API.STREAM.PURGE."+agentbus.StreamName, "$JS.API.CONSUMER.DELETE."+agentbus.StreamName+"."+group,
		"$JS.API.STREAM.MSG.GET."+agentbus.StreamName, "$KV."+agentbus.ScaleBucket+".pools.agentd",
		"$JS.API.STREAM.INFO.KV_a2abus_scaler", "$JS.API.STREAM.CREATE.OTHER", "$JS.API.STREAM.UPDATE."+agentbus.StreamName)
}

// TestScalerPermissions runs scalerd's role on a real server beside a
// member of pool echo: it reads the stream's and consumers' info, the
// members and the pool registry, elects itself in its leader bucket and
// writes and watches a pool's scale target, refused nothing; and it cannot
// send, ask directly, pull, read a message, delete or purge the stream,
// write the members bucket or the registry, or read other connections'
// inboxes or direct requests.
func TestScalerPermissions(t *testing.T) {
	srv := roleServer(t)
	ctx := testCtx(t, 2*time.Minute)
	host, err := agentbus.Connect(ctx, agentbus.WithConn(roleConn(t, srv, "agentd", &violations{})),
		agentbus.WithEnsureStreams(agentbus.StreamConfig{}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = host.Close(context.Background()) })
	if err := host.Handle("echo", func(context.Context, *codec.Envelope) error { return nil }); err != nil {
		t.Fatal(err)
	}
	serve(t, host, fastRetries, agentbus.ServePartitions(16)) // pool echo

	v := &violations{}
	nc := roleConn(t, srv, "scalerd", v, nats.CustomInboxPrefix(agentbus.ScalerInboxPrefix))
	// The refused send is retried for the send timeout.
	bus, err := agentbus.Connect(ctx, agentbus.WithConn(nc), agentbus.WithSendTimeout(2*time.Second))
	if err != nil {
		t.Fatalf("scalerd's role connects: %v", err)
	}
	t.Cleanup(func() { _ = bus.Close(context.Background()) })
	js, _ := jetstream.New(nc)
	waitFor(t, "scalerd reads the member, the registry and the pool's partition consumers", func() bool {
		members, err := bus.Members(ctx)
		if err != nil || len(members) != 1 || members[0].Pool != "echo" {
			return false
		}
		pools, err := bus.Pools(ctx)
		if err != nil {
			t.Fatalf("pools: %v", err)
		}
		if len(pools) != 1 || !slices.Equal(pools[agentbus.PoolConfig{Name: "echo", Partitions: 16, Order: "conversation", Hash: "jump-xxhash64"}], []string{"echo"}) {
			return false
		}
		s, err := js.Stream(ctx, agentbus.StreamName)
		if err != nil {
			t.Fatalf("stream info: %v", err)
		}
		n := 0
		list := s.ListConsumers(ctx)
		for range list.Info() {
			n++
		}
		if err := list.Err(); err != nil {
			t.Fatalf("consumers' info: %v", err)
		}
		return n == 16
	})
	leader, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "a2abus_scaler", TTL: 5 * time.Second})
	if err != nil {
		t.Fatalf("leader bucket: %v", err)
	}
	rev, err := leader.Create(ctx, "leader", []byte("me"))
	if err == nil {
		rev, err = leader.Update(ctx, "leader", []byte("me"), rev)
	}
	if err != nil {
		t.Fatalf("campaign: %v", err)
	}
	w, err := leader.Watch(ctx, "leader", jetstream.UpdatesOnly())
	if err != nil {
		t.Fatalf("watch the leader key: %v", err)
	}
	if err := leader.Delete(ctx, "leader", jetstream.LastRevision(rev)); err != nil {
		t.Fatalf("resign: %v", err)
	}
	if e := <-w.Updates(); e == nil || e.Operation() != jetstream.KeyValueDelete {
		t.Errorf("watch saw %v, want the delete", e)
	}
	_ = w.Stop()
	targets, err := bus.WatchScaleTarget(ctx, "echo")
	if err != nil {
		t.Fatalf("watch the scale target: %v", err)
	}
	if err := bus.SetScaleTarget(ctx, "echo", agentbus.ScaleTarget{Consumers: 4, Reason: "test", By: "scalerd"}); err != nil {
		t.Fatalf("set the scale target: %v", err)
	}
	if !seen(targets, 4) {
		t.Fatal("the scale target's watch did not see 4 consumers")
	}
	if got, ok, err := host.ScaleTarget(ctx, "echo"); err != nil || !ok || got.Consumers != 4 {
		t.Errorf("agentd reads the target %+v %v %v", got, ok, err)
	}
	v.none(t, "scalerd")

	a2a, err := js.Stream(ctx, agentbus.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	pool, _ := placement.NewPool("echo", 16, placement.OrderConversation)
	group, _ := pool.ConsumerName(0)
	token, _ := pool.PartitionToken(pool.Partition("echo", "scalerd"))
	members, _ := js.KeyValue(ctx, agentbus.MembersBucket)
	registry, _ := js.KeyValue(ctx, agentbus.PoolsBucket)
	refusals(t, ctx, "scalerd", map[string]func(context.Context) error{
		"send": func(c context.Context) error { return bus.Send(c, textEnvelope("scalerd", "echo", "", "hi")) },
		"ask directly": func(c context.Context) error {
			_, err := bus.Request(c, textEnvelope("scalerd", "echo", "", "hi"), agentbus.Direct)
			return err
		},
		"delete the stream":          func(c context.Context) error { return js.DeleteStream(c, agentbus.StreamName) },
		"purge the stream":           func(c context.Context) error { return a2a.Purge(c) },
		"read a message by sequence": func(c context.Context) error { _, err := a2a.GetMsg(c, 1); return err },
		"pull a partition":           func(c context.Context) error { _, err := js.Consumer(c, agentbus.StreamName, group); return err },
		"write the members bucket":   func(c context.Context) error { _, err := members.Put(c, "echo.fake", []byte("{}")); return err },
		"write the pool registry":    func(c context.Context) error { _, err := registry.Put(c, "agents.echo", []byte("{}")); return err },
	})
	if err := nc.Publish(agentbus.SubjectPrefix+".x.y", []byte("x")); err != nil {
		t.Fatal(err)
	}
	for _, subject := range []string{"_INBOX.>", agentbus.DirectSubjectPrefix + ".>"} {
		if _, err := nc.SubscribeSync(subject); err != nil {
			t.Fatal(err)
		}
	}
	v.wait(t, "scalerd", agentbus.SubjectPrefix+".echo."+token+".echo", agentbus.DirectSubjectPrefix+".echo."+token+".echo",
		"$JS.API.STREAM.DELETE."+agentbus.StreamName, "$JS.API.STREAM.PURGE."+agentbus.StreamName,
		"$JS.API.STREAM.MSG.GET."+agentbus.StreamName, "$JS.API.CONSUMER.INFO."+agentbus.StreamName+"."+group,
		"$KV."+agentbus.MembersBucket+".echo.fake", "$KV."+agentbus.PoolsBucket+".agents.echo", agentbus.SubjectPrefix+".x.y",
		"_INBOX.>", agentbus.DirectSubjectPrefix+".>")
}
