//go:build deploy

package deploytest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// natsServerVersion is the nats-server the deployment runs: the one go.mod
// pins and the compose file's image carries.
const natsServerVersion = "v2.15.2"

// binaries are the programs the deployment runs.
type binaries struct {
	natsServer, agentd, scalerd string
}

// repoRoot is the repository's directory: two up from this package.
func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"nats.conf", filepath.Join("deploy", "nats-cluster.conf"), "go.mod"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Fatalf("repository at %s: %v", dir, err)
		}
	}
	return dir
}

// buildBinaries builds agentd and scalerd from the repository (or takes
// them from the directory A2ABUS_DEPLOY_BIN names, to run the test against
// other builds) and finds or installs nats-server.
func buildBinaries(t *testing.T, repo string) binaries {
	t.Helper()
	dir := t.TempDir()
	if bin := os.Getenv("A2ABUS_DEPLOY_BIN"); bin != "" {
		nats, err := natsServer(dir)
		if err != nil {
			t.Fatalf("nats-server %s is needed: %v", natsServerVersion, err)
		}
		t.Logf("agentd and scalerd from A2ABUS_DEPLOY_BIN=%s", bin)
		return binaries{natsServer: nats, agentd: filepath.Join(bin, "agentd"), scalerd: filepath.Join(bin, "scalerd")}
	}
	var (
		wg       sync.WaitGroup
		nats     string
		natsErr  error
		buildOut []byte
		buildErr error
	)
	wg.Go(func() { nats, natsErr = natsServer(dir) })
	wg.Go(func() {
		cmd := exec.Command("go", "build", "-o", dir+string(filepath.Separator), "./cmd/agentd", "./cmd/scalerd")
		cmd.Dir = repo
		buildOut, buildErr = cmd.CombinedOutput()
	})
	wg.Wait()
	if buildErr != nil {
		t.Fatalf("go build ./cmd/agentd ./cmd/scalerd: %v\n%s", buildErr, buildOut)
	}
	if natsErr != nil {
		t.Fatalf("nats-server %s is needed: %v. Install it with `go install github.com/nats-io/nats-server/v2@%s` "+
			"and put it on PATH, or set A2ABUS_NATS_SERVER to its path", natsServerVersion, natsErr, natsServerVersion)
	}
	return binaries{natsServer: nats, agentd: filepath.Join(dir, "agentd"), scalerd: filepath.Join(dir, "scalerd")}
}

// natsServer returns a nats-server of natsServerVersion: A2ABUS_NATS_SERVER,
// else the one on PATH if it is that version, else one go install puts in
// dir.
func natsServer(dir string) (string, error) {
	if p := os.Getenv("A2ABUS_NATS_SERVER"); p != "" {
		if err := checkNATSVersion(p); err != nil {
			return "", fmt.Errorf("A2ABUS_NATS_SERVER: %w", err)
		}
		return p, nil
	}
	if p, err := exec.LookPath("nats-server"); err == nil && checkNATSVersion(p) == nil {
		return p, nil
	}
	cmd := exec.Command("go", "install", "github.com/nats-io/nats-server/v2@"+natsServerVersion)
	cmd.Env = append(os.Environ(), "GOBIN="+dir)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("none on PATH, and go install failed: %v: %s", err, bytes.TrimSpace(out))
	}
	p := filepath.Join(dir, "nats-server")
	return p, checkNATSVersion(p)
}

func checkNATSVersion(path string) error {
	out, err := exec.Command(path, "--version").CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s --version: %v", path, err)
	}
	if got := strings.TrimSpace(string(out)); !strings.HasSuffix(got, " "+natsServerVersion) {
		return fmt.Errorf("%s is %q, want %s", path, got, natsServerVersion)
	}
	return nil
}

// freePorts returns n TCP ports free on 127.0.0.1 now. They are held
// together while they are picked, so they differ; another process could
// take one before the test binds it, which fails the test loudly.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			_ = ln.Close()
		}
	}()
	ports := make([]int, n)
	for i := range ports {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		ports[i] = ln.Addr().(*net.TCPAddr).Port
	}
	return ports
}

// proc is a process the test started, its output in a log file.
type proc struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	started time.Time
	done    chan struct{} // closed when the process has exited
	err     error         // its exit status, set before done is closed
}

// startProc starts bin with args in dir, its environment the test's plus
// env, stdout and stderr into logDir/name.log. The test's cleanup stops it
// (SIGTERM, then SIGKILL after 10 s) and, when the test failed, logs the
// end of its output.
func startProc(t *testing.T, logDir, name, dir string, env []string, bin string, args ...string) *proc {
	t.Helper()
	logPath := filepath.Join(logDir, name+".log")
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "=== %s %s\n", bin, strings.Join(args, " "))
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = f, f
	p := &proc{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	p.started = time.Now()
	if err := cmd.Start(); err != nil {
		_ = f.Close()
		t.Fatalf("%s: %v", name, err)
	}
	go func() {
		p.err = cmd.Wait()
		_ = f.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = p.stop(10 * time.Second)
		if t.Failed() {
			t.Logf("--- the end of %s's output (%s):\n%s", name, logPath, p.tail(40))
		}
	})
	return p
}

// exited reports whether the process has ended, and how.
func (p *proc) exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}

// stop sends SIGTERM and waits up to grace for the process to exit, then
// kills it. It returns the exit status of a process that exited on its own
// after SIGTERM (nil for exit 0); stopping a stopped process is a no-op.
func (p *proc) stop(grace time.Duration) error {
	if done, err := p.exited(); done {
		return err
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.err
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("%s did not exit within %v of SIGTERM: killed", p.name, grace)
	}
}

// kill sends SIGKILL (kill -9) and waits for the process to be gone.
func (p *proc) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// output returns the process's log so far.
func (p *proc) output() string {
	b, _ := os.ReadFile(p.logPath)
	return string(b)
}

// tail returns the last n lines of the process's log.
func (p *proc) tail(n int) string {
	var lines []string
	sc := bufio.NewScanner(strings.NewReader(p.output()))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// errExited is returned by waits that gave up because the process ended.
var errExited = errors.New("process exited")

// waitFor calls cond every interval until it returns true, the process p
// (when not nil) exits, or ctx ends.
func waitFor(ctx context.Context, p *proc, interval time.Duration, cond func() bool) error {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		if cond() {
			return nil
		}
		if p != nil {
			if done, err := p.exited(); done {
				return fmt.Errorf("%s: %w (%v)", p.name, errExited, err)
			}
		}
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-tick.C:
		}
	}
}
