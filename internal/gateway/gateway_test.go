package gateway_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/a2abus/a2abus/agentbus/a2anats"
	"github.com/a2abus/a2abus/agentbus/a2anats/a2anatstest"
	"github.com/a2abus/a2abus/embedded"
	"github.com/a2abus/a2abus/embedded/embeddedtest"
	"github.com/a2abus/a2abus/internal/demoagent"
	"github.com/a2abus/a2abus/internal/gateway"
	"github.com/a2aproject/a2a-go/v2/a2a"
	"github.com/a2aproject/a2a-go/v2/a2aclient"
	"github.com/a2aproject/a2a-go/v2/a2aclient/agentcard"
	"github.com/a2aproject/a2a-go/v2/a2asrv"
)

func testCtx(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// startGateway serves a gateway over its own bus on an httptest server.
func startGateway(t *testing.T, srv *embedded.Server, cfg gateway.Config) *httptest.Server {
	t.Helper()
	return serveHTTP(t, newGateway(t, srv, cfg))
}

// newGateway is a gateway over its own bus.
func newGateway(t *testing.T, srv *embedded.Server, cfg gateway.Config) *gateway.Gateway {
	t.Helper()
	bus := a2anatstest.ConnectBus(t, srv)
	reg, err := a2anats.NewRegistry(testCtx(t, 30*time.Second), bus)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Logger = embeddedtest.Logger(t)
	gw, err := gateway.New(bus, reg, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(gw.Close)
	return gw
}

// serveHTTP serves gw on an httptest server.
func serveHTTP(t *testing.T, gw *gateway.Gateway) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle(gateway.Prefix, gw)
	hs := httptest.NewServer(mux)
	t.Cleanup(hs.Close)
	return hs
}

func demo(t *testing.T) *httptest.Server {
	srv := embeddedtest.RunServer(t)
	a2anatstest.Host(t, srv, map[string]a2asrv.AgentExecutor{
		"echo": demoagent.Echo{}, "worker": demoagent.Worker{Delay: 50 * time.Millisecond},
		"slow": demoagent.Worker{Delay: time.Minute},
	})
	return startGateway(t, srv, gateway.Config{})
}

// sdkClient resolves agent's card from the gateway and makes an a2a-go
// client from it, as any A2A client would.
func sdkClient(t *testing.T, hs *httptest.Server, agent string) (*a2aclient.Client, *a2a.AgentCard) {
	t.Helper()
	ctx := testCtx(t, 30*time.Second)
	card, err := agentcard.DefaultResolver.Resolve(ctx, hs.URL+gateway.Prefix+agent)
	if err != nil {
		t.Fatalf("resolve %s's card: %v", agent, err)
	}
	c, err := a2aclient.NewFromCard(ctx, card)
	if err != nil {
		t.Fatalf("client from %s's card: %v", agent, err)
	}
	return c, card
}

func text(s string) *a2a.SendMessageRequest {
	return &a2a.SendMessageRequest{Message: a2a.NewMessage(a2a.MessageRoleUser, a2a.NewTextPart(s))}
}

func TestCardPointsAtGatewayAndBus(t *testing.T) {
	hs := demo(t)
	_, card := sdkClient(t, hs, "echo")
	var urls []string
	for _, i := range card.SupportedInterfaces {
		urls = append(urls, string(i.ProtocolBinding)+" "+string(i.ProtocolVersion)+" "+i.URL)
	}
	want := []string{
		"JSONRPC 1.0 " + hs.URL + "/a2a/echo",
		"HTTP+JSON 1.0 " + hs.URL + "/a2a/echo/rest",
		"JSONRPC 0.3 " + hs.URL + "/a2a/echo/v0.3",
		string(a2anats.ProtocolBinding) + " 1.0 nats://localhost/a2a/echo",
	}
	if strings.Join(urls, "\n") != strings.Join(want, "\n") {
		t.Fatalf("interfaces\n%s\nwant\n%s", strings.Join(urls, "\n"), strings.Join(want, "\n"))
	}
	if card.Name != "echo" || !card.Capabilities.Streaming {
		t.Fatalf("card %+v", card)
	}
}

func TestSDKClientThroughGateway(t *testing.T) {
	hs := demo(t)
	ctx := testCtx(t, time.Minute)

	echo, _ := sdkClient(t, hs, "echo")
	res, err := echo.SendMessage(ctx, text("hello"))
	if err != nil {
		t.Fatal(err)
	}
	if msg, ok := res.(*a2a.Message); !ok || demoagent.Text(msg) != "hello" {
		t.Fatalf("echo answered %#v", res)
	}

	worker, _ := sdkClient(t, hs, "worker")
	a2anatstest.WorkerJob(t, ctx, worker)

	slow, _ := sdkClient(t, hs, "slow")
	req := text("long")
	req.Config = &a2a.SendMessageConfig{ReturnImmediately: true}
	res, err = slow.SendMessage(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	running, ok := res.(*a2a.Task)
	if !ok {
		t.Fatalf("slow answered %T, want a task", res)
	}
	canceled, err := slow.CancelTask(ctx, &a2a.CancelTaskRequest{ID: running.ID})
	if err != nil || canceled.Status.State != a2a.TaskStateCanceled {
		t.Fatalf("CancelTask: %+v, %v", canceled, err)
	}
	_, err = slow.GetTask(ctx, &a2a.GetTaskRequest{ID: "no-such-task"})
	if !errors.Is(err, a2a.ErrTaskNotFound) {
		t.Fatalf("GetTask of an unknown task: %v, want ErrTaskNotFound", err)
	}
}

// rpcError is the error member of a JSON-RPC response.
type rpcError struct {
	Error *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func post(t *testing.T, url, body string, header ...string) (int, rpcError, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(testCtx(t, 30*time.Second), http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var r rpcError
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatalf("answer is not JSON: %q", raw)
	}
	return resp.StatusCode, r, string(raw)
}

// TestBadRequests: bad input gets its JSON-RPC / A2A error code, never a
// 500 or a stack trace.
func TestBadRequests(t *testing.T) {
	hs := demo(t)
	getTask := `{"jsonrpc":"2.0","id":1,"method":"GetTask","params":{"id":"no-such-task"}}`
	cases := []struct {
		name, path, body string
		status, code     int
	}{
		{"malformed JSON", "/a2a/echo", `{"jsonrpc":"2.0","id":1,`, 200, -32700},
		{"not JSON-RPC", "/a2a/echo", `{"id":1,"method":"GetTask"}`, 200, -32600},
		{"unknown method", "/a2a/echo", `{"jsonrpc":"2.0","id":1,"method":"Frobnicate","params":{}}`, 200, -32601},
		{"bad params", "/a2a/echo", `{"jsonrpc":"2.0","id":1,"method":"GetTask","params":{"id":7}}`, 200, -32602},
		{"unknown task", "/a2a/worker", getTask, 200, -32001},
		{"unknown agent", "/a2a/nobody", getTask, 404, -32000},
		{"invalid agent ID", "/a2a/no.body", getTask, 404, -32000},
		{"oversize body", "/a2a/echo", `{"jsonrpc":"2.0","id":1,"method":"SendMessage","params":"` + strings.Repeat("x", gateway.MaxBodySize) + `"}`, 413, -32600},
		{"no such endpoint", "/a2a/echo/elsewhere", getTask, 404, -32601},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, r, raw := post(t, hs.URL+tc.path, tc.body)
			if status != tc.status || r.Error == nil || r.Error.Code != tc.code {
				t.Fatalf("HTTP %d %.300s; want HTTP %d and code %d", status, raw, tc.status, tc.code)
			}
			if strings.Contains(raw, "goroutine") || r.Error.Message == "" {
				t.Fatalf("error answer %q: want a message, no trace", raw)
			}
		})
	}
}

func TestTokenAndLoopback(t *testing.T) {
	srv := embeddedtest.RunServer(t)
	a2anatstest.Host(t, srv, map[string]a2asrv.AgentExecutor{"echo": demoagent.Echo{}})
	hs := startGateway(t, srv, gateway.Config{Token: "s3cret"})
	send := `{"jsonrpc":"2.0","id":1,"method":"SendMessage","params":{"message":{"messageId":"m1","role":"ROLE_USER","parts":[{"text":"hi"}]}}}`

	status, r, raw := post(t, hs.URL+"/a2a/echo", send)
	if status != http.StatusUnauthorized || r.Error == nil || r.Error.Code != -31401 {
		t.Fatalf("no token: HTTP %d %s", status, raw)
	}
	status, _, raw = post(t, hs.URL+"/a2a/echo", send, "Authorization", "Bearer wrong")
	if status != http.StatusUnauthorized {
		t.Fatalf("wrong token: HTTP %d %s", status, raw)
	}
	status, r, raw = post(t, hs.URL+"/a2a/echo", send, "Authorization", "Bearer s3cret")
	if status != http.StatusOK || r.Error != nil || !strings.Contains(raw, `"hi"`) {
		t.Fatalf("right token: HTTP %d %s", status, raw)
	}
	// The card says how to authenticate.
	_, card := sdkClient(t, hs, "echo")
	if _, ok := card.SecuritySchemes["bearer"]; !ok || len(card.SecurityRequirements) != 1 {
		t.Fatalf("card security %+v %+v, want the bearer scheme required", card.SecuritySchemes, card.SecurityRequirements)
	}

	// Without a token or client certificates, only loopback clients are
	// let in.
	open := startGateway(t, srv, gateway.Config{})
	gw := open.Config.Handler
	for _, tc := range []struct {
		remote string
		status int
	}{{"127.0.0.1:5000", http.StatusOK}, {"[::1]:5000", http.StatusOK}, {"10.1.2.3:5000", http.StatusForbidden}} {
		req := httptest.NewRequestWithContext(testCtx(t, 30*time.Second), http.MethodPost, "/a2a/echo", strings.NewReader(send))
		req.RemoteAddr = tc.remote
		rec := httptest.NewRecorder()
		gw.ServeHTTP(rec, req)
		if rec.Code != tc.status {
			t.Fatalf("client %s: HTTP %d %s, want %d", tc.remote, rec.Code, rec.Body, tc.status)
		}
	}
}

// TestHTTPJSONBinding: the SDK client on the HTTP+JSON binding alone.
func TestHTTPJSONBinding(t *testing.T) {
	hs := demo(t)
	ctx := testCtx(t, time.Minute)
	_, card := sdkClient(t, hs, "worker")
	c, err := a2aclient.NewFromEndpoints(ctx, []*a2a.AgentInterface{card.SupportedInterfaces[1]})
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.SendMessage(ctx, text("rest job"))
	if err != nil {
		t.Fatal(err)
	}
	task, ok := res.(*a2a.Task)
	if !ok || task.Status.State != a2a.TaskStateCompleted {
		t.Fatalf("SendMessage over HTTP+JSON: %#v", res)
	}
	got, err := c.GetTask(ctx, &a2a.GetTaskRequest{ID: task.ID})
	if err != nil || got.ID != task.ID {
		t.Fatalf("GetTask over HTTP+JSON: %+v, %v", got, err)
	}
	_, err = c.GetTask(ctx, &a2a.GetTaskRequest{ID: "no-such-task"})
	if !errors.Is(err, a2a.ErrTaskNotFound) {
		t.Fatalf("GetTask of an unknown task over HTTP+JSON: %v", err)
	}
}

func TestPublicURL(t *testing.T) {
	srv := embeddedtest.RunServer(t)
	a2anatstest.Host(t, srv, map[string]a2asrv.AgentExecutor{"echo": demoagent.Echo{}})
	hs := startGateway(t, srv, gateway.Config{PublicURL: "https://a2a.example.com/bus/"})
	_, card := sdkClient(t, hs, "echo")
	if got := card.SupportedInterfaces[0].URL; got != "https://a2a.example.com/bus/a2a/echo" {
		t.Fatalf("card's JSON-RPC URL %s, want the public URL's", got)
	}
}

func TestListAgents(t *testing.T) {
	hs := demo(t)
	resp, err := http.Get(hs.URL + "/a2a/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got struct{ Agents []string }
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	if strings.Join(got.Agents, ",") != "echo,slow,worker" {
		t.Fatalf("agents %v", got.Agents)
	}
}

// TestCardRefreshUnderLoad: cards expiring while calls run (a TTL of a
// millisecond) are read again without a race, and a removed agent becomes
// unknown.
func TestCardRefreshUnderLoad(t *testing.T) {
	srv := embeddedtest.RunServer(t)
	a2anatstest.Host(t, srv, map[string]a2asrv.AgentExecutor{"echo": demoagent.Echo{}})
	hs := startGateway(t, srv, gateway.Config{CardTTL: time.Millisecond})
	c, _ := sdkClient(t, hs, "echo")
	ctx := testCtx(t, time.Minute)
	errs := make(chan error, 8)
	for range 8 {
		go func() {
			for range 25 {
				if _, err := c.SendMessage(ctx, text("x")); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	reg, err := a2anats.NewRegistry(ctx, a2anatstest.ConnectBus(t, srv))
	if err != nil {
		t.Fatal(err)
	}
	if err := reg.Remove(ctx, "echo"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Millisecond) // past the TTL
	status, r, raw := post(t, hs.URL+"/a2a/echo", `{"jsonrpc":"2.0","id":1,"method":"GetTask","params":{"id":"t"}}`)
	if status != http.StatusNotFound || r.Error == nil || r.Error.Code != -32000 {
		t.Fatalf("removed agent: HTTP %d %s", status, raw)
	}
}

// TestVersionNotSupported: a call asking for an A2A version its endpoint
// does not serve gets VersionNotSupportedError (JSON-RPC -32009, an HTTP
// error over HTTP+JSON) instead of being served; 1.0 and no version are
// served.
func TestVersionNotSupported(t *testing.T) {
	hs := demo(t)
	send := `{"jsonrpc":"2.0","id":1,"method":"SendMessage","params":{"message":{"role":"ROLE_USER","messageId":"m-%s","parts":[{"text":"hi"}]}}}`
	for _, v := range []string{"", "1.0", "1.0.1"} {
		_, r, raw := post(t, hs.URL+"/a2a/echo", fmt.Sprintf(send, v), "A2A-Version", v)
		if r.Error != nil {
			t.Fatalf("A2A-Version %q: %s, want an answer", v, raw)
		}
	}
	for _, v := range []string{"99.0", "0.3", "1.1"} {
		_, r, raw := post(t, hs.URL+"/a2a/echo", fmt.Sprintf(send, v), "A2A-Version", v)
		if r.Error == nil || r.Error.Code != -32009 {
			t.Fatalf("A2A-Version %q on the 1.0 endpoint: %s, want error -32009", v, raw)
		}
	}
	status, _, raw := post(t, hs.URL+"/a2a/echo/rest/message:send", `{"message":{"role":"ROLE_USER","messageId":"m-rest","parts":[{"text":"hi"}]}}`, "A2A-Version", "99.0")
	if status < 400 || !strings.Contains(raw, "VERSION_NOT_SUPPORTED") {
		t.Fatalf("A2A-Version 99.0 over HTTP+JSON: %d %s, want an HTTP error naming VERSION_NOT_SUPPORTED", status, raw)
	}
}

// TestContentType: a JSON-RPC request whose body is said not to be JSON
// gets ContentTypeNotSupportedError (-32005); application/json with a
// charset is served.
func TestContentType(t *testing.T) {
	hs := demo(t)
	send := `{"jsonrpc":"2.0","id":1,"method":"SendMessage","params":{"message":{"role":"ROLE_USER","messageId":"m-ct","parts":[{"text":"hi"}]}}}`
	status, r, raw := post(t, hs.URL+"/a2a/echo", send, "Content-Type", "text/plain")
	if r.Error == nil || r.Error.Code != -32005 || status != http.StatusUnsupportedMediaType {
		t.Fatalf("Content-Type text/plain: %d %s, want 415 with error -32005", status, raw)
	}
	if _, r, raw = post(t, hs.URL+"/a2a/echo", send, "Content-Type", "application/json; charset=utf-8"); r.Error != nil {
		t.Fatalf("Content-Type application/json; charset=utf-8: %s, want an answer", raw)
	}
}
