package gateway_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// jsDir holds the JS SDK client script and its pinned dependencies.
const jsDir = "testdata/js"

// npmCI is the command that installs them, from the module root.
const npmCI = "npm ci --prefix internal/gateway/testdata/js"

// npmTimeout bounds the install TestJSSDK runs when the SDK is missing.
const npmTimeout = 4 * time.Minute

// TestJSSDK drives the gateway with the official A2A JS SDK (@a2a-js/sdk,
// pinned in testdata/js/package-lock.json): testdata/js/client.mjs resolves
// the demo agents' cards and runs SendMessage, SendStreamingMessage, GetTask,
// CancelTask and SubscribeToTask through both the A2A 1.0 and the 0.3
// JSON-RPC interfaces. Without Node.js the test is skipped; with Node.js but
// without the SDK installed it installs it (npm ci, see installJSSDK).
func TestJSSDK(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skipf("node is not on PATH: to run the JS SDK test, install Node.js 20 or later and run %q", npmCI)
	}
	installJSSDK(t)
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

// sdkInstalled reports whether jsDir/node_modules holds the JS SDK.
func sdkInstalled() bool {
	_, err := os.Stat(filepath.Join(jsDir, "node_modules", "@a2a-js", "sdk", "package.json"))
	return err == nil
}

// installJSSDK makes sure jsDir/node_modules holds the pinned JS SDK,
// running npm ci if it does not. Test processes may race here (go test
// -count=2 comes back once the SDK is installed, but two go test runs of
// the package, say with and without -race, may run at once), so npm ci runs
// in a directory of its own under jsDir and its node_modules is renamed
// into place: the rename fails if another process's node_modules got there
// first, and no process sees a node_modules half installed.
func installJSSDK(t *testing.T) {
	if sdkInstalled() {
		return
	}
	if _, err := os.Stat(filepath.Join(jsDir, "node_modules")); err == nil {
		// Not ours to replace: someone may be installing into it by hand.
		t.Fatalf("%s/node_modules exists but holds no @a2a-js/sdk: run %q (it replaces node_modules)", jsDir, npmCI)
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		t.Fatalf("node is on PATH but npm is not: install npm (it comes with Node.js) so that the test can install the JS SDK, or run %q", npmCI)
	}

	tmp, err := os.MkdirTemp(jsDir, ".npm-ci-")
	if err != nil {
		t.Fatalf("installing the JS SDK: %v; run %q", err, npmCI)
	}
	defer os.RemoveAll(tmp)
	for _, name := range []string{"package.json", "package-lock.json"} {
		b, err := os.ReadFile(filepath.Join(jsDir, name))
		if err == nil {
			err = os.WriteFile(filepath.Join(tmp, name), b, 0o644)
		}
		if err != nil {
			t.Fatalf("installing the JS SDK: %v; run %q", err, npmCI)
		}
	}

	args := []string{"ci", "--no-audit", "--no-fund", "--loglevel=error"}
	t.Logf("the A2A JS SDK is not installed in %s: running npm %s there (what %q does)", jsDir, strings.Join(args, " "), npmCI)
	ctx, cancel := context.WithTimeout(context.Background(), npmTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, npm, args...)
	cmd.Dir = tmp
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Fatalf("npm ci in %s did not finish in %v; its output:\n%s\nto install the JS SDK by hand, run %q from the module root", jsDir, npmTimeout, out, npmCI)
	}
	if err != nil {
		t.Fatalf("npm ci in %s: %v; its output:\n%s\nto install the JS SDK by hand, run %q from the module root", jsDir, err, out, npmCI)
	}
	err = os.Rename(filepath.Join(tmp, "node_modules"), filepath.Join(jsDir, "node_modules"))
	if err != nil && !sdkInstalled() {
		// A rename onto another process's node_modules fails, and then the
		// SDK is there; anything else is an error of ours.
		if errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("npm ci in %s installed nothing; its output:\n%s\nrun %q", jsDir, out, npmCI)
		}
		t.Fatalf("installing the JS SDK: %v; run %q", err, npmCI)
	}
	if err != nil {
		t.Logf("another test process installed the A2A JS SDK in %s first", jsDir)
		return
	}
	t.Logf("installed the A2A JS SDK in %s in %v", jsDir, time.Since(start).Round(time.Millisecond))
}
