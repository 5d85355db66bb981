package codec

import (
	"testing"
)

func TestPoolClasses(t *testing.T) {
	p := NewPool()
	tests := []struct {
		n       int
		wantCap int
	}{
		{0, 1 << 10}, {1024, 1 << 10}, {1025, 8 << 10}, {64 << 10, 64 << 10},
		{100 << 10, 256 << 10}, {10 << 20, 16 << 20}, {20 << 20, 20 << 20},
	}
	for _, tt := range tests {
		b := p.Get(tt.n)
		if len(b.B) != 0 || cap(b.B) != tt.wantCap {
			t.Errorf("Get(%d): len %d cap %d, want cap %d", tt.n, len(b.B), cap(b.B), tt.wantCap)
		}
		p.Put(b)
	}
	if s := p.Stats(); s.Oversize != 1 || s.Created+s.Reused != uint64(len(tests)-1) {
		t.Fatalf("stats %+v", s)
	}
	p.Put(nil)
}

func TestPoolReuse(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops Puts at random under -race")
	}
	p := NewPool()
	b := p.Get(100)
	b.B = append(b.B, "hello"...)
	p.Put(b)
	b2 := p.Get(200)
	if len(b2.B) != 0 {
		t.Fatalf("reused buffer has length %d", len(b2.B))
	}
	if s := p.Stats(); s.Created != 1 || s.Reused != 1 {
		t.Fatalf("stats %+v, want 1 created and 1 reused", s)
	}
	// A buffer grown while borrowed serves larger requests.
	b2.B = make([]byte, 0, 70<<10)
	p.Put(b2)
	if b3 := p.Get(60 << 10); cap(b3.B) < 60<<10 {
		t.Fatalf("cap %d", cap(b3.B))
	}
}

// TestEncodeAllocs checks the steady-state encode path allocates nothing.
func TestEncodeAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops Puts at random under -race")
	}
	for _, comp := range []Compression{CompressNone, CompressLZ4, CompressS2, CompressAuto} {
		c := MustNew(WithCompression(comp))
		for _, size := range []int{200, 2 << 10, 64 << 10} {
			e := benchEnvelopes(1, size)[0]
			dst, _ := c.EncodeEnvelope(nil, e)
			if n := testing.AllocsPerRun(50, func() {
				dst, _ = c.EncodeEnvelope(dst[:0], e)
			}); n != 0 {
				t.Errorf("%v %d B: %v allocs per EncodeEnvelope", comp, size, n)
			}
		}
		envs := benchEnvelopes(500, 256)
		dst, _ := c.EncodeBatch(nil, envs)
		if n := testing.AllocsPerRun(20, func() {
			dst, _ = c.EncodeBatch(dst[:0], envs)
		}); n != 0 {
			t.Errorf("%v: %v allocs per EncodeBatch", comp, n)
		}
	}
}
