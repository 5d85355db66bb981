package agentd

import (
	"bytes"
	"context"
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
	"github.com/nats-io/nats-server/v2/conf"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// TestPermissionsCommand parses the printed entry with the server's own
// configuration parser: it holds exactly AgentPermissions.
func TestPermissionsCommand(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := Main(t.Context(), []string{"permissions", "--agent", "weather-bot", "--partitions", "64"}, strings.NewReader(""), &stdout, &stderr, env(nil)); code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	t.Setenv("WEATHER_BOT_PASSWORD", "s3cret")
	parsed, err := conf.Parse("authorization { users = [\n" + stdout.String() + "\n] }")
	if err != nil {
		t.Fatalf("the entry does not parse: %v\n%s", err, stdout.String())
	}
	user := parsed["authorization"].(map[string]any)["users"].([]any)[0].(map[string]any)
	if user["user"] != "weather-bot" || user["password"] != "s3cret" {
		t.Errorf("user %v, password %v", user["user"], user["password"])
	}
	want, err := agentbus.AgentPermissions("weather-bot", 64)
	if err != nil {
		t.Fatal(err)
	}
	perms := user["permissions"].(map[string]any)
	for dir, subjects := range map[string][]string{"publish": want.Publish, "subscribe": want.Subscribe} {
		var got []string
		for _, s := range perms[dir].(map[string]any)["allow"].([]any) {
			got = append(got, s.(string))
		}
		if !slices.Equal(got, subjects) {
			t.Errorf("%s allows %v, want %v", dir, got, subjects)
		}
	}

	stdout.Reset()
	key := "U" + strings.Repeat("A", 55)
	if code := Main(t.Context(), []string{"permissions", "--agent", "a", "--nkey", key}, strings.NewReader(""), &stdout, &stderr, env(nil)); code != exitOK || !strings.Contains(stdout.String(), "nkey: "+key) {
		t.Errorf("with --nkey: exit %d: %s", code, stdout.String())
	}
	for _, args := range [][]string{{"permissions"}, {"permissions", "--agent", "a.b"}, {"permissions", "--agent", "a", "--nkey", "x"}, {"permissions", "--agent", "a", "--partitions", "0"}} {
		stderr.Reset()
		if code := Main(t.Context(), args, strings.NewReader(""), &stdout, &stderr, env(nil)); code != exitUsage || strings.Count(stderr.String(), "\n") != 1 {
			t.Errorf("%v: exit %d, stderr %q", args, code, stderr.String())
		}
	}
}

// TestPermissionsRoles prints each daemon's role and parses it with the
// server's configuration parser: it holds exactly the role's permissions.
// The buckets the roles name are the daemons' own.
func TestPermissionsRoles(t *testing.T) {
	for role, want := range map[string]agentbus.Permissions{"agentd": agentbus.DaemonPermissions(), "scalerd": agentbus.ScalerPermissions()} {
		var stdout, stderr bytes.Buffer
		if code := Main(t.Context(), []string{"permissions", "--role", role}, strings.NewReader(""), &stdout, &stderr, env(nil)); code != exitOK {
			t.Fatalf("%s: exit %d: %s", role, code, stderr.String())
		}
		t.Setenv(strings.ToUpper(role)+"_PASSWORD", "s3cret")
		parsed, err := conf.Parse("authorization { users = [\n" + stdout.String() + "\n] }")
		if err != nil {
			t.Fatalf("%s: the entry does not parse: %v\n%s", role, err, stdout.String())
		}
		user := parsed["authorization"].(map[string]any)["users"].([]any)[0].(map[string]any)
		if user["user"] != role || user["password"] != "s3cret" {
			t.Errorf("%s: user %v, password %v", role, user["user"], user["password"])
		}
		perms := user["permissions"].(map[string]any)
		for dir, subjects := range map[string][]string{"publish": want.Publish, "subscribe": want.Subscribe} {
			var got []string
			for _, s := range perms[dir].(map[string]any)["allow"].([]any) {
				got = append(got, s.(string))
			}
			if !slices.Equal(got, subjects) {
				t.Errorf("%s: %s allows %v, want %v", role, dir, got, subjects)
			}
		}
	}
	if p := agentbus.DaemonPermissions().Publish; !slices.Contains(p, "$KV."+HostsBucket+".>") || !slices.Contains(p, "$JS.API.STREAM.CREATE.KV_"+HostsBucket) {
		t.Errorf("agentd's role does not own the hosts bucket %s", HostsBucket)
	}
	for _, args := range [][]string{{"permissions", "--role", "admin"}, {"permissions", "--role", "agentd", "--agent", "a"},
		{"permissions", "--role", "scalerd", "--partitions", "8"}, {"permissions", "--role", "agentd", "--nkey", "x"}} {
		var stdout, stderr bytes.Buffer
		if code := Main(t.Context(), args, strings.NewReader(""), &stdout, &stderr, env(nil)); code != exitUsage || strings.Count(stderr.String(), "\n") != 1 {
			t.Errorf("%v: exit %d, stderr %q", args, code, stderr.String())
		}
	}
}

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

// TestAgentdRole runs a real agentd with the demo agents on a server whose
// only users are the entry "agentd permissions --role agentd" prints and
// an admin: agentd provisions the streams, joins the hosts, hosts the
// consumers and answers durable and direct requests, refused nothing (its
// log would show it); and its credentials cannot delete the stream.
func TestAgentdRole(t *testing.T) {
	var entry, stderr bytes.Buffer
	if code := Main(t.Context(), []string{"permissions", "--role", "agentd"}, strings.NewReader(""), &entry, &stderr, env(nil)); code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	t.Setenv("AGENTD_PASSWORD", "agentd-secret")
	srv := embeddedtest.RunServer(t, embedded.WithConfig("authorization { users = [\n"+entry.String()+
		"\n{ user: admin, password: admin-secret }\n] }"))
	u, err := url.Parse(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword("agentd", "agentd-secret")

	cfg := testConfig(t)
	cfg.NATS = u.String()
	cfg.Demo = true
	cfg.DemoDelay = 0
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	var log logBuffer
	d := NewDaemon(cfg, slog.New(slog.NewTextHandler(&log, &slog.HandlerOptions{Level: slog.LevelDebug})))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := d.Start(ctx); err != nil {
		t.Fatalf("agentd starts with its role: %v\n%s", err, log.String())
	}
	t.Cleanup(func() {
		if err := d.Shutdown(context.Background()); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})

	admin, err := agentbus.Connect(ctx, agentbus.WithURL(srv.ClientURL()), agentbus.WithUserPassword("admin", "admin-secret"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = admin.Close(context.Background()) })
	for _, mode := range []agentbus.RequestMode{agentbus.Durable, agentbus.Direct} {
		var reply *codec.Envelope
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
			reply, err = admin.Request(rctx, &codec.Envelope{Kind: "message", From: "tester", To: "echo",
				Message: &codec.Message{MessageID: "q", Role: codec.RoleUser, Parts: []codec.Part{codec.TextPart("hi")}}}, mode)
			rcancel()
			if err == nil || time.Now().After(deadline) { // the demo's consumers start after agentd is ready
				break
			}
		}
		if err != nil || textOf(reply) != "hi" {
			t.Fatalf("request to echo (mode %d): %v %+v\n%s", mode, err, reply, log.String())
		}
	}
	js, _ := jetstream.New(admin.Conn())
	hosts, err := js.KeyValue(ctx, HostsBucket)
	if err != nil {
		t.Fatalf("hosts bucket: %v", err)
	}
	if keys, err := hosts.Keys(ctx); err != nil || len(keys) != 1 {
		t.Errorf("hosts %v %v", keys, err)
	}
	if err := admin.SetScaleTarget(ctx, cfg.Pool, agentbus.ScaleTarget{Consumers: 2, Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if members, err := admin.Members(ctx); err == nil && len(members) == 2 {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("agentd did not follow the target: members %v %v", members, err)
		}
	}

	nc, err := nats.Connect(u.String(), nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	ajs, _ := jetstream.New(nc)
	dctx, dcancel := context.WithTimeout(ctx, 2*time.Second)
	defer dcancel()
	if err := ajs.DeleteStream(dctx, agentbus.StreamName); err == nil {
		t.Error("agentd's credentials deleted the stream")
	}
	if logged := log.String(); strings.Contains(strings.ToLower(logged), "permissions violation") {
		t.Errorf("agentd was refused what it needs:\n%s", logged)
	}
}
