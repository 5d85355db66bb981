package main

import (
	"bytes"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestProcess runs scalerd as a process: the exit codes reach the shell.
func TestProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the command")
	}
	bin := filepath.Join(t.TempDir(), "scalerd")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	tests := []struct {
		args     []string
		wantCode int
		want     string
	}{
		{args: nil, wantCode: 2, want: "scalerd sim"},
		{args: []string{"sim", "--nope"}, wantCode: 2, want: "-nope"},
		{args: []string{"sim", "--json", "--trace", "../../internal/scalerd/testdata/steps.csv"}, wantCode: 0, want: `"trace":"steps.csv","policy":"keda"`},
	}
	for _, tt := range tests {
		var out, errOut bytes.Buffer
		cmd := exec.Command(bin, tt.args...)
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
