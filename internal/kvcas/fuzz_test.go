package kvcas

import (
	"errors"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
)

// FuzzDecode: any answer decodes into an entry or an error, never a panic.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"type":"io.nats.jetstream.api.v1.stream_msg_get_response","message":{"subject":"$KV.b.k","seq":3,"data":"eA==","time":"2026-12-02T00:00:00Z"}}`))
	f.Add([]byte(`{"message":{"seq":4,"hdrs":"TkFUUy8xLjANCktWLU9wZXJhdGlvbjogREVMDQoNCg=="}}`))
	f.Add([]byte(`{"error":{"code":404,"err_code":10037,"description":"no message found"}}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := decode("b", "k", data)
		if err == nil && (e == nil || e.Key != "k") {
			t.Fatalf("decode(%q) = %+v without an error", data, e)
		}
		if err != nil && e != nil {
			t.Fatalf("decode(%q) = %+v and %v", data, e, err)
		}
		if errors.Is(err, jetstream.ErrKeyNotFound) && e != nil {
			t.Fatal("not found with an entry")
		}
	})
}
