package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/a2abus/a2abus/internal/sysinfo"
)

// buildAgentd compiles this command into a test directory.
func buildAgentd(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "agentd")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// TestProcessLifecycle runs agentd as a process, as an operator would:
// it becomes ready, and SIGTERM makes it exit 0.
func TestProcessLifecycle(t *testing.T) {
	bin := buildAgentd(t)
	args := []string{"--http", "127.0.0.1:0", "--grpc", "127.0.0.1:0", "--nats-port", "0", "--log-format", "json"}
	// Bound to one CPU, where the platform can bind.
	cpus, affinityErr := sysinfo.AffinityCPUs()
	bindTo := ""
	if affinityErr == nil {
		bindTo = strconv.Itoa(cpus[len(cpus)-1])
		args = append(args, "--cpus", bindTo)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "AGENTD_DATA="+t.TempDir())
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill() }() // after a failure

	// The ready line carries the HTTP address the daemon bound.
	httpRe := regexp.MustCompile(`"msg":"agentd ready","http":"([^"]+)"`)
	var addr string
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	timeout := time.After(60 * time.Second)
	for addr == "" {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatal("agentd exited before it was ready")
			}
			if m := httpRe.FindStringSubmatch(l); m != nil {
				addr = m[1]
			}
		case <-timeout:
			t.Fatal("agentd did not log that it was ready")
		}
	}
	go func() { // keep draining the log so the process never blocks on it
		for range lines {
		}
	}()
	resp, err := http.Get("http://" + addr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("/readyz = %d", resp.StatusCode)
	}
	t.Logf("ready after %v", time.Since(start).Round(time.Millisecond))
	if bindTo != "" { // every thread of the process is bound, the embedded server's too
		tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/status", cmd.Process.Pid))
		if err != nil || len(tasks) == 0 {
			t.Fatalf("threads of agentd: %v %v", tasks, err)
		}
		for _, task := range tasks {
			status, err := os.ReadFile(task)
			if err != nil {
				continue // the thread ended
			}
			if !strings.Contains(string(status), "Cpus_allowed_list:\t"+bindTo+"\n") {
				t.Errorf("%s is not bound to CPU %s", task, bindTo)
			}
		}
	}

	stopped := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitErr := make(chan error, 1)
	go func() { waitErr <- cmd.Wait() }()
	select {
	case err := <-waitErr:
		if err != nil {
			t.Fatalf("agentd after SIGTERM: %v, want exit 0", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("agentd still running a minute after SIGTERM")
	}
	t.Logf("exited 0 after %v", time.Since(stopped).Round(time.Millisecond))
}

// TestProcessBadInput checks that bad settings end the process with a
// one-line error and a non-zero exit, without a stack trace.
func TestProcessBadInput(t *testing.T) {
	bin := buildAgentd(t)
	badConf := filepath.Join(t.TempDir(), "agentd.json")
	if err := os.WriteFile(badConf, []byte("{nope"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantErr  string
	}{
		{"unknown flag", []string{"--bogus"}, 2, "-bogus"},
		{"invalid config", []string{"--config", badConf}, 2, "--config"},
		{"unreachable nats", []string{"--nats", "nats://127.0.0.1:1", "--http", "127.0.0.1:0", "--grpc", "off"}, 1, "--nats nats://127.0.0.1:1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, tt.args...)
			var stderr strings.Builder
			cmd.Stderr = &stderr
			cmd.Stdout = io.Discard
			err := cmd.Run()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != tt.wantCode {
				t.Fatalf("exit: %v, want code %d (stderr %q)", err, tt.wantCode, stderr.String())
			}
			got := stderr.String()
			if !strings.Contains(got, tt.wantErr) || strings.Count(got, "\n") != 1 || strings.Contains(got, "goroutine") {
				t.Fatalf("stderr %q, want one line containing %q", got, tt.wantErr)
			}
		})
	}
}
