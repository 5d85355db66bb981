package agentbus_test

import (
	"context"
	"fmt"
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

// TestAgentPermissions runs two agents with their own credentials on a real
// server whose authorization is AgentPermissions: each sends to and asks
// the other, durable and direct, and serves its own group; neither can read
// the other's messages, by its group's consumer, by sequence or over core
// NATS.
func TestAgentPermissions(t *testing.T) {
	groups, err := placement.NewGroups(16)
	if err != nil {
		t.Fatal(err)
	}
	// Two agents in different groups.
	a, b := "alice", ""
	for i := 0; b == ""; i++ {
		if id := fmt.Sprintf("bob-%d", i); groups.Group(id) != groups.Group(a) {
			b = id
		}
	}
	users := []*server.User{{Username: "agentd", Password: "agentd-secret"}} // agentd's role: everything
	for _, id := range []string{a, b} {
		p, err := agentbus.AgentPermissions(groups, id)
		if err != nil {
			t.Fatal(err)
		}
		users = append(users, &server.User{Username: id, Password: id + "-secret", Permissions: &server.Permissions{
			Publish:   &server.SubjectPermission{Allow: p.Publish},
			Subscribe: &server.SubjectPermission{Allow: p.Subscribe},
		}})
	}
	srv := embeddedtest.RunServer(t, embedded.WithServerOptions(func(o *server.Options) { o.Users = users }))
	ctx := testCtx(t, time.Minute)

	admin := embeddedtest.Connect(t, srv, nats.UserInfo("agentd", "agentd-secret"))
	js, _ := jetstream.New(admin)
	if err := agentbus.EnsureStreams(ctx, js, agentbus.StreamConfig{}); err != nil {
		t.Fatal(err)
	}

	type agent struct {
		bus        *agentbus.Bus
		nc         *nats.Conn
		violations *violations
		mu         sync.Mutex
		got        []string
	}
	agents := map[string]*agent{}
	for _, id := range []string{a, b} {
		ag := &agent{violations: &violations{}}
		ag.nc = embeddedtest.Connect(t, srv, nats.UserInfo(id, id+"-secret"),
			nats.CustomInboxPrefix(agentbus.AgentInboxPrefix(id)), nats.ErrorHandler(ag.violations.handler))
		ag.bus, err = agentbus.Connect(ctx, agentbus.WithConn(ag.nc), agentbus.WithGroups(16))
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
		serve(t, bus, fastRetries, agentbus.ServeGroups(groups.Group(id)))
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
				reply, err = bus.Request(ctx, textEnvelope(from, to, "", "question from "+from), mode)
				if err == nil || time.Now().After(deadline) { // a direct request needs the group served first
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

	// Alice reads none of Bob's: a message goes to Bob while Alice tries
	// every way in.
	alice := agents[a]
	bobGroup, _ := groups.GroupToken(groups.Group(b))
	next := "$JS.API.CONSUMER.MSG.NEXT." + agentbus.StreamName + "." + bobGroup
	core, err := alice.nc.SubscribeSync(agentbus.SubjectPrefix + ".>")
	if err != nil {
		t.Fatal(err)
	}
	if err := agents[b].bus.Send(ctx, textEnvelope("agentd-test", b, "", "for bob only")); err != nil {
		t.Fatal(err)
	}
	short := func() context.Context {
		c, cancel := context.WithTimeout(ctx, time.Second)
		t.Cleanup(cancel)
		return c
	}
	ajs, _ := jetstream.New(alice.nc)
	if _, err := ajs.Consumer(short(), agentbus.StreamName, bobGroup); err == nil {
		t.Error("alice looked up bob's group consumer")
	}
	if m, err := alice.nc.Request(next, []byte(`{"batch":1}`), time.Second); err == nil {
		t.Errorf("alice pulled from bob's group: %s %q", m.Subject, m.Data)
	}
	if s, err := ajs.Stream(short(), agentbus.StreamName); err != nil {
		t.Errorf("alice cannot read the stream's info: %v", err)
	} else if m, err := s.GetMsg(short(), 1); err == nil {
		t.Errorf("alice read stream message 1 by sequence: %s", m.Subject)
	}
	if m, err := core.NextMsg(time.Second); err == nil {
		t.Errorf("alice read %s over core NATS", m.Subject)
	}
	waitFor(t, "alice's denied reads reported", func() bool {
		return alice.violations.has("$JS.API.CONSUMER.INFO."+agentbus.StreamName+"."+bobGroup) && alice.violations.has(next) &&
			alice.violations.has(agentbus.SubjectPrefix+".>") &&
			alice.violations.has("$JS.API.STREAM.MSG.GET."+agentbus.StreamName)
	})
}
