package codec

import (
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
)

// A frame is a 3-byte tag followed by a body: msgpack, raw or compressed.
const (
	// TagSize is the length of a frame tag.
	TagSize = 3

	// TagRaw marks a body of plain msgpack (Python seed).
	TagRaw = "RAW"
	// TagLZ4 marks an LZ4 frame (magic 0x184D2204) of msgpack (Python seed).
	TagLZ4 = "LZ4"
	// TagS2 marks an S2 block (klauspost/compress/s2, not the framed
	// stream) of msgpack. Go-to-Go only.
	TagS2 = "S2B"
	// TagZstd marks a zstd frame of msgpack. Go-to-Go only.
	TagZstd = "ZST"
)

// FrameTag returns the tag of a frame and whether it is one this package
// reads.
func FrameTag(frame []byte) (tag string, known bool) {
	if len(frame) < TagSize {
		return "", false
	}
	switch string(frame[:TagSize]) {
	case TagRaw:
		return TagRaw, true
	case TagLZ4:
		return TagLZ4, true
	case TagS2:
		return TagS2, true
	case TagZstd:
		return TagZstd, true
	}
	return string(frame[:TagSize]), false
}

// AppendFrame appends a frame holding body, a msgpack encoding, to dst,
// compressed as the Codec's options say: only bodies over the compression
// threshold are compressed, and the compressed form is kept only if it is
// under 90% of the raw size.
func (c *Codec) AppendFrame(dst, body []byte) ([]byte, error) {
	if len(body) > c.maxSize {
		return dst, tooLarge("body", len(body), c.maxSize)
	}
	if c.compression != CompressNone && len(body) > c.threshold {
		start := len(dst)
		out, ok, err := c.compress(dst, body)
		if err != nil || ok {
			return out, err
		}
		dst = out[:start]
	}
	return append(append(dst, TagRaw...), body...), nil
}

// beginFrame starts a frame in dst: a placeholder tag, after which the
// caller appends the msgpack body, then calls finishFrame with the same
// start. Encoding the body straight into dst spares a copy for RAW frames
// and lets a reused dst serve any size without allocating.
func beginFrame(dst []byte) ([]byte, int) {
	return append(dst, TagRaw...), len(dst)
}

// finishFrame completes the frame begun at start: it checks the size and,
// when the options say so, compresses the body into a pooled buffer and
// copies the compressed frame over the raw one.
func (c *Codec) finishFrame(dst []byte, start int, err error) ([]byte, error) {
	if err != nil {
		return dst[:start], err
	}
	body := dst[start+TagSize:]
	if len(body) > c.maxSize {
		return dst[:start], tooLarge("body", len(body), c.maxSize)
	}
	if c.compression == CompressNone || len(body) <= c.threshold {
		return dst, nil // the RAW tag is in place
	}
	scratch := c.pool.Get(c.compressBound(len(body)))
	out, ok, err := c.compress(scratch.B, body)
	scratch.B = out
	if ok {
		// Smaller than the raw body, so it fits where the body was.
		dst = append(dst[:start], out...)
	}
	c.pool.Put(scratch)
	return dst, err
}

// compressBound returns the most bytes compress appends for n bytes.
func (c *Codec) compressBound(n int) int {
	switch c.compression {
	case CompressLZ4:
		return TagSize + lz4FrameBound(n)
	case CompressS2, CompressAuto:
		return TagSize + s2.MaxEncodedLen(n)
	}
	return TagSize + n + n>>7 + 512
}

// compress appends a tag and the compressed body to dst and reports
// whether that pays: whether the compressed body is under 90% of the raw
// size. If it does not, the caller truncates dst back.
func (c *Codec) compress(dst, body []byte) ([]byte, bool, error) {
	start := len(dst)
	switch c.compression {
	case CompressLZ4:
		dst = appendLZ4Frame(append(dst, TagLZ4...), body)
	case CompressS2, CompressAuto:
		n := s2.MaxEncodedLen(len(body))
		if n < 0 {
			return dst, false, tooLarge("body", len(body), c.maxSize)
		}
		dst = slices.Grow(dst, TagSize+n)
		dst = append(dst, TagS2...)
		enc := s2.Encode(dst[len(dst):len(dst)+n], body)
		dst = dst[:len(dst)+len(enc)]
	case CompressZstd:
		enc, err := zstdEncoder()
		if err != nil {
			return dst, false, fmt.Errorf("codec: zstd encoder: %w", err)
		}
		dst = enc.EncodeAll(body, append(dst, TagZstd...))
	default:
		return dst, false, nil
	}
	return dst, (len(dst)-start-TagSize)*10 < len(body)*9, nil
}

// DecodeFrame appends the msgpack body of frame to dst, decompressing it
// if needed. It accepts every tag whatever the Codec writes. A body over
// the Codec's max size, raw or decompressed, fails with ErrTooLarge without
// being allocated.
func (c *Codec) DecodeFrame(dst, frame []byte) ([]byte, error) {
	body, _, err := c.decodeBody(dst, frame, false)
	return body, err
}

// decodeBody returns the msgpack body of frame. With alias set, a RAW
// body is returned as a subslice of frame (owned reports false); otherwise
// the body is appended to dst (owned reports true).
func (c *Codec) decodeBody(dst, frame []byte, alias bool) (body []byte, owned bool, err error) {
	if len(frame) < TagSize {
		return dst, false, fmt.Errorf("%w: frame of %d bytes", errTruncated, len(frame))
	}
	src := frame[TagSize:]
	switch string(frame[:TagSize]) {
	case TagRaw:
		if len(src) > c.maxSize {
			return dst, false, tooLarge("RAW body", len(src), c.maxSize)
		}
		if alias {
			return src, false, nil
		}
		return append(dst, src...), true, nil
	case TagLZ4:
		if dst == nil {
			if n := lz4ContentSize(src); n >= 0 && n <= int64(c.maxSize) {
				dst = make([]byte, 0, n)
			}
		}
		dst, err = appendLZ4Decoded(dst, src, c.maxSize)
		return dst, true, err
	case TagS2:
		n, err := s2.DecodedLen(src)
		if err != nil {
			return dst, false, corruptf("bad S2 block: %v", err)
		}
		if n > c.maxSize {
			return dst, false, tooLarge("decompressed S2 block", n, c.maxSize)
		}
		dst = slices.Grow(dst, n)
		out, err := s2.Decode(dst[len(dst):len(dst)+n], src)
		if err != nil {
			return dst, false, corruptf("bad S2 block: %v", err)
		}
		return dst[:len(dst)+len(out)], true, nil
	case TagZstd:
		var h zstd.Header
		if err := h.Decode(src); err != nil {
			return dst, false, corruptf("bad zstd frame: %v", err)
		}
		if h.HasFCS {
			if h.FrameContentSize > uint64(c.maxSize) {
				return dst, false, fmt.Errorf("%w: zstd frame declares %d bytes, limit %d", ErrTooLarge, h.FrameContentSize, c.maxSize)
			}
			dst = slices.Grow(dst, int(h.FrameContentSize))
		}
		dec, err := c.zstdDecoder()
		if err != nil {
			return dst, false, err
		}
		start := len(dst)
		out, err := dec.DecodeAll(src, dst)
		switch {
		case errors.Is(err, zstd.ErrDecoderSizeExceeded), errors.Is(err, zstd.ErrWindowSizeExceeded):
			return dst, false, fmt.Errorf("%w: zstd frame: %v", ErrTooLarge, err)
		case err != nil:
			return dst, false, corruptf("bad zstd frame: %v", err)
		case len(out)-start > c.maxSize:
			return dst, false, tooLarge("decompressed zstd frame", len(out)-start, c.maxSize)
		}
		return out, true, nil
	}
	return dst, false, fmt.Errorf("%w %s", ErrUnknownTag, strconv.Quote(string(frame[:TagSize])))
}
