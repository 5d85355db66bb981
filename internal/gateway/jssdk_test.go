package gateway_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// jsDir holds the JS SDK client script and its pinned dependencies.
const jsDir = "testdata/js"

// npmCI is the command that installs them, from the module root.
const npmCI = "npm ci --prefix internal/gateway/testdata/js"

// TestJSSDK drives the gateway with the official A2A JS SDK (@a2a-js/sdk,
// pinned in testdata/js/package-lock.json): testdata/js/client.mjs resolves
// the demo agents' cards and runs SendMessage, SendStreamingMessage, GetTask,
// CancelTask and SubscribeToTask through both the A2A 1.0 and the 0.3
// JSON-RPC interfaces. Without Node.js the test is skipped; with Node.js but
// without the SDK installed it fails, saying how to install it.
func TestJSSDK(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skipf("node is not on PATH: to run the JS SDK test, install Node.js 20 or later and run %q", npmCI)
	}
	if _, err := os.Stat(filepath.Join(jsDir, "node_modules", "@a2a-js", "sdk", "package.json")); err != nil {
		t.Fatalf("the A2A JS SDK is not installed in %s (%v): run %q", jsDir, err, npmCI)
	}
	hs := demo(t)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "client.mjs", hs.URL)
	cmd.Dir = jsDir
	// Output is read until the script and whatever it started close it;
	// do not wait on them long once the script is gone.
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Fatalf("node client.mjs %s did not finish in time; its output:\n%s", hs.URL, out)
	}
	if err != nil {
		t.Fatalf("node client.mjs %s: %v; its output:\n%s", hs.URL, err, out)
	}
	t.Logf("node client.mjs %s:\n%s", hs.URL, out)
}
