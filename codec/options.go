package codec

import "fmt"

// Defaults, from the seed's A2A_CONFIG.
const (
	// DefaultMaxSize is the largest message or batch body, raw or
	// decompressed: 10 MiB.
	DefaultMaxSize = 10 << 20
	// DefaultCompressionThreshold is the body size above which a frame is
	// compressed: bodies of at most this many bytes are sent RAW.
	DefaultCompressionThreshold = 1024
)

// Compression selects how frames are compressed.
type Compression uint8

const (
	// CompressLZ4 writes LZ4 frames exactly as Python's
	// lz4.frame.compress(b, compression_level=1) does, so that the seed's
	// Python code can read them. It is the default.
	CompressLZ4 Compression = iota
	// CompressNone always writes RAW frames.
	CompressNone
	// CompressS2 writes S2 blocks (klauspost/compress): the fast tier, for
	// Go-to-Go traffic.
	CompressS2
	// CompressZstd writes zstd frames at the default level: the balanced
	// tier, for Go-to-Go traffic where bytes matter more than CPU.
	CompressZstd
	// CompressAuto picks the fastest tier that pays: S2 when it saves at
	// least 10%, else RAW. Go-to-Go only.
	CompressAuto
)

// String returns the name that ParseCompression accepts.
func (c Compression) String() string {
	switch c {
	case CompressLZ4:
		return "lz4"
	case CompressNone:
		return "none"
	case CompressS2:
		return "s2"
	case CompressZstd:
		return "zstd"
	case CompressAuto:
		return "auto"
	}
	return fmt.Sprintf("Compression(%d)", uint8(c))
}

// ParseCompression parses auto, lz4, s2, zstd or none.
func ParseCompression(s string) (Compression, error) {
	switch s {
	case "lz4":
		return CompressLZ4, nil
	case "none", "raw":
		return CompressNone, nil
	case "s2":
		return CompressS2, nil
	case "zstd":
		return CompressZstd, nil
	case "auto":
		return CompressAuto, nil
	}
	return 0, fmt.Errorf("%w: compression %q (want auto, lz4, s2, zstd or none)", ErrInvalidOption, s)
}

// Option configures a Codec.
type Option func(*options) error

type options struct {
	compression Compression
	maxSize     int
	threshold   int
	pool        *Pool
}

// WithCompression sets how frames are compressed (default CompressLZ4).
func WithCompression(c Compression) Option {
	return func(o *options) error {
		if c > CompressAuto {
			return fmt.Errorf("%w: %v", ErrInvalidOption, c)
		}
		o.compression = c
		return nil
	}
}

// WithMaxSize sets the largest body, raw or decompressed, that the Codec
// encodes or decodes (default DefaultMaxSize).
func WithMaxSize(n int) Option {
	return func(o *options) error {
		if n <= 0 || n > 1<<31-1 {
			return fmt.Errorf("%w: max size %d", ErrInvalidOption, n)
		}
		o.maxSize = n
		return nil
	}
}

// WithCompressionThreshold sets the body size above which frames are
// compressed (default DefaultCompressionThreshold).
func WithCompressionThreshold(n int) Option {
	return func(o *options) error {
		if n < 0 {
			return fmt.Errorf("%w: compression threshold %d", ErrInvalidOption, n)
		}
		o.threshold = n
		return nil
	}
}

// WithPool sets the buffer pool (default DefaultPool()).
func WithPool(p *Pool) Option {
	return func(o *options) error {
		if p == nil {
			return fmt.Errorf("%w: nil pool", ErrInvalidOption)
		}
		o.pool = p
		return nil
	}
}
