package agentd

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	"github.com/a2abus/a2abus/agentbus"
	"github.com/a2abus/a2abus/placement"
	"github.com/nats-io/nats-server/v2/conf"
)

// TestPermissionsCommand parses the printed entry with the server's own
// configuration parser: it holds exactly AgentPermissions.
func TestPermissionsCommand(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := Main(t.Context(), []string{"permissions", "--agent", "weather-bot", "--groups", "64"}, strings.NewReader(""), &stdout, &stderr, env(nil)); code != exitOK {
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
	groups, _ := placement.NewGroups(64)
	want, _ := agentbus.AgentPermissions(groups, "weather-bot")
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
	for _, args := range [][]string{{"permissions"}, {"permissions", "--agent", "a.b"}, {"permissions", "--agent", "a", "--nkey", "x"}, {"permissions", "--agent", "a", "--groups", "0"}} {
		stderr.Reset()
		if code := Main(t.Context(), args, strings.NewReader(""), &stdout, &stderr, env(nil)); code != exitUsage || strings.Count(stderr.String(), "\n") != 1 {
			t.Errorf("%v: exit %d, stderr %q", args, code, stderr.String())
		}
	}
}
