package codec

import (
	"sync"
	"sync/atomic"
)

// Size classes of a Pool: 1 KiB, 8 KiB and 64 KiB as in the seed's memory
// pool, then 256 KiB, 1 MiB, 4 MiB and 16 MiB for batches and large bodies
// (16 MiB holds the largest frame of the default 10 MiB limit).
var poolClasses = [...]int{1 << 10, 8 << 10, 64 << 10, 256 << 10, 1 << 20, 4 << 20, 16 << 20}

// Buffer is a byte slice borrowed from a Pool. B has length 0 and at least
// the capacity asked for when it is handed out; the holder may grow it.
type Buffer struct {
	B []byte
}

// Pool hands out byte buffers by size class, so that steady-state encoding
// and decoding reuse memory instead of allocating it. Requests above the
// largest class are allocated exactly and not kept.
//
// A Pool is safe for concurrent use. The zero value is not usable; call
// NewPool.
type Pool struct {
	classes [len(poolClasses)]sync.Pool
	created atomic.Uint64
	reused  atomic.Uint64
	large   atomic.Uint64
}

// PoolStats are a Pool's counters since it was created, for metrics.
type PoolStats struct {
	// Created counts buffers allocated because the class was empty.
	Created uint64
	// Reused counts requests served with a buffer returned earlier.
	Reused uint64
	// Oversize counts requests above the largest class, allocated exactly
	// and never pooled (they are not counted in Created).
	Oversize uint64
}

// NewPool returns an empty Pool.
func NewPool() *Pool { return &Pool{} }

var defaultPool = NewPool()

// DefaultPool returns the process-wide Pool that a Codec uses unless
// WithPool says otherwise.
func DefaultPool() *Pool { return defaultPool }

// classFor returns the index of the smallest class holding n bytes, or -1.
func classFor(n int) int {
	for i, c := range poolClasses {
		if n <= c {
			return i
		}
	}
	return -1
}

// Get returns a buffer with length 0 and capacity at least n.
func (p *Pool) Get(n int) *Buffer {
	c := classFor(n)
	if c < 0 {
		p.large.Add(1)
		return &Buffer{B: make([]byte, 0, n)}
	}
	if b, ok := p.classes[c].Get().(*Buffer); ok {
		p.reused.Add(1)
		b.B = b.B[:0]
		return b
	}
	p.created.Add(1)
	return &Buffer{B: make([]byte, 0, poolClasses[c])}
}

// Put returns a buffer to the pool. The buffer goes to the largest class
// its capacity fills, so a buffer that grew while borrowed is kept for
// bigger requests. The caller must not use b after Put.
func (p *Pool) Put(b *Buffer) {
	if b == nil {
		return
	}
	n := cap(b.B)
	c := len(poolClasses) - 1
	for c >= 0 && poolClasses[c] > n {
		c--
	}
	if c < 0 || n > 2*poolClasses[len(poolClasses)-1] {
		return // too small to be useful, or too large to keep
	}
	b.B = b.B[:0]
	p.classes[c].Put(b)
}

// Stats returns the pool's counters.
func (p *Pool) Stats() PoolStats {
	return PoolStats{Created: p.created.Load(), Reused: p.reused.Load(), Oversize: p.large.Load()}
}
