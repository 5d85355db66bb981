//go:build deploy

package deploytest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/a2abus/a2abus/agentbus"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// pool is the pool the agentds host the demo agents in, as compose runs it.
const pool = "agentd"

// deployment is the three servers, the agentds and scalerd, as processes.
type deployment struct {
	t           *testing.T
	repo        string
	bin         binaries
	logs        string
	servers     []*server
	agentds     []*agentdProc
	scalerd     *proc
	scalerdHTTP int

	nc *nats.Conn // the test's own connection, to every server
	js jetstream.JetStream
}

// server is one nats-server process and what it listens on.
type server struct {
	name                   string
	client, monitor, route int
	dir                    string // its store directory
	proc                   *proc
}

func (s *server) url() string        { return fmt.Sprintf("nats://127.0.0.1:%d", s.client) }
func (s *server) monitorURL() string { return fmt.Sprintf("http://127.0.0.1:%d", s.monitor) }

// agentdProc is one agentd process, its A2A gateway and the server it
// lists first.
type agentdProc struct {
	*proc
	name   string
	http   int
	server *server
}

func (a *agentdProc) baseURL() string { return fmt.Sprintf("http://127.0.0.1:%d", a.http) }

func newDeployment(t *testing.T) *deployment {
	t.Helper()
	repo := repoRoot(t)
	d := &deployment{t: t, repo: repo, bin: buildBinaries(t, repo), logs: t.TempDir()}
	ports := freePorts(t, 3*3+3+1)
	for i := range 3 {
		d.servers = append(d.servers, &server{
			name:   fmt.Sprintf("nats-%d", i+1),
			client: ports[3*i], monitor: ports[3*i+1], route: ports[3*i+2],
			dir: filepath.Join(t.TempDir(), "data"),
		})
	}
	for i := range 3 {
		d.agentds = append(d.agentds, &agentdProc{name: fmt.Sprintf("agentd-%d", i+1), http: ports[9+i], server: d.servers[i]})
	}
	d.scalerdHTTP = ports[12]
	t.Logf("logs in %s", d.logs)
	return d
}

// routes is A2ABUS_NATS_ROUTES: every server's route URL, as a NATS list.
func (d *deployment) routes() string {
	var urls []string
	for _, s := range d.servers {
		urls = append(urls, fmt.Sprintf("nats-route://127.0.0.1:%d", s.route))
	}
	return "[" + strings.Join(urls, ", ") + "]"
}

// startServer starts server i from the shipped configuration, as the
// README's recipe does on a host of its own, with the ports of three
// servers on one machine given as flags (which win over the file).
func (d *deployment) startServer(i int) {
	s := d.servers[i]
	env := []string{
		"A2ABUS_NATS_NAME=" + s.name,
		"A2ABUS_NATS_STORE_DIR=" + s.dir,
		"A2ABUS_NATS_ROUTES=" + d.routes(),
	}
	s.proc = startProc(d.t, d.logs, s.name, d.repo, env, d.bin.natsServer,
		"-c", filepath.Join("deploy", "nats-cluster.conf"),
		"-a", "127.0.0.1", "-p", fmt.Sprint(s.client),
		"-m", fmt.Sprint(s.monitor),
		"--cluster", fmt.Sprintf("nats://127.0.0.1:%d", s.route))
}

// serverURLs lists the servers' client URLs, server first's first and the
// others in order: what an agentd on first's host is given.
func (d *deployment) serverURLs(first int) string {
	urls := []string{d.servers[first].url()}
	for i, s := range d.servers {
		if i != first {
			urls = append(urls, s.url())
		}
	}
	return strings.Join(urls, ",")
}

// startAgentd starts agentd i with the demo agents in pool agentd, its own
// server first in --nats.
func (d *deployment) startAgentd(i int) *agentdProc {
	a := d.agentds[i]
	a.proc = startProc(d.t, d.logs, a.name, d.t.TempDir(), nil, d.bin.agentd,
		"--nats", d.serverURLs(i), "--http", fmt.Sprintf("127.0.0.1:%d", a.http), "--grpc", "127.0.0.1:0", "--demo", "--pool", pool)
	return a
}

func (d *deployment) startScalerd() {
	d.scalerd = startProc(d.t, d.logs, "scalerd", d.t.TempDir(), nil, d.bin.scalerd,
		"--nats", d.serverURLs(0), "--http", fmt.Sprintf("127.0.0.1:%d", d.scalerdHTTP))
}

// connect opens the test's connection to every server, for the JetStream
// API.
func (d *deployment) connect() {
	var urls []string
	for _, s := range d.servers {
		urls = append(urls, s.url())
	}
	nc, err := nats.Connect(strings.Join(urls, ","), nats.Name("deploytest"), nats.MaxReconnects(-1),
		nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		d.t.Fatal(err)
	}
	d.t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		d.t.Fatal(err)
	}
	d.nc, d.js = nc, js
}

// connectTo opens a connection to server s alone.
func (d *deployment) connectTo(s *server) (*nats.Conn, jetstream.JetStream) {
	nc, err := nats.Connect(s.url(), nats.Name("deploytest-"+s.name), nats.MaxReconnects(-1),
		nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		d.t.Fatal(err)
	}
	d.t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		d.t.Fatal(err)
	}
	return nc, js
}

// serverNamed returns the server called name, or nil.
func (d *deployment) serverNamed(name string) *server {
	for _, s := range d.servers {
		if s.name == name {
			return s
		}
	}
	return nil
}

// httpClient is for every HTTP call of the test: bounded per call.
var httpClient = &http.Client{Timeout: 10 * time.Second}

// get returns the status and body of GET url; status 0 when no answer.
func get(ctx context.Context, url string) (int, string) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err.Error()
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// rpcError is a JSON-RPC error answer.
type rpcError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

func (e *rpcError) Error() string { return fmt.Sprintf("JSON-RPC error %d: %s", e.Code, e.Message) }

// call makes one JSON-RPC call to url and returns its result.
func call(ctx context.Context, url, method string, params any) (json.RawMessage, error) {
	body, err := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := httpClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	var out struct {
		Result json.RawMessage `json:"result"`
		Error  *rpcError       `json:"error"`
	}
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("HTTP %d, not JSON-RPC: %s", resp.StatusCode, b)
	}
	if out.Error != nil {
		return nil, out.Error
	}
	if resp.StatusCode != http.StatusOK || out.Result == nil {
		return nil, fmt.Errorf("HTTP %d: %s", resp.StatusCode, b)
	}
	return out.Result, nil
}

// part, message and task are the A2A 1.0 JSON the gateway answers with.
type part struct {
	Kind string `json:"kind,omitempty"` // 0.3 only
	Text string `json:"text"`
}

type message struct {
	MessageID string `json:"messageId"`
	Role      string `json:"role"`
	Parts     []part `json:"parts"`
}

type task struct {
	ID     string `json:"id"`
	Status struct {
		State string `json:"state"`
	} `json:"status"`
	Artifacts []struct {
		Parts []part `json:"parts"`
	} `json:"artifacts"`
}

func texts(parts []part) string {
	var s []string
	for _, p := range parts {
		s = append(s, p.Text)
	}
	return strings.Join(s, "")
}

// sendMessage calls SendMessage (A2A 1.0 JSON-RPC) on agent through a's
// gateway with one text part.
func (a *agentdProc) sendMessage(ctx context.Context, agent, id, text string) (*message, *task, error) {
	res, err := call(ctx, a.baseURL()+"/a2a/"+agent, "SendMessage", map[string]any{
		"message": message{MessageID: id, Role: "ROLE_USER", Parts: []part{{Text: text}}},
	})
	if err != nil {
		return nil, nil, err
	}
	var out struct {
		Message *message `json:"message"`
		Task    *task    `json:"task"`
	}
	if err := json.Unmarshal(res, &out); err != nil {
		return nil, nil, fmt.Errorf("SendMessage result %s: %w", res, err)
	}
	return out.Message, out.Task, nil
}

// poolConsumers returns the partition consumers of pool p and how many of
// them have a pull waiting, as the JetStream API answers.
func poolConsumers(ctx context.Context, js jetstream.JetStream, p string) (infos []*jetstream.ConsumerInfo, waiting int, err error) {
	s, err := js.Stream(ctx, agentbus.StreamName)
	if err != nil {
		return nil, 0, err
	}
	l := s.ListConsumers(ctx)
	for ci := range l.Info() {
		if !strings.HasPrefix(ci.Name, p+"_p") {
			continue
		}
		infos = append(infos, ci)
		if ci.NumWaiting > 0 {
			waiting++
		}
	}
	return infos, waiting, l.Err()
}

// members returns the live members of pool p as they report themselves.
func members(ctx context.Context, js jetstream.JetStream, p string) ([]agentbus.Member, error) {
	kv, err := js.KeyValue(ctx, agentbus.MembersBucket)
	if err != nil {
		return nil, err
	}
	keys, err := kv.ListKeys(ctx, jetstream.MetaOnly())
	if err != nil {
		return nil, err
	}
	var out []agentbus.Member
	for k := range keys.Keys() {
		if !strings.HasPrefix(k, p+".") {
			continue
		}
		e, err := kv.Get(ctx, k)
		if err != nil {
			continue // gone since listed
		}
		var m agentbus.Member
		if json.Unmarshal(e.Value(), &m) == nil {
			out = append(out, m)
		}
	}
	return out, nil
}

// readyLine is what agentd logs once connected: the server it is on.
var readyLine = regexp.MustCompile(`msg="agentd ready".* nats=(\S+)`)

// connectedTo returns the server URL agentd a logged it is connected to.
func (a *agentdProc) connectedTo() string {
	m := readyLine.FindStringSubmatch(a.output())
	if m == nil {
		return ""
	}
	return m[1]
}

// metric returns the value of the first series of a's /metrics whose line
// starts with name, or "".
func (a *agentdProc) metric(ctx context.Context, name string) string {
	code, body := get(ctx, a.baseURL()+"/metrics")
	if code != http.StatusOK {
		return ""
	}
	for line := range strings.Lines(body) {
		if strings.HasPrefix(line, name) {
			f := strings.Fields(line)
			return f[len(f)-1]
		}
	}
	return ""
}

// jszLeader returns the leader of stream as server s sees it (its
// monitoring endpoint's /jsz?streams=true, a local view with no JetStream
// API round trip), or "" when it knows none.
func jszLeader(ctx context.Context, s *server, stream string) (string, error) {
	code, body := get(ctx, s.monitorURL()+"/jsz?streams=true")
	if code != http.StatusOK {
		return "", fmt.Errorf("%s /jsz: HTTP %d %s", s.name, code, body)
	}
	var jsz struct {
		Accounts []struct {
			Streams []struct {
				Name    string `json:"name"`
				Cluster *struct {
					Leader string `json:"leader"`
				} `json:"cluster"`
			} `json:"stream_detail"`
		} `json:"account_details"`
	}
	if err := json.Unmarshal([]byte(body), &jsz); err != nil {
		return "", fmt.Errorf("%s /jsz: %w", s.name, err)
	}
	for _, a := range jsz.Accounts {
		for _, st := range a.Streams {
			if st.Name == stream && st.Cluster != nil {
				return st.Cluster.Leader, nil
			}
		}
	}
	return "", nil
}
