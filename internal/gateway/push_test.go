package gateway_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/a2abus/a2abus/agentbus/a2anats"
	"github.com/a2abus/a2abus/agentbus/a2anats/a2anatstest"
	"github.com/a2abus/a2abus/embedded/embeddedtest"
	"github.com/a2abus/a2abus/internal/demoagent"
	"github.com/a2abus/a2abus/internal/gateway"
	"github.com/a2aproject/a2a-go/v2/a2asrv"
)

// TestPushConfigShapes: a client that writes push configs as A2A 1.0 does
// (SendMessage's configuration.taskPushNotificationConfig, the flat
// CreateTaskPushNotificationConfig params with task_id, and the config as
// the body of POST tasks/{id}/pushNotificationConfigs) gets them stored
// and its webhook called, over JSON-RPC and HTTP+JSON, as the conformance
// kit's push tests do.
func TestPushConfigShapes(t *testing.T) {
	srv := embeddedtest.RunServer(t)
	sender, err := a2anats.NewPushSender(a2anats.PushLogger(embeddedtest.Logger(t)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sender.Close(testCtx(t, 5*time.Second)) })
	a2anatstest.Host(t, srv, map[string]a2asrv.AgentExecutor{"tck": demoagent.TCK{}}, a2anatstest.WithPush(sender))
	hs := startGateway(t, srv, gateway.Config{})
	base := hs.URL + gateway.Prefix + "tck"

	var mu sync.Mutex
	auths := map[string][]string{} // the body's first key (its event) with the Authorization header, by path
	arrived := make(chan struct{}, 1)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var ev map[string]json.RawMessage
		b, _ := io.ReadAll(r.Body)
		_ = json.Unmarshal(b, &ev)
		mu.Lock()
		for k := range ev {
			auths[r.URL.Path] = append(auths[r.URL.Path], k+" "+r.Header.Get("Authorization"))
		}
		mu.Unlock()
		select {
		case arrived <- struct{}{}:
		default:
		}
	}))
	defer hook.Close()

	// call posts a JSON-RPC request, or a body to an HTTP+JSON path, and
	// returns the result (JSON-RPC) or body (HTTP+JSON).
	call := func(method, body string) map[string]any {
		t.Helper()
		url, payload := base, body
		if p, ok := strings.CutPrefix(method, "/"); ok {
			url = base + "/rest/" + p
		} else {
			payload = fmt.Sprintf(`{"jsonrpc":"2.0","id":1,"method":%q,"params":%s}`, method, body)
		}
		for {
			status, rpcErr, raw := post(t, url, payload)
			var out map[string]any
			if err := json.Unmarshal([]byte(raw), &out); err != nil {
				t.Fatalf("%s: %q", method, raw)
			}
			// The SDK answers input-required before its execution of the
			// task ends; a message sent meanwhile is refused, and sent
			// again.
			if strings.Contains(raw, "task execution is already in progress") {
				time.Sleep(5 * time.Millisecond)
				continue
			}
			if status != http.StatusOK || rpcErr.Error != nil {
				t.Fatalf("%s %s: %d %s", method, payload, status, raw)
			}
			if r, ok := out["result"].(map[string]any); ok {
				return r
			}
			return out
		}
	}
	taskOf := func(res map[string]any) string {
		if task, ok := res["task"].(map[string]any); ok {
			res = task
		}
		id, _ := res["id"].(string)
		return id
	}

	for _, binding := range []string{"jsonrpc", "http_json"} {
		send, create, get := "SendMessage", "CreateTaskPushNotificationConfig", "GetTaskPushNotificationConfig"
		if binding == "http_json" {
			send = "/message:send"
		}
		cfg := fmt.Sprintf(`{"id":"p-%s","url":%q,"authentication":{"scheme":"Bearer","credentials":"tok-%s"}}`, binding, hook.URL+"/"+binding, binding)
		task := taskOf(call(send, fmt.Sprintf(`{"message":{"messageId":"tck-input-required-%s","role":"ROLE_USER","parts":[{"text":"hi"}]},"configuration":{"taskPushNotificationConfig":%s}}`, binding, cfg)))
		call(send, fmt.Sprintf(`{"message":{"messageId":"tck-complete-task-%s","role":"ROLE_USER","taskId":%q,"parts":[{"text":"go on"}]}}`, binding, task))
		ctx := testCtx(t, 30*time.Second)
		for {
			mu.Lock()
			got := strings.Join(auths["/"+binding], ",")
			mu.Unlock()
			if strings.Contains(got, "statusUpdate Bearer tok-"+binding) {
				break
			}
			select {
			case <-arrived:
			case <-ctx.Done():
				t.Fatalf("%s: the webhook got %q, want the task's completion with its credentials", binding, got)
			}
		}

		other := fmt.Sprintf(`{"id":"other","url":%q}`, hook.URL+"/other")
		var stored map[string]any
		if binding == "http_json" {
			stored = call("/tasks/"+task+"/pushNotificationConfigs", other)
		} else {
			stored = call(create, fmt.Sprintf(`{"task_id":%q,"id":"other","url":%q}`, task, hook.URL+"/other"))
		}
		if c, _ := stored["config"].(map[string]any); c == nil || c["url"] != hook.URL+"/other" {
			t.Fatalf("%s: created %v", binding, stored)
		}
		if binding == "jsonrpc" {
			got := call(get, fmt.Sprintf(`{"task_id":%q,"id":"other"}`, task))
			if c, _ := got["config"].(map[string]any); c == nil || c["id"] != "other" {
				t.Fatalf("GetTaskPushNotificationConfig with task_id: %v", got)
			}
		}
	}
}
