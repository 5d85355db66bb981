package agentd

import (
	"context"
	"crypto/tls"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/a2abus/a2abus/agentbus/a2anats"
	"github.com/a2abus/a2abus/embedded/embeddedtest"
	"github.com/a2abus/a2abus/internal/demoagent"
	"github.com/a2aproject/a2a-go/v2/a2a"
	"github.com/a2aproject/a2a-go/v2/a2aclient"
	"github.com/a2aproject/a2a-go/v2/a2aclient/agentcard"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
)

// TestGatewayWithDemoAgents: `agentd --demo` serves the demo agents' cards
// and JSON-RPC endpoints; the a2a-go client resolves a card and runs
// SendMessage, streaming, GetTask and CancelTask through the bus.
func TestGatewayWithDemoAgents(t *testing.T) {
	cfg := testConfig(t)
	cfg.Demo = true
	cfg.DemoDelay = 200 * time.Millisecond
	d := startDaemon(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	base := "http://" + d.HTTPAddr() + "/a2a/"

	card, err := agentcard.DefaultResolver.Resolve(ctx, base+"echo")
	if err != nil {
		t.Fatal(err)
	}
	var urls []string
	for _, i := range card.SupportedInterfaces {
		urls = append(urls, string(i.ProtocolBinding)+" "+i.URL)
	}
	if got := strings.Join(urls, " "); !strings.HasPrefix(got, "JSONRPC "+base+"echo ") ||
		!strings.Contains(got, string(a2anats.ProtocolBinding)+" nats://127.0.0.1:") {
		t.Fatalf("interfaces %s: want the gateway's JSON-RPC endpoint first and the bus with the embedded server's address", got)
	}
	echo, err := a2aclient.NewFromCard(ctx, card)
	if err != nil {
		t.Fatal(err)
	}
	res, err := echo.SendMessage(ctx, &a2a.SendMessageRequest{Message: a2a.NewMessage(a2a.MessageRoleUser, a2a.NewTextPart("hi there"))})
	if err != nil {
		t.Fatal(err)
	}
	if m, ok := res.(*a2a.Message); !ok || demoagent.Text(m) != "hi there" {
		t.Fatalf("echo answered %#v", res)
	}

	card, err = agentcard.DefaultResolver.Resolve(ctx, base+"worker")
	if err != nil {
		t.Fatal(err)
	}
	worker, err := a2aclient.NewFromCard(ctx, card)
	if err != nil {
		t.Fatal(err)
	}
	var last a2a.Event
	n := 0
	for ev, err := range worker.SendStreamingMessage(ctx, &a2a.SendMessageRequest{Message: a2a.NewMessage(a2a.MessageRoleUser, a2a.NewTextPart("job"))}) {
		if err != nil {
			t.Fatal(err)
		}
		last = ev
		n++
	}
	st, ok := last.(*a2a.TaskStatusUpdateEvent)
	if !ok || st.Status.State != a2a.TaskStateCompleted || n != 4 {
		t.Fatalf("%d events, the last %#v; want 4 ending with completed", n, last)
	}
	task, err := worker.GetTask(ctx, &a2a.GetTaskRequest{ID: st.TaskID})
	if err != nil || task.Status.State != a2a.TaskStateCompleted {
		t.Fatalf("GetTask: %+v, %v", task, err)
	}
	res, err = worker.SendMessage(ctx, &a2a.SendMessageRequest{
		Message: a2a.NewMessage(a2a.MessageRoleUser, a2a.NewTextPart("cancel me")),
		Config:  &a2a.SendMessageConfig{ReturnImmediately: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	canceled, err := worker.CancelTask(ctx, &a2a.CancelTaskRequest{ID: res.(*a2a.Task).ID})
	if err != nil || canceled.Status.State != a2a.TaskStateCanceled {
		t.Fatalf("CancelTask: %+v, %v", canceled, err)
	}
	if _, err := worker.GetTask(ctx, &a2a.GetTaskRequest{ID: "no-such-task"}); err == nil {
		t.Fatal("GetTask of an unknown task did not fail")
	}

	// The calls are counted where they ran and where they came in.
	_, body := get(t, d, "/metrics")
	for _, want := range []string{
		`a2abus_a2a_calls_total{agent="echo",code="ok",method="SendMessage"} 1`,
		`a2abus_a2a_calls_total{agent="worker",code="ok",method="SendStreamingMessage"} 1`,
		`a2abus_a2a_calls_total{agent="worker",code="-32001",method="GetTask"} 1`,
		`a2abus_a2a_calls_running{agent="worker"}`,
		`a2abus_gateway_requests_total{binding="card",status="200"} 2`,
		`a2abus_gateway_requests_total{binding="jsonrpc",status="200"} 6`,
		`a2abus_gateway_request_seconds_count{binding="jsonrpc"} 6`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	problems, err := promlint.New(strings.NewReader(body)).Lint()
	if err != nil || len(problems) > 0 {
		t.Fatalf("promlint: %v %v", problems, err)
	}
}

// TestGatewayClientCertificates: with --http-client-ca the gateway serves
// HTTPS and lets in calls with a certificate the CA signed; the health
// checks stay open to clients without one.
func TestGatewayClientCertificates(t *testing.T) {
	certs := embeddedtest.NewCerts(t)
	cfg := testConfig(t)
	cfg.Demo = true
	cfg.HTTPTLSCert, cfg.HTTPTLSKey, cfg.HTTPClientCA = certs.ServerCertFile, certs.ServerKeyFile, certs.CAFile
	d := startDaemon(t, cfg)

	roots, clientCert := certs.Pool, certs.Client
	send := `{"jsonrpc":"2.0","id":1,"method":"SendMessage","params":{"message":{"messageId":"m1","role":"ROLE_USER","parts":[{"text":"hi"}]}}}`
	for _, tc := range []struct {
		name   string
		certs  []tls.Certificate
		path   string
		status int
	}{
		{"with a client certificate", []tls.Certificate{clientCert}, "/a2a/echo", http.StatusOK},
		{"without one", nil, "/a2a/echo", http.StatusUnauthorized},
		{"health check without one", nil, "/healthz", http.StatusOK},
	} {
		hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: tc.certs}}}
		method, body := http.MethodPost, strings.NewReader(send)
		if tc.path == "/healthz" {
			method = http.MethodGet
		}
		req, _ := http.NewRequest(method, "https://"+d.HTTPAddr()+tc.path, body)
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Fatalf("%s: HTTP %d, want %d", tc.name, resp.StatusCode, tc.status)
		}
	}
}

func TestGatewayConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		set  func(*Config)
		want string
	}{
		{func(c *Config) { c.HTTPTLSCert = "c.pem" }, "give both or neither"},
		{func(c *Config) { c.HTTPClientCA = "ca.pem" }, "--http-client-ca needs"},
		{func(c *Config) { c.A2AMode = "fast" }, "--a2a-mode"},
		{func(c *Config) { c.Sidecars = "x=ftp://h/" }, "--sidecars"},
		{func(c *Config) { c.HTTPPublicURL = "a2a.example.com" }, "--http-public-url"},
	} {
		cfg := DefaultConfig()
		tc.set(&cfg)
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate: %v, want an error with %q", err, tc.want)
		}
	}
}

// TestShutdownWithStreamOpen: a stream whose task would run for a minute
// does not hold the shutdown up: it ends with an error after the grace,
// and the shutdown finishes without one.
func TestShutdownWithStreamOpen(t *testing.T) {
	cfg := testConfig(t)
	cfg.Demo = true
	cfg.DemoDelay = time.Minute
	d := NewDaemon(cfg, testLogger(t))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := d.Start(ctx); err != nil {
		t.Fatal(err)
	}
	card, err := agentcard.DefaultResolver.Resolve(ctx, "http://"+d.HTTPAddr()+"/a2a/worker")
	if err != nil {
		t.Fatal(err)
	}
	worker, err := a2aclient.NewFromCard(ctx, card)
	if err != nil {
		t.Fatal(err)
	}
	working := make(chan struct{})
	ended := make(chan error, 1)
	go func() {
		var last error
		for ev, err := range worker.SendStreamingMessage(ctx, &a2a.SendMessageRequest{Message: a2a.NewMessage(a2a.MessageRoleUser, a2a.NewTextPart("long"))}) {
			if st, ok := ev.(*a2a.TaskStatusUpdateEvent); ok && st.Status.State == a2a.TaskStateWorking {
				close(working)
			}
			last = err
		}
		ended <- last
	}()
	select {
	case <-working:
	case err := <-ended:
		t.Fatalf("stream ended before the task was working: %v", err)
	}
	// A budget far above the graces, so that a loaded machine cannot fail
	// the test; without them the open stream would hold Shutdown to it.
	sctx, scancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer scancel()
	if err := d.Shutdown(sctx); err != nil {
		t.Fatalf("shutdown with a stream open: %v", err)
	}
	if err := <-ended; err == nil {
		t.Fatal("the stream of a task canceled by the shutdown ended without an error")
	}
}
