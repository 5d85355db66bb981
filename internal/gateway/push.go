package gateway

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
)

// pushShapes rewrites the A2A 1.0 shapes of push notification configs that
// the SDK's JSON-RPC and HTTP+JSON handlers (a2a-go v2.2.0) do not read
// into the ones they do, so that a 1.0 client's push configs reach the
// agent:
//
//   - SendMessage and SendStreamingMessage (JSON-RPC params, or the body of
//     message:send and message:stream): configuration.taskPushNotificationConfig
//     becomes configuration.pushNotificationConfig;
//   - CreateTaskPushNotificationConfig (JSON-RPC): the flat 1.0 params
//     {taskId or task_id, id, url, token, authentication, tenant} become
//     {taskId, tenant, config: {id, url, token, authentication}}; the body
//     of POST tasks/{id}/pushNotificationConfigs, the config itself,
//     becomes {config: ...};
//   - Get, List and DeleteTaskPushNotificationConfig (JSON-RPC): task_id
//     becomes taskId.
//
// A body in the SDK's shapes, or that is none of these, is returned as it
// is; so is one that does not parse (the SDK answers it). Only bodies that
// mention a push notification config are parsed.
func pushShapes(r *http.Request, body []byte) []byte {
	if !bytes.Contains(body, []byte("ushNotificationConfig")) && !strings.HasSuffix(r.URL.Path, "/pushNotificationConfigs") {
		return body
	}
	_, endpoint := route(r.URL.Path)
	switch endpoint {
	case routeJSONRPC:
		return rewriteJSON(body, func(req map[string]json.RawMessage) bool {
			var method string
			if json.Unmarshal(req["method"], &method) != nil {
				return false
			}
			return rewriteField(req, "params", func(params map[string]json.RawMessage) bool {
				switch method {
				case "SendMessage", "SendStreamingMessage":
					return rewriteField(params, "configuration", renameTaskPushConfig)
				case "CreateTaskPushNotificationConfig":
					renamed := renameTaskID(params)
					return nestConfig(params) || renamed
				case "GetTaskPushNotificationConfig", "ListTaskPushNotificationConfigs", "DeleteTaskPushNotificationConfig":
					return renameTaskID(params)
				}
				return false
			})
		})
	case routeREST:
		switch {
		case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/pushNotificationConfigs"):
			return rewriteJSON(body, nestConfig)
		case r.Method == http.MethodPost && (strings.HasSuffix(r.URL.Path, "/message:send") || strings.HasSuffix(r.URL.Path, "/message:stream")):
			return rewriteJSON(body, func(req map[string]json.RawMessage) bool {
				return rewriteField(req, "configuration", renameTaskPushConfig)
			})
		}
	}
	return body
}

// rewriteJSON applies change to body's JSON object and returns the object
// written again when change changed it, else body.
func rewriteJSON(body []byte, change func(map[string]json.RawMessage) bool) []byte {
	var obj map[string]json.RawMessage
	if json.Unmarshal(body, &obj) != nil || obj == nil || !change(obj) {
		return body
	}
	b, err := json.Marshal(obj)
	if err != nil {
		return body
	}
	return b
}

// rewriteField applies change to the JSON object obj[key], writing it back
// when change changed it.
func rewriteField(obj map[string]json.RawMessage, key string, change func(map[string]json.RawMessage) bool) bool {
	raw, ok := obj[key]
	if !ok {
		return false
	}
	var inner map[string]json.RawMessage
	if json.Unmarshal(raw, &inner) != nil || inner == nil || !change(inner) {
		return false
	}
	b, err := json.Marshal(inner)
	if err != nil {
		return false
	}
	obj[key] = b
	return true
}

// renameTaskPushConfig moves a SendMessage configuration's 1.0
// taskPushNotificationConfig to pushNotificationConfig, the SDK's name.
func renameTaskPushConfig(cfg map[string]json.RawMessage) bool {
	return rename(cfg, "taskPushNotificationConfig", "pushNotificationConfig")
}

// renameTaskID moves task_id, the proto field name, to taskId.
func renameTaskID(params map[string]json.RawMessage) bool { return rename(params, "task_id", "taskId") }

// rename moves obj[from] to obj[to], unless to is there too.
func rename(obj map[string]json.RawMessage, from, to string) bool {
	v, ok := obj[from]
	if _, there := obj[to]; !ok || there {
		return false
	}
	delete(obj, from)
	obj[to] = v
	return true
}

// nestConfig moves the fields of a flat 1.0 push config (id, url, token,
// authentication) into config, unless config is there.
func nestConfig(params map[string]json.RawMessage) bool {
	if _, sdk := params["config"]; sdk {
		return false
	}
	cfg := map[string]json.RawMessage{}
	for _, k := range []string{"id", "url", "token", "authentication"} {
		if v, ok := params[k]; ok {
			cfg[k] = v
			delete(params, k)
		}
	}
	if len(cfg) == 0 {
		return false
	}
	b, err := json.Marshal(cfg)
	if err != nil {
		return false
	}
	params["config"] = b
	return true
}
