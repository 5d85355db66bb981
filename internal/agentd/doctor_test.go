package agentd

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadHost(t *testing.T) {
	root := t.TempDir()
	write := func(name, value string) {
		p := filepath.Join(root, strings.ReplaceAll(name, ".", "/"))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(value+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("net.core.somaxconn", "4096")                  // ok
	write("net.core.rmem_max", "212992")                 // low
	write("net.ipv4.tcp_rmem", "4096\t131072\t33554432") // ok: the max counts
	write("net.ipv4.tcp_wmem", "4096 16384")             // too few fields
	write("vm.swappiness", "60")                         // high
	write("vm.dirty_ratio", "ten")                       // not a number
	// net.core.wmem_max and the rest are missing: unknown.
	readings := readHost(root, func() (uint64, uint64, error) { return 1024, 4096, nil })
	got := map[string]hostReading{}
	for _, r := range readings {
		got[r.Name] = r
	}
	for name, want := range map[string]string{
		"net.core.somaxconn": "ok", "net.core.rmem_max": "low", "net.ipv4.tcp_rmem": "ok", "net.ipv4.tcp_wmem": "unknown",
		"vm.swappiness": "high", "vm.dirty_ratio": "unknown", "net.core.wmem_max": "unknown", "open files (ulimit -n)": "low",
	} {
		if got[name].Status != want {
			t.Errorf("%s: status %q (%+v), want %q", name, got[name].Status, got[name], want)
		}
	}
	if got["net.ipv4.tcp_rmem"].Value != "4096 131072 33554432" || got["open files (ulimit -n)"].Value != "1024 (hard 4096)" {
		t.Errorf("values %q, %q", got["net.ipv4.tcp_rmem"].Value, got["open files (ulimit -n)"].Value)
	}
	if len(readings) != len(hostChecks)+1 {
		t.Errorf("%d readings, want one per check and the open files", len(readings))
	}

	var out bytes.Buffer
	writeDoctor(&out, readings)
	for _, want := range []string{`sysctl -w net.core.rmem_max="16777216"`, `sysctl -w vm.swappiness="10"`,
		"/etc/sysctl.d/99-a2abus.conf", "ulimit -n 65536"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report has no %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "sysctl -w net.core.somaxconn") {
		t.Errorf("report fixes a setting that is ok:\n%s", out.String())
	}

	readings = readHost(root, func() (uint64, uint64, error) { return 0, 0, errors.New("unsupported") })
	if r := readings[len(readings)-1]; r.Status != "unknown" || r.Err != "unsupported" {
		t.Errorf("open files without a limit: %+v", r)
	}
}

func TestDoctorCommand(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := Main(t.Context(), []string{"doctor"}, strings.NewReader(""), &stdout, &stderr, env(nil)); code != exitOK {
		t.Fatalf("doctor: exit %d: %s", code, stderr.String())
	}
	if !strings.Contains(stdout.String(), "net.core.somaxconn") || !strings.Contains(stdout.String(), "open files") {
		t.Errorf("doctor printed %q", stdout.String())
	}
	stdout.Reset()
	if code := Main(t.Context(), []string{"doctor", "--json"}, strings.NewReader(""), &stdout, &stderr, env(nil)); code != exitOK {
		t.Fatalf("doctor --json: exit %d: %s", code, stderr.String())
	}
	var res struct {
		Checks []hostReading `json:"checks"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil || len(res.Checks) != len(hostChecks)+1 {
		t.Errorf("doctor --json: %v, %d checks: %s", err, len(res.Checks), stdout.String())
	}
	stderr.Reset()
	if code := Main(t.Context(), []string{"doctor", "--bogus"}, strings.NewReader(""), &stdout, &stderr, env(nil)); code != exitUsage || strings.Count(stderr.String(), "\n") != 1 {
		t.Errorf("doctor --bogus: exit %d, stderr %q", code, stderr.String())
	}
}
