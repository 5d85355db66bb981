package recent

import "testing"

// TestMap: what is stored is found; keep keeps the stored value; the
// oldest generation goes when the newer fills, so at most 2n keys stay.
func TestMap(t *testing.T) {
	m := New[string, int](2)
	m.Put("a", 1, nil)
	m.Put("b", 2, nil)
	if v, ok := m.Get("a"); !ok || v != 1 {
		t.Fatalf("a = %d %v", v, ok)
	}
	higher := func(v int) func(int) bool { return func(s int) bool { return s >= v } }
	m.Put("a", 0, higher(0))
	if v, _ := m.Get("a"); v != 1 {
		t.Fatalf("a = %d after a lower value was offered, want 1 kept", v)
	}
	m.Put("c", 3, nil) // a and b move to the old generation
	m.Put("d", 4, nil)
	for k, want := range map[string]int{"a": 1, "b": 2, "c": 3, "d": 4} {
		if v, ok := m.Get(k); !ok || v != want {
			t.Errorf("%s = %d %v, want %d", k, v, ok, want)
		}
	}
	m.Put("e", 5, nil) // a and b are dropped
	if _, ok := m.Get("a"); ok {
		t.Error("a kept past two generations")
	}
	if len(m.cur)+len(m.old) > 4 {
		t.Errorf("%d keys kept, want at most 4", len(m.cur)+len(m.old))
	}
}
