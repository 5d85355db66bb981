package agentbus

import (
	"encoding/json"
	"testing"

	"github.com/a2abus/a2abus/placement"
)

// FuzzPoolRecord: whatever a pool registry entry holds (written by hand,
// by another version, or corrupted), decoding it never panics, and a
// record it accepts names a valid pool whose partitioning round-trips.
func FuzzPoolRecord(f *testing.F) {
	f.Add([]byte(`{"name":"agentd","partitions":64,"order":"conversation","hash":"jump-xxhash64"}`))
	f.Add([]byte(`{"name":"a","partitions":1,"order":"agent"}`))
	f.Add([]byte(`{"name":"x.y","partitions":64}`))
	f.Add([]byte(`{"name":"p","partitions":0}`))
	f.Add([]byte(`{"name":"p","partitions":64,"hash":"ring"}`))
	f.Add([]byte(`{"name":"p","partitions":64,"order":"random"}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`{`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var c PoolConfig
		p, err := decodePool(data, &c)
		if err != nil {
			return
		}
		if placement.ValidatePoolName(p.Name()) != nil || p.Partitions() < 1 || p.Partitions() > placement.MaxGroups {
			t.Fatalf("accepted %q as pool %q with %d partitions", data, p.Name(), p.Partitions())
		}
		again, err := json.Marshal(PoolConfig{Name: p.Name(), Partitions: p.Partitions(), Order: p.Order().String(), Hash: partitionHash})
		if err != nil {
			t.Fatal(err)
		}
		var c2 PoolConfig
		p2, err := decodePool(again, &c2)
		if err != nil || p2.Name() != p.Name() || p2.Partitions() != p.Partitions() || p2.Order() != p.Order() {
			t.Fatalf("%q did not round-trip: %v", again, err)
		}
	})
}
