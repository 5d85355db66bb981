package agentd

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/a2aproject/a2a-go/v2/a2a"
	"github.com/a2aproject/a2a-go/v2/a2aclient"
	"github.com/a2aproject/a2a-go/v2/a2aclient/agentcard"
)

// TestGatewayPushNotifications: the demo agents' cards say they push
// notifications, and a task started through the gateway, over JSON-RPC and
// over HTTP+JSON, with a push config posts its events in order to the
// webhook, with the config's credentials; agentd's /metrics counts them.
func TestGatewayPushNotifications(t *testing.T) {
	cfg := testConfig(t)
	cfg.Demo = true
	cfg.DemoDelay = 50 * time.Millisecond
	d := startDaemon(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	var (
		mu  sync.Mutex
		got = map[string][]string{} // task ID: "<event>:<state> <auth>"
	)
	arrived := make(chan struct{}, 1)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var sr a2a.StreamResponse
		if err := json.Unmarshal(body, &sr); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var task a2a.TaskID
		event := ""
		switch e := sr.Event.(type) {
		case *a2a.Task:
			task, event = e.ID, "task:"+string(e.Status.State)
		case *a2a.TaskStatusUpdateEvent:
			task, event = e.TaskID, "status:"+string(e.Status.State)
		case *a2a.TaskArtifactUpdateEvent:
			task, event = e.TaskID, "artifact"
		}
		mu.Lock()
		got[string(task)] = append(got[string(task)], event+" "+r.Header.Get("Authorization"))
		mu.Unlock()
		select {
		case arrived <- struct{}{}:
		default:
		}
	}))
	defer hook.Close()

	card, err := agentcard.DefaultResolver.Resolve(ctx, "http://"+d.HTTPAddr()+"/a2a/worker")
	if err != nil {
		t.Fatal(err)
	}
	if !card.Capabilities.PushNotifications {
		t.Fatalf("worker's card: capabilities %+v, want pushNotifications", card.Capabilities)
	}
	for _, binding := range []a2a.TransportProtocol{a2a.TransportProtocolJSONRPC, a2a.TransportProtocolHTTPJSON} {
		c, err := a2aclient.NewFromCard(ctx, card, a2aclient.WithConfig(a2aclient.Config{PreferredTransports: []a2a.TransportProtocol{binding}}))
		if err != nil {
			t.Fatal(err)
		}
		res, err := c.SendMessage(ctx, &a2a.SendMessageRequest{
			Message: a2a.NewMessage(a2a.MessageRoleUser, a2a.NewTextPart("job")),
			Config: &a2a.SendMessageConfig{PushConfig: &a2a.PushConfig{URL: hook.URL,
				Auth: &a2a.PushAuthInfo{Scheme: "Bearer", Credentials: string(binding)}}},
		})
		if err != nil {
			t.Fatalf("%s: %v", binding, err)
		}
		task := res.(*a2a.Task)
		auth := " Bearer " + string(binding)
		want := []string{"task:TASK_STATE_SUBMITTED" + auth, "status:TASK_STATE_WORKING" + auth, "artifact" + auth, "status:TASK_STATE_COMPLETED" + auth}
		for {
			mu.Lock()
			events := slices.Clone(got[string(task.ID)])
			mu.Unlock()
			if len(events) >= len(want) {
				if !slices.Equal(events, want) {
					t.Fatalf("%s: the webhook got %v, want %v", binding, events, want)
				}
				break
			}
			select {
			case <-arrived:
			case <-ctx.Done():
				t.Fatalf("%s: the webhook got %v, want %v", binding, events, want)
			}
		}
	}
	for {
		_, body := get(t, d, "/metrics")
		if strings.Contains(body, `a2abus_push_delivered_total{agent="worker"} 8`) {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("/metrics does not count the 8 notifications delivered:\n%s", grepLines(body, "a2abus_push"))
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// grepLines returns the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
