package gateway

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/a2abus/a2abus/placement"
)

// FuzzParseSidecars: any --sidecars value gives valid agents and http(s)
// URLs, or an error; never a panic.
func FuzzParseSidecars(f *testing.F) {
	f.Add("planner=http://10.0.0.7:9000/rpc,billing=https://b.example/a2a")
	f.Add("a=http://h/,a=http://i/")
	f.Add(",,=")
	f.Fuzz(func(t *testing.T, s string) {
		scs, err := ParseSidecars(s)
		if err != nil {
			return
		}
		seen := map[string]bool{}
		for _, sc := range scs {
			if placement.ValidateAgentID(sc.ID) != nil || seen[sc.ID] {
				t.Fatalf("ParseSidecars(%q): bad or repeated agent %q", s, sc.ID)
			}
			seen[sc.ID] = true
			u, err := url.Parse(sc.URL)
			if err != nil || !strings.HasPrefix(u.Scheme, "http") || u.Host == "" {
				t.Fatalf("ParseSidecars(%q): bad URL %q", s, sc.URL)
			}
		}
	})
}

// FuzzPushShapes: any request body comes out of pushShapes as it came in,
// or as a JSON object that pushShapes leaves alone; never a panic.
func FuzzPushShapes(f *testing.F) {
	f.Add(uint8(0), []byte(`{"jsonrpc":"2.0","id":1,"method":"SendMessage","params":{"message":{},"configuration":{"taskPushNotificationConfig":{"url":"http://h/"}}}}`))
	f.Add(uint8(0), []byte(`{"jsonrpc":"2.0","id":1,"method":"CreateTaskPushNotificationConfig","params":{"task_id":"t","id":"c","url":"http://h/"}}`))
	f.Add(uint8(0), []byte(`{"method":"GetTaskPushNotificationConfig","params":{"task_id":"t","taskId":"u"}}`))
	f.Add(uint8(1), []byte(`{"id":"c","url":"http://h/","authentication":{"scheme":"Bearer"}}`))
	f.Add(uint8(2), []byte(`{"message":{},"configuration":{"taskPushNotificationConfig":null}}`))
	paths := []struct{ method, path string }{
		{http.MethodPost, Prefix + "a"},
		{http.MethodPost, Prefix + "a/rest/tasks/t/pushNotificationConfigs"},
		{http.MethodPost, Prefix + "a/rest/message:send"},
		{http.MethodPost, Prefix + "a/v0.3"},
	}
	f.Fuzz(func(t *testing.T, which uint8, body []byte) {
		p := paths[int(which)%len(paths)]
		r := httptest.NewRequest(p.method, p.path, nil)
		out := pushShapes(r, body)
		if bytes.Equal(out, body) {
			return
		}
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(out, &obj); err != nil {
			t.Fatalf("pushShapes(%q) = %q, not a JSON object: %v", body, out, err)
		}
		if again := pushShapes(r, out); !bytes.Equal(again, out) {
			t.Fatalf("pushShapes(%q) = %q, and again %q", body, out, again)
		}
	})
}
