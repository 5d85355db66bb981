package scalerd

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/a2abus/a2abus/agentbus"
	"github.com/a2abus/a2abus/codec"
	"github.com/a2abus/a2abus/embedded"
	"github.com/a2abus/a2abus/embedded/embeddedtest"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// logBuffer is a log that tests read back.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestScalerdRole runs a real scalerd with the credentials of its role
// (agentbus.ScalerPermissions) beside a consumer with agentd's: it samples
// the backlog and the members, leads, writes the pool's consumer target and
// resigns, refused nothing (its log would show it); and its credentials
// cannot publish to a2a.in.> nor delete the stream.
func TestScalerdRole(t *testing.T) {
	role := func(name string, p agentbus.Permissions) *server.User {
		return &server.User{Username: name, Password: name + "-secret", Permissions: &server.Permissions{
			Publish:   &server.SubjectPermission{Allow: p.Publish},
			Subscribe: &server.SubjectPermission{Allow: p.Subscribe},
		}}
	}
	users := []*server.User{{Username: "admin", Password: "admin-secret"},
		role("agentd", agentbus.DaemonPermissions()), role("scalerd", agentbus.ScalerPermissions())}
	srv := embeddedtest.RunServer(t, embedded.WithServerOptions(func(o *server.Options) { o.Users = users }))
	if !slices.Contains(agentbus.ScalerPermissions().Publish, "$KV."+LeaderBucket+".>") {
		t.Errorf("scalerd's role does not own the leader bucket %s", LeaderBucket)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	host := newBus(t, srv, agentbus.WithUserPassword("agentd", "agentd-secret"))
	if err := host.Handle("echo", func(context.Context, *codec.Envelope) error { return nil }); err != nil {
		t.Fatal(err)
	}
	serveCtx, stopServe := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- host.Serve(serveCtx, agentbus.ServePool("agentd"), agentbus.ServePartitions(4)) }()
	t.Cleanup(func() {
		stopServe()
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
	})

	u, err := url.Parse(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword("scalerd", "scalerd-secret")
	cfg := testDaemonConfig(srv, "scalerd-role")
	cfg.NATS = u.String()
	cfg.Policy.MinConsumers = 2 // one consumer runs: the first decision is a step up, written
	var log logBuffer
	d, err := NewDaemon(cfg, slog.New(slog.NewTextHandler(&log, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "scalerd samples one consumer, leads and writes the target", func() bool {
		st, ok := d.PoolStatus("agentd")
		target, stored, err := host.ScaleTarget(ctx, "agentd")
		return ok && st.Leader && st.Live == 1 && err == nil && stored && target.Consumers == 2 && target.By == d.ID()
	})
	if err := d.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	admin := embeddedtest.Connect(t, srv, nats.UserInfo("admin", "admin-secret"))
	ajs, _ := jetstream.New(admin)
	leader, err := ajs.KeyValue(ctx, LeaderBucket)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := leader.Get(ctx, leaderKey); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Errorf("the leader key after scalerd resigned: %v", err)
	}
	if logged := log.String(); strings.Contains(strings.ToLower(logged), "permissions violation") {
		t.Errorf("scalerd was refused what it needs:\n%s", logged)
	}

	refused := make(chan error, 4)
	nc, err := nats.Connect(u.String(), nats.CustomInboxPrefix(agentbus.ScalerInboxPrefix),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { refused <- err }))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if err := nc.Publish(agentbus.SubjectPrefix+".g0000.x", []byte("x")); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-refused:
		if !strings.Contains(err.Error(), agentbus.SubjectPrefix+".g0000.x") {
			t.Errorf("refused %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Error("scalerd's credentials published to a2a.in")
	}
	js, _ := jetstream.New(nc)
	dctx, dcancel := context.WithTimeout(ctx, 2*time.Second)
	defer dcancel()
	if err := js.DeleteStream(dctx, agentbus.StreamName); err == nil {
		t.Error("scalerd's credentials deleted the stream")
	}
}
