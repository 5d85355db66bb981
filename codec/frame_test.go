package codec

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"runtime"
	"strings"
	"testing"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

func mustFrame(t testing.TB, c *Codec, body []byte) []byte {
	t.Helper()
	f, err := c.AppendFrame(nil, body)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// TestFrameCompressionChoice checks the seed's rule: compress only bodies
// over the threshold, keep the compressed body only under 90% of the raw
// size, and the tag of each compression.
func TestFrameCompressionChoice(t *testing.T) {
	text := []byte(strings.Repeat("agent task result ", 200)) // compressible
	random := make([]byte, 4000)
	for i := range random {
		random[i] = byte(i*7919 + i*i*31 + i>>3)
	}
	noise, _ := os.ReadFile("testdata/seed-python/random-bytes.bin") // incompressible
	tests := []struct {
		name    string
		opts    []Option
		body    []byte
		wantTag string
	}{
		{"small stays raw", nil, text[:1024], TagRaw},
		{"over threshold lz4", nil, text[:1025], TagLZ4},
		{"incompressible stays raw", nil, noise[3:], TagRaw},
		{"none", []Option{WithCompression(CompressNone)}, text, TagRaw},
		{"s2", []Option{WithCompression(CompressS2)}, text, TagS2},
		{"zstd", []Option{WithCompression(CompressZstd)}, text, TagZstd},
		{"auto is s2", []Option{WithCompression(CompressAuto)}, text, TagS2},
		{"auto incompressible", []Option{WithCompression(CompressAuto)}, noise[3:], TagRaw},
		{"threshold 0", []Option{WithCompressionThreshold(0)}, text[:100], TagLZ4},
		{"higher threshold", []Option{WithCompressionThreshold(1 << 20)}, text, TagRaw},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := MustNew(tt.opts...)
			f := mustFrame(t, c, tt.body)
			if tag, _ := FrameTag(f); tag != tt.wantTag {
				t.Fatalf("tag %q, want %q", tag, tt.wantTag)
			}
			if tt.wantTag != TagRaw && (len(f)-TagSize)*10 >= len(tt.body)*9 {
				t.Fatalf("kept a compressed body of %d bytes for %d", len(f)-TagSize, len(tt.body))
			}
			got, err := MustNew().DecodeFrame(nil, f)
			if err != nil || !bytes.Equal(got, tt.body) {
				t.Fatalf("round trip: %v", err)
			}
		})
	}
}

// lz4FrameNoSize builds an LZ4 frame without a content size whose blocks
// are all the same uncompressed-size block, compressed.
func lz4FrameNoSize(block []byte, blocks int) []byte {
	f := appendLZ4Frame(nil, block)
	// Rewrite the descriptor without the content size.
	hdr := []byte{f[0], f[1], f[2], f[3], lz4FlagVersion | lz4FlagIndep, lz4Block64K}
	hdr = append(hdr, byte(xxh32(hdr[4:6])>>8))
	body := f[lz4HeaderSize : len(f)-4] // the blocks
	out := append([]byte{}, hdr...)
	for range blocks {
		out = append(out, body...)
	}
	return binary.LittleEndian.AppendUint32(out, 0)
}

func TestDecodeFrameErrors(t *testing.T) {
	c := MustNew(WithMaxSize(1 << 20))
	zeros := make([]byte, 64<<10)
	lz := appendLZ4Frame(nil, []byte(strings.Repeat("hello world ", 500)))
	bigSize := append([]byte{}, lz...)
	binary.LittleEndian.PutUint64(bigSize[6:], 1<<40)
	bigSize[14] = byte(xxh32(bigSize[4:14]) >> 8)
	badHC := append([]byte{}, lz...)
	badHC[14]++
	// One literal, then a match 65535 bytes back: before the output.
	badBlock := append(append([]byte{}, lz[:lz4HeaderSize]...), 4, 0, 0, 0, 0x10, 'a', 0xff, 0xff, 0, 0, 0, 0)
	trailing := append(append([]byte{}, lz...), 0)
	checksums, _ := os.ReadFile("testdata/python-extra/checksums.bin")
	badSum := append([]byte{}, checksums...)
	badSum[len(badSum)-1]++
	s2big := append([]byte(TagS2), s2.Encode(nil, make([]byte, 2<<20))...)
	zenc, _ := zstd.NewWriter(nil)
	zbig := append([]byte(TagZstd), zenc.EncodeAll(make([]byte, 2<<20), nil)...)
	tests := []struct {
		name    string
		frame   []byte
		wantErr error
	}{
		{"empty", nil, ErrCorrupt},
		{"short", []byte("RA"), ErrCorrupt},
		{"unknown tag", []byte("XYZ\x80"), ErrUnknownTag},
		{"lowercase tag", []byte("raw\x80"), ErrUnknownTag},
		{"raw too large", append([]byte(TagRaw), make([]byte, 1<<20+1)...), ErrTooLarge},
		{"lz4 truncated header", []byte("LZ4\x04\x22\x4d"), ErrCorrupt},
		{"lz4 bad magic", append([]byte(TagLZ4), 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11), ErrCorrupt},
		{"lz4 truncated body", append([]byte(TagLZ4), lz[:len(lz)-10]...), ErrCorrupt},
		{"lz4 no end mark", append([]byte(TagLZ4), lz[:len(lz)-4]...), ErrCorrupt},
		{"lz4 bad header checksum", append([]byte(TagLZ4), badHC...), ErrCorrupt},
		{"lz4 bad block", append([]byte(TagLZ4), badBlock...), ErrCorrupt},
		{"lz4 trailing bytes", append([]byte(TagLZ4), trailing...), ErrCorrupt},
		{"lz4 bad content checksum", badSum, ErrCorrupt},
		{"lz4 declares too much", append([]byte(TagLZ4), bigSize...), ErrTooLarge},
		{"lz4 inflates past the limit", append([]byte(TagLZ4), lz4FrameNoSize(zeros, 17)...), ErrTooLarge},
		{"s2 garbage", []byte("S2B\xff\xff\xff\xff\xff\xff"), ErrCorrupt},
		{"s2 inflates past the limit", s2big, ErrTooLarge},
		{"zstd garbage", []byte("ZST\x28\xb5\x2f\xfd\x00"), ErrCorrupt},
		{"zstd inflates past the limit", zbig, ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.DecodeFrame(nil, tt.frame)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if _, err := c.DecodeValue(tt.frame); err == nil {
				t.Fatal("DecodeValue accepted it")
			}
		})
	}
}

// TestLZ4BombAllocation checks that a small frame declaring or inflating to
// more than the limit fails without allocating anything near that size.
func TestLZ4BombAllocation(t *testing.T) {
	c := MustNew(WithMaxSize(1 << 20))
	frame := append([]byte(TagLZ4), lz4FrameNoSize(make([]byte, 64<<10), 1000)...) // 64 MB of zeros
	if len(frame) > 300<<10 {
		t.Fatalf("bomb is %d bytes", len(frame))
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	if _, err := c.DecodeFrame(nil, frame); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("err = %v", err)
	}
	runtime.ReadMemStats(&after)
	if n := after.TotalAlloc - before.TotalAlloc; n > 8<<20 {
		t.Fatalf("allocated %d bytes to reject a 64 MB bomb with a 1 MiB limit", n)
	}
}

func TestLZ4LinkedBlocksWithinLimit(t *testing.T) {
	frame, err := os.ReadFile("testdata/python-extra/linked-batch.bin")
	if err != nil {
		t.Fatal(err)
	}
	n := lz4ContentSize(frame[TagSize:])
	if _, err := MustNew(WithMaxSize(int(n))).DecodeFrame(nil, frame); err != nil {
		t.Fatalf("at the limit: %v", err)
	}
	if _, err := MustNew(WithMaxSize(int(n)-1)).DecodeFrame(nil, frame); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("one byte under the limit: %v", err)
	}
}

func TestEncodeTooLarge(t *testing.T) {
	c := MustNew(WithMaxSize(1000))
	if _, err := c.AppendFrame(nil, make([]byte, 1001)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("AppendFrame: %v", err)
	}
	e := &Envelope{ID: strings.Repeat("x", 1000)}
	if _, err := c.EncodeEnvelope(nil, e); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("EncodeEnvelope: %v", err)
	}
	if _, err := c.EncodeBatch(nil, []*Envelope{e}); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("EncodeBatch: %v", err)
	}
}

func TestOptions(t *testing.T) {
	tests := []struct {
		name    string
		opt     Option
		wantErr error
	}{
		{"max size 0", WithMaxSize(0), ErrInvalidOption},
		{"negative threshold", WithCompressionThreshold(-1), ErrInvalidOption},
		{"bad compression", WithCompression(Compression(99)), ErrInvalidOption},
		{"nil pool", WithPool(nil), ErrInvalidOption},
		{"ok", WithMaxSize(1 << 10), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(tt.opt); !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
		})
	}
	for _, s := range []string{"auto", "lz4", "s2", "zstd", "none"} {
		c, err := ParseCompression(s)
		if err != nil || c.String() != s {
			t.Fatalf("ParseCompression(%q) = %v, %v", s, c, err)
		}
	}
	if _, err := ParseCompression("gzip"); !errors.Is(err, ErrInvalidOption) {
		t.Fatalf("gzip: %v", err)
	}
}

func TestXXH32(t *testing.T) {
	// Reference values of XXH32 with seed 0.
	tests := []struct {
		in   string
		want uint32
	}{
		{"", 0x02cc5d05},
		{"a", 0x550d7456},
		{"abc", 0x32d153ff},
		{"Nobody inspects the spammish repetition", 0xe2293b2f},
	}
	for _, tt := range tests {
		if got := xxh32([]byte(tt.in)); got != tt.want {
			t.Errorf("xxh32(%q) = %#x, want %#x", tt.in, got, tt.want)
		}
	}
}

// TestLZ4FrameSizes round-trips bodies around the block boundaries, half
// compressible and half not, through our reader and pierrec/lz4's.
func TestLZ4FrameSizes(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	noise := make([]byte, 300<<10)
	for i := range noise {
		noise[i] = byte(rng.Uint32())
	}
	text := []byte(sentence(rng, 300<<10))
	for _, n := range []int{0, 1, 12, 13, 1000, 65535, 65536, 65537, 65547, 65548, 131072, 131073, 200000, 300 << 10} {
		for _, mix := range []string{"text", "noise", "mixed"} {
			src := make([]byte, n)
			switch mix {
			case "text":
				copy(src, text)
			case "noise":
				copy(src, noise)
			default:
				for i := 0; i < n; i += 4096 {
					from := text
					if (i/4096)%3 == 1 {
						from = noise
					}
					copy(src[i:min(n, i+4096)], from[i:])
				}
			}
			frame := appendLZ4Frame(nil, src)
			got, err := appendLZ4Decoded(nil, frame, 1<<20)
			if err != nil || !bytes.Equal(got, src) {
				t.Fatalf("%d %s: our reader: %v", n, mix, err)
			}
			got2, err := io.ReadAll(lz4.NewReader(bytes.NewReader(frame)))
			if err != nil || !bytes.Equal(got2, src) {
				t.Fatalf("%d %s: pierrec reader: %v", n, mix, err)
			}
		}
	}
}

// TestLargeBodies round-trips a body near the default max size with every
// compression.
func TestLargeBodies(t *testing.T) {
	if testing.Short() {
		t.Skip("large bodies")
	}
	rng := rand.New(rand.NewPCG(8, 9))
	body, err := AppendValue(nil, map[string]any{"text": sentence(rng, DefaultMaxSize-100)})
	if err != nil {
		t.Fatal(err)
	}
	for _, comp := range []Compression{CompressNone, CompressLZ4, CompressS2, CompressZstd} {
		c := MustNew(WithCompression(comp))
		frame, err := c.AppendFrame(nil, body)
		if err != nil {
			t.Fatalf("%v: %v", comp, err)
		}
		got, err := c.DecodeFrame(nil, frame)
		if err != nil || !bytes.Equal(got, body) {
			t.Fatalf("%v: round trip of %d bytes: %v", comp, len(body), err)
		}
		if _, err := MustNew(WithMaxSize(len(body)-1)).DecodeFrame(nil, frame); !errors.Is(err, ErrTooLarge) {
			t.Fatalf("%v: one byte over the limit: %v", comp, err)
		}
	}
}
