package agentd

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// otlpReceiver is an OTLP/HTTP trace receiver: it decodes what exporters
// post to /v1/traces and keeps the spans with their service names.
type otlpReceiver struct {
	mu    sync.Mutex
	spans map[string][]*tracepb.Span // service name -> spans
}

func (rc *otlpReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	var req collectortrace.ExportTraceServiceRequest
	if err == nil && r.URL.Path == "/v1/traces" && r.Header.Get("Content-Type") == "application/x-protobuf" {
		err = proto.Unmarshal(body, &req)
	} else if err == nil {
		err = fmt.Errorf("%s %s (%s): not an OTLP/HTTP protobuf trace export", r.Method, r.URL.Path, r.Header.Get("Content-Type"))
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	rc.mu.Lock()
	for _, rs := range req.ResourceSpans {
		service := ""
		for _, a := range rs.GetResource().GetAttributes() {
			if a.Key == "service.name" {
				service = a.GetValue().GetStringValue()
			}
		}
		for _, ss := range rs.ScopeSpans {
			rc.spans[service] = append(rc.spans[service], ss.Spans...)
		}
	}
	rc.mu.Unlock()
	out, _ := proto.Marshal(&collectortrace.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(out)
}

func (rc *otlpReceiver) names(service string) map[string]int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	n := map[string]int{}
	for _, s := range rc.spans[service] {
		n[s.Name]++
	}
	return n
}

// TestOTLPExportFromEnvironment runs agentd as its main does, configured
// by the standard OTEL_* variables only, and checks that an OTLP/HTTP
// receiver gets the spans of a call through its gateway, under the
// service name the variables give, by the time agentd has exited; and
// that without the variables agentd exports nothing.
func TestOTLPExportFromEnvironment(t *testing.T) {
	rc := &otlpReceiver{spans: map[string][]*tracepb.Span{}}
	hs := httptest.NewServer(rc)
	defer hs.Close()
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", hs.URL)
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
	t.Setenv("OTEL_SERVICE_NAME", "agentd-under-test")
	t.Setenv("OTEL_TRACES_SAMPLER", "always_on")

	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	ctx, cancel := context.WithCancel(context.Background())
	var stderr bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- Main(ctx, []string{"--demo", "--data", t.TempDir(), "--nats-port", "-1", "--http", addr, "--log-format", "json"},
			strings.NewReader(""), io.Discard, &stderr, os.LookupEnv)
	}()
	body := `{"jsonrpc":"2.0","id":1,"method":"SendMessage","params":{"message":{"messageId":"m1","role":"ROLE_USER","parts":[{"text":"hi"}]}}}`
	var answered bool
	for deadline := time.Now().Add(time.Minute); !answered && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		resp, err := http.Post("http://"+addr+"/a2a/echo", "application/json", strings.NewReader(body))
		if err != nil {
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		answered = resp.StatusCode == http.StatusOK && strings.Contains(string(b), `"result"`)
	}
	cancel()
	if code := <-done; code != exitOK || !answered {
		t.Fatalf("agentd exited %d, call answered %v; stderr:\n%s", code, answered, stderr.String())
	}
	// Exported at the latest by the flush at exit.
	got := rc.names("agentd-under-test")
	for _, name := range []string{"POST /a2a/{agent}", "SendMessage", "send echo", "process echo", "reply"} {
		if got[name] == 0 {
			t.Fatalf("the receiver has no span %q for service agentd-under-test: %v; stderr:\n%s", name, got, stderr.String())
		}
	}
	if !strings.Contains(stderr.String(), `"msg":"tracing on"`) {
		t.Fatalf("no tracing-on line in the log:\n%s", stderr.String())
	}

	// Without OTEL_* variables asking for it, nothing is exported.
	for _, v := range []string{"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_SERVICE_NAME", "OTEL_TRACES_SAMPLER"} {
		t.Setenv(v, "")
		os.Unsetenv(v)
	}
	rc.mu.Lock()
	rc.spans = map[string][]*tracepb.Span{}
	rc.mu.Unlock()
	ctx, cancel = context.WithCancel(context.Background())
	stderr.Reset()
	go func() {
		done <- Main(ctx, []string{"--demo", "--data", t.TempDir(), "--nats-port", "-1", "--http", addr},
			strings.NewReader(""), io.Discard, &stderr, os.LookupEnv)
	}()
	answered = false
	for deadline := time.Now().Add(time.Minute); !answered && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		resp, err := http.Post("http://"+addr+"/a2a/echo", "application/json", strings.NewReader(body))
		if err != nil {
			continue
		}
		resp.Body.Close()
		answered = resp.StatusCode == http.StatusOK
	}
	cancel()
	if code := <-done; code != exitOK || !answered {
		t.Fatalf("agentd exited %d, call answered %v; stderr:\n%s", code, answered, stderr.String())
	}
	rc.mu.Lock()
	n := len(rc.spans)
	rc.mu.Unlock()
	if n != 0 || strings.Contains(stderr.String(), "tracing on") {
		t.Fatalf("without OTEL_* variables %d services exported spans; stderr:\n%s", n, stderr.String())
	}
}

// TestTelemetryBadSettings: a bad OTEL_* setting stops agentd at start-up
// with exit code 2, naming it.
func TestTelemetryBadSettings(t *testing.T) {
	for _, tc := range []struct{ name, value, want string }{
		{"OTEL_TRACES_EXPORTER", "zipkin-v0", "unknown exporter"},
		{"OTEL_EXPORTER_OTLP_PROTOCOL", "http/json", "OTEL_EXPORTER_OTLP_PROTOCOL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(tc.name, tc.value)
			t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1")
			var stderr bytes.Buffer
			code := Main(context.Background(), []string{"--data", t.TempDir(), "--nats-port", "-1", "--http", "127.0.0.1:0"},
				strings.NewReader(""), io.Discard, &stderr, os.LookupEnv)
			if code != exitUsage || !strings.Contains(stderr.String(), tc.want) {
				t.Fatalf("exit %d, stderr %q; want %d naming %q", code, stderr.String(), exitUsage, tc.want)
			}
		})
	}
}
