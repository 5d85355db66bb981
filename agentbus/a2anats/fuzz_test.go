package a2anats

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/a2abus/a2abus/codec"
	"github.com/a2aproject/a2a-go/v2/a2a"
)

// FuzzParseCall: any call envelope is parsed into a method and params, or
// rejected with an A2A error; the params of every method decode or fail
// cleanly. Never a panic.
func FuzzParseCall(f *testing.F) {
	f.Add("a2a.SendMessage", []byte(`{"message":{"messageId":"m","role":"ROLE_USER","parts":[{"text":"hi"}]}}`), "1.0")
	f.Add("a2a.GetTask", []byte(`{"id":"t"}`), "1.0\nx")
	f.Add("a2a.SubscribeToTask", []byte(`{"id":"t"}`), "")
	f.Add("message", []byte(`{}`), "")
	f.Add("a2a.", []byte(`null`), "")
	f.Fuzz(func(t *testing.T, kind string, payload []byte, version string) {
		env := &codec.Envelope{Kind: kind, Payload: payload}
		env.Headers.Set(HeaderServicePrefix+"a2a-version", version)
		method, params, err := parseCall(env)
		if err != nil {
			if ErrorCode(err) == -32603 {
				t.Fatalf("parse error %v maps to internal error, want a request error", err)
			}
			return
		}
		if kind != KindPrefix+method {
			t.Fatalf("method %q from kind %q", method, kind)
		}
		if svc := service(env.Headers); strings.Join(svc["a2a-version"], "\n") != version {
			t.Fatalf("service params %v from version %q", svc, version)
		}
		for _, req := range []any{
			new(a2a.SendMessageRequest), new(a2a.GetTaskRequest), new(a2a.ListTasksRequest),
			new(a2a.CancelTaskRequest), new(a2a.SubscribeToTaskRequest), new(a2a.GetTaskPushConfigRequest),
			new(a2a.CreateTaskPushConfigRequest), new(a2a.ListTaskPushConfigRequest),
			new(a2a.DeleteTaskPushConfigRequest), new(a2a.GetExtendedAgentCardRequest),
		} {
			_ = json.Unmarshal(params, req)
		}
	})
}

// FuzzAnswer: any answer payload decodes into an event or result, or fails
// with an error; an error answer always rebuilds an A2A error.
func FuzzAnswer(f *testing.F) {
	f.Add([]byte(`{"messageId":"m","role":"ROLE_AGENT","parts":[{"text":"hi"}]}`), "-32001")
	f.Add([]byte(`{"taskId":"t","contextId":"c","status":{"state":"TASK_STATE_WORKING"}}`), "x")
	f.Add([]byte(`{}`), "")
	f.Fuzz(func(t *testing.T, payload []byte, code string) {
		for _, kind := range []string{"message", "task", "statusUpdate", "artifactUpdate", code} {
			ev, err := decodeEvent(kind, payload)
			if err == nil && ev == nil {
				t.Fatalf("%q decoded into no event without an error", payload)
			}
		}
		env := &codec.Envelope{Kind: KindError, Payload: payload}
		env.Headers.Set(HeaderCode, code)
		err := remoteError("a", env)
		var a2aErr *a2a.Error
		if !errors.As(err, &a2aErr) || a2aErr.Err == nil {
			t.Fatalf("remoteError(%q) = %v, want an *a2a.Error", code, err)
		}
	})
}

// FuzzAgentFromURL: any URL yields a valid agent ID or ErrBadURL.
func FuzzAgentFromURL(f *testing.F) {
	f.Add("nats://localhost:4222/a2a/echo")
	f.Add("nats:///a2a/x%2Fy")
	f.Fuzz(func(t *testing.T, raw string) {
		id, err := AgentFromURL(raw)
		if err != nil {
			if !errors.Is(err, ErrBadURL) {
				t.Fatalf("AgentFromURL(%q): %v does not wrap ErrBadURL", raw, err)
			}
			return
		}
		if Interface(id, "h").ProtocolBinding != ProtocolBinding || id == "" {
			t.Fatalf("AgentFromURL(%q) = %q", raw, id)
		}
	})
}

// FuzzDecodeTask: any KV value decodes into a task or an error.
func FuzzDecodeTask(f *testing.F) {
	f.Add([]byte(`{"task":{"id":"t","contextId":"c","status":{"state":"TASK_STATE_WORKING"}},"updated":"2026-11-26T00:00:00Z"}`))
	f.Add([]byte(`{"task":null}`))
	f.Fuzz(func(t *testing.T, value []byte) {
		st, err := decodeTask(&kvEntry{Key: "t", Value: value, Revision: 7})
		if err == nil && (st.Task == nil || st.Version != 7) {
			t.Fatalf("decodeTask(%q) = %+v without an error", value, st)
		}
	})
}
