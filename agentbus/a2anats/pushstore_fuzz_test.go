package a2anats

import (
	"testing"
)

// FuzzDecodePushConfigs: any KV value decodes into a task's push configs,
// each one ValidatePushConfig accepts with an ID of its own, or an error.
func FuzzDecodePushConfigs(f *testing.F) {
	f.Add([]byte(`{"configs":[{"id":"a","url":"https://hooks.example/a","token":"t","authentication":{"scheme":"Bearer","credentials":"c"}}],"updated":"2026-11-26T00:00:00Z"}`))
	f.Add([]byte(`{"configs":[]}`))
	f.Add([]byte(`{"configs":[null]}`))
	f.Add([]byte(`{"configs":[{"id":"a","url":"https://x"},{"id":"a","url":"https://y"}]}`))
	f.Add([]byte(`{"configs":[{"id":"a","url":"ftp://x"}]}`))
	f.Fuzz(func(t *testing.T, value []byte) {
		configs, err := decodePushConfigs("k", value)
		if err != nil {
			return
		}
		if len(configs) > MaxPushConfigs {
			t.Fatalf("%d configs decoded", len(configs))
		}
		ids := map[string]bool{}
		for _, c := range configs {
			if c == nil || c.ID == "" || ids[c.ID] {
				t.Fatalf("decodePushConfigs(%q): config %+v nil, without an ID or repeated", value, c)
			}
			ids[c.ID] = true
			if err := ValidatePushConfig(c); err != nil {
				t.Fatalf("decodePushConfigs(%q): config %+v: %v", value, c, err)
			}
		}
	})
}
