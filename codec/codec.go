package codec

import (
	"fmt"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// Codec encodes and decodes frames, envelopes, batches and generic values
// with one set of options. Create it with New and share it: a Codec is
// safe for concurrent use.
type Codec struct {
	compression Compression
	maxSize     int
	threshold   int
	pool        *Pool

	zdecOnce sync.Once
	zdec     *zstd.Decoder
	zdecErr  error
}

// New returns a Codec. With no options it writes Python-compatible frames:
// LZ4 for bodies over 1024 bytes when that saves at least 10%, RAW
// otherwise, and accepts bodies of up to 10 MiB.
func New(opts ...Option) (*Codec, error) {
	o := options{
		compression: CompressLZ4,
		maxSize:     DefaultMaxSize,
		threshold:   DefaultCompressionThreshold,
		pool:        defaultPool,
	}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	return &Codec{compression: o.compression, maxSize: o.maxSize, threshold: o.threshold, pool: o.pool}, nil
}

// MustNew is New for options known to be valid; it panics on an invalid
// option, like regexp.MustCompile.
func MustNew(opts ...Option) *Codec {
	c, err := New(opts...)
	if err != nil {
		panic(err)
	}
	return c
}

// Compression returns the compression the Codec writes.
func (c *Codec) Compression() Compression { return c.compression }

// MaxSize returns the largest body the Codec encodes or decodes.
func (c *Codec) MaxSize() int { return c.maxSize }

// Pool returns the buffer pool the Codec uses.
func (c *Codec) Pool() *Pool { return c.pool }

// zstdEncoder is shared by every Codec: EncodeAll is safe for concurrent
// use and starts no goroutines.
var zstdEncoder = sync.OnceValues(func() (*zstd.Encoder, error) {
	return zstd.NewWriter(nil,
		zstd.WithEncoderLevel(zstd.SpeedDefault),
		zstd.WithEncoderCRC(false), // the msgpack layer catches corruption; saves 4 bytes
	)
})

// zstdDecoder returns the Codec's zstd decoder, limited to its max size.
// DecodeAll on a decoder made without a reader starts no goroutines.
func (c *Codec) zstdDecoder() (*zstd.Decoder, error) {
	c.zdecOnce.Do(func() {
		window := max(zstd.MinWindowSize, min(c.maxSize, zstd.MaxWindowSize))
		c.zdec, c.zdecErr = zstd.NewReader(nil,
			zstd.WithDecoderMaxMemory(uint64(c.maxSize)),
			zstd.WithDecoderMaxWindow(uint64(window)),
			zstd.WithDecoderConcurrency(0),
		)
		if c.zdecErr != nil {
			c.zdecErr = fmt.Errorf("codec: zstd decoder: %w", c.zdecErr)
		}
	})
	return c.zdec, c.zdecErr
}
