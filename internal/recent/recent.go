package recent

import "sync"

// Map is a bounded map, safe for concurrent use. The zero value is not
// usable: make one with New.
type Map[K comparable, V any] struct {
	mu       sync.Mutex
	n        int
	cur, old map[K]V
}

// New returns a Map that keeps at most 2n keys.
func New[K comparable, V any](n int) *Map[K, V] {
	return &Map[K, V]{n: max(n, 1), cur: make(map[K]V)}
}

// Get returns k's value, if k was stored lately.
func (m *Map[K, V]) Get(k K) (V, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if v, ok := m.cur[k]; ok {
		return v, true
	}
	v, ok := m.old[k]
	return v, ok
}

// Put stores v as k's value, unless keep says the value stored already
// is to be kept (nil keeps none).
func (m *Map[K, V]) Put(k K, v V, keep func(stored V) bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if keep != nil {
		if s, ok := m.cur[k]; ok && keep(s) {
			return
		}
		if s, ok := m.old[k]; ok && keep(s) {
			return
		}
	}
	if len(m.cur) >= m.n {
		m.old, m.cur = m.cur, make(map[K]V, m.n/8+1)
	}
	m.cur[k] = v
}
