package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/a2abus/a2abus/agentbus"
	"github.com/a2abus/a2abus/embedded/embeddedtest"
)

// build compiles scalerd into a test directory.
func build(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the command")
	}
	bin := filepath.Join(t.TempDir(), "scalerd")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// TestProcess runs scalerd as a process: the exit codes reach the shell.
func TestProcess(t *testing.T) {
	bin := build(t)
	tests := []struct {
		args     []string
		env      []string
		wantCode int
		want     string
	}{
		{args: []string{"bogus"}, wantCode: 2, want: "scalerd sim"},
		{args: []string{"--interval", "1ms"}, wantCode: 2, want: "--interval 1ms"},
		{args: []string{"--max-consumers", "0"}, wantCode: 2, want: "--max-consumers 0"},
		{env: []string{"SCALERD_LEASE=soon"}, wantCode: 2, want: "SCALERD_LEASE"},
		{args: []string{"--help"}, wantCode: 0, want: "-dry-run"},
		{args: []string{"sim", "--nope"}, wantCode: 2, want: "-nope"},
		{args: []string{"sim", "--json", "--trace", "../../internal/scalerd/testdata/steps.csv"}, wantCode: 0, want: `"trace":"steps.csv","policy":"keda"`},
	}
	for _, tt := range tests {
		var out, errOut bytes.Buffer
		cmd := exec.Command(bin, tt.args...)
		cmd.Env = tt.env
		cmd.Stdout, cmd.Stderr = &out, &errOut
		err := cmd.Run()
		code := 0
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			code = exit.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if code != tt.wantCode || !strings.Contains(out.String()+errOut.String(), tt.want) {
			t.Errorf("scalerd %v: exit %d, stdout %q, stderr %q; want exit %d and %q",
				tt.args, code, out.String(), errOut.String(), tt.wantCode, tt.want)
		}
	}
}

// TestDaemonSIGTERM runs the daemon against an embedded server: it leads,
// answers /scale, and on SIGTERM resigns and exits 0.
func TestDaemonSIGTERM(t *testing.T) {
	bin := build(t)
	srv := embeddedtest.RunServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	bus, err := agentbus.Connect(ctx, agentbus.WithURL(srv.ClientURL()), agentbus.WithEnsureStreams(agentbus.StreamConfig{}))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = bus.Close(context.Background()) }()

	cmd := exec.Command(bin, "--http", "127.0.0.1:0", "--interval", "200ms", "--id", "proc")
	cmd.Env = []string{"SCALERD_NATS=" + srv.ClientURL(), "SCALERD_LOG_LEVEL=debug"}
	var stderr embeddedtest.Buffer
	pr, pw := io.Pipe()
	cmd.Stderr = io.MultiWriter(&stderr, pw)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill() }()
	addr := make(chan string, 1)
	go func() {
		re := regexp.MustCompile(`http=(\S+)`)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				addr <- m[1]
				break
			}
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	var url string
	select {
	case a := <-addr:
		url = "http://" + a
	case <-ctx.Done():
		t.Fatalf("no HTTP address logged:\n%s", stderr.String())
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(url + "/scale")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && strings.Contains(string(body), `"leader":true`) {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("scalerd did not lead and answer /scale:\n%s", stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		pw.Close()
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("no exit 10 s after SIGTERM:\n%s", stderr.String())
	}
	if !strings.Contains(stderr.String(), "resigned leadership") {
		t.Errorf("no resignation logged:\n%s", stderr.String())
	}
}
