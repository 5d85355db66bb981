package agentd

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

func writeFile(t *testing.T, name, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadConfigDefaults(t *testing.T) {
	cfg, rest, err := loadConfig(nil, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if cfg != DefaultConfig() || len(rest) != 0 {
		t.Fatalf("got %+v %v, want the defaults", cfg, rest)
	}
	if cfg.NATS != "" || cfg.NATSPort != 4222 || cfg.HTTP != "127.0.0.1:8080" {
		t.Fatalf("defaults %+v do not match the documented ones", cfg)
	}
}

// TestLoadConfigPrecedence checks flags over environment over file over
// defaults, one setting at each layer.
func TestLoadConfigPrecedence(t *testing.T) {
	file := writeFile(t, "agentd.json", `{"nats-port": 5001, "http": "127.0.0.1:9001", "data": "/from/file", "log-level": "warn"}`)
	cfg, _, err := loadConfig(
		[]string{"--config", file, "--nats-port", "5003"},
		env(map[string]string{"AGENTD_NATS_PORT": "5002", "AGENTD_HTTP": "127.0.0.1:9002"}),
	)
	if err != nil {
		t.Fatal(err)
	}
	want := DefaultConfig()
	want.ConfigFile = file
	want.NATSPort = 5003         // flag
	want.HTTP = "127.0.0.1:9002" // environment
	want.Data = "/from/file"     // file
	want.LogLevel = "warn"       // file
	if cfg != want {
		t.Fatalf("got  %+v\nwant %+v", cfg, want)
	}
}

func TestLoadConfigFileFromEnv(t *testing.T) {
	file := writeFile(t, "agentd.json", `{"nats": "nats://a:4222,nats://b:4222"}`)
	cfg, _, err := loadConfig(nil, env(map[string]string{"AGENTD_CONFIG": file}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.NATS != "nats://a:4222,nats://b:4222" || cfg.ConfigFile != file {
		t.Fatalf("got %+v", cfg)
	}
}

func TestLoadConfigErrors(t *testing.T) {
	bad := writeFile(t, "bad.json", `{"nats-port": `)
	unknown := writeFile(t, "unknown.json", `{"natsport": 1}`)
	badValue := writeFile(t, "value.json", `{"nats-port": "many"}`)
	nested := writeFile(t, "nested.json", `{"nats": {"url": "x"}}`)
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		wantErr string
	}{
		{"unknown flag", []string{"--bogus"}, nil, "flag provided but not defined: -bogus"},
		{"bad flag value", []string{"--nats-port", "x"}, nil, `invalid value "x" for flag -nats-port`},
		{"port out of range", []string{"--nats-port", "70000"}, nil, "--nats-port 70000"},
		{"bad http address", []string{"--http", "8080"}, nil, `--http "8080"`},
		{"bad log level", []string{"--log-level", "loud"}, nil, `--log-level "loud"`},
		{"replicas", []string{"--replicas", "9"}, nil, "--replicas 9"},
		{"consumers", []string{"--consumers", "-1"}, nil, "--consumers -1"},
		{"member TTL", []string{"--member-ttl", "10ms"}, nil, "--member-ttl 10ms"},
		{"drain timeout", []string{"--drain-timeout", "-1s"}, nil, "--drain-timeout -1s"},
		{"CPU list", []string{"--cpus", "3-1"}, nil, `--cpus "3-1"`},
		{"CPUs and a node", []string{"--cpus", "0", "--numa-node", "0"}, nil, "give one of them"},
		{"NUMA node", []string{"--numa-node", "-2"}, nil, "--numa-node -2"},
		{"bad env value", nil, map[string]string{"AGENTD_NATS_PORT": "x"}, "AGENTD_NATS_PORT="},
		{"missing config file", []string{"--config", "/nonexistent/agentd.json"}, nil, "--config: open /nonexistent/agentd.json"},
		{"invalid config file", []string{"--config", bad}, nil, "not a JSON object"},
		{"unknown config key", []string{"--config", unknown}, nil, `unknown setting "natsport"`},
		{"bad config value", []string{"--config", badValue}, nil, `setting "nats-port"`},
		{"nested config value", []string{"--config", nested}, nil, "want a string, number or boolean"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := loadConfig(tt.args, env(tt.env))
			if err == nil {
				t.Fatalf("no error, want one containing %q", tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %q does not contain %q", err, tt.wantErr)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("error %q spans several lines", err)
			}
		})
	}
}
