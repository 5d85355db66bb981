package codec

import (
	"encoding/binary"
	"fmt"
	"slices"
	"sync"

	"github.com/pierrec/lz4/v4"
)

// The LZ4 frame format (https://github.com/lz4/lz4/blob/dev/doc/lz4_Frame_format.md).
const (
	lz4Magic         = 0x184D2204
	lz4FlagVersion   = 0x40
	lz4FlagIndep     = 0x20
	lz4FlagBlockSum  = 0x10
	lz4FlagSize      = 0x08
	lz4FlagSum       = 0x04
	lz4FlagDictID    = 0x01
	lz4Block64K      = 4 << 4 // BD byte for 64 KiB blocks
	lz4BlockMax      = 64 << 10
	lz4Uncompressed  = 0x80000000
	lz4HeaderSize    = 4 + 2 + 8 + 1
	lz4Window        = 64 << 10
	lz4MinFrameBytes = 4 + 2 + 1 + 4
)

// lz4Compressors holds CompressorCCompat values (48 KiB of tables each):
// they produce the reference library's LZ4_compress_fast output.
var lz4Compressors = sync.Pool{New: func() any { return new(lz4.CompressorCCompat) }}

// lz4FrameBound returns the largest LZ4 frame appendLZ4Frame writes for n
// bytes.
func lz4FrameBound(n int) int {
	blocks := (n + lz4BlockMax - 1) / lz4BlockMax
	return lz4HeaderSize + blocks*(4+16) + n + n/255 + 4
}

// appendLZ4Frame appends src as an LZ4 frame, byte for byte as Python's
// lz4.frame.compress(src, compression_level=1) writes it with the reference
// library (checked against liblz4 1.9.4 through Debian's python3-lz4, and
// the seed's vectors): 64 KiB blocks, a content size, no
// checksums; one independent block (pierrec/lz4's CompressorCCompat, a port
// of LZ4_compress_fast) up to 64 KiB, linked blocks (lz4Linked) above.
func appendLZ4Frame(dst, src []byte) []byte {
	dst = slices.Grow(dst, lz4FrameBound(len(src)))
	start := len(dst)
	linked := len(src) > lz4BlockMax
	flg := byte(lz4FlagVersion | lz4FlagSize)
	if !linked {
		flg |= lz4FlagIndep
	}
	dst = binary.LittleEndian.AppendUint32(dst, lz4Magic)
	dst = append(dst, flg, lz4Block64K)
	dst = binary.LittleEndian.AppendUint64(dst, uint64(len(src)))
	dst = append(dst, byte(xxh32(dst[start+4:])>>8))
	if linked {
		dst = appendLZ4Linked(dst, src)
	} else if len(src) > 0 {
		dst = appendLZ4Block(dst, src)
	}
	return binary.LittleEndian.AppendUint32(dst, 0) // end mark
}

// appendLZ4Block appends one independent block of at most 64 KiB.
func appendLZ4Block(dst, block []byte) []byte {
	c := lz4Compressors.Get().(*lz4.CompressorCCompat)
	defer lz4Compressors.Put(c)
	at := len(dst)
	// LZ4F_makeBlock gives the compressor len(block)-1 bytes of room and
	// stores the block uncompressed if that is not enough. For an
	// independent block, compressing with full room and checking the size
	// afterwards gives the same bytes (the reference's output checks fail
	// exactly when the output would not fit) without the per-sequence
	// checks.
	out := dst[at+4 : at+4+lz4.CompressBlockBound(len(block))]
	n, err := c.CompressBlock(block, out)
	if err != nil || n <= 0 || n >= len(block) {
		dst = binary.LittleEndian.AppendUint32(dst, uint32(len(block))|lz4Uncompressed)
		return append(dst, block...)
	}
	dst = binary.LittleEndian.AppendUint32(dst, uint32(n))
	return dst[:len(dst)+n]
}

var lz4LinkedPool = sync.Pool{New: func() any { return new(lz4Linked) }}

// appendLZ4Linked appends the linked blocks of src.
func appendLZ4Linked(dst, src []byte) []byte {
	c := lz4LinkedPool.Get().(*lz4Linked)
	defer lz4LinkedPool.Put(c)
	clear(c.table[:])
	for start := 0; start < len(src); start += lz4BlockMax {
		end := min(start+lz4BlockMax, len(src))
		at := len(dst)
		// Here the room must be exactly len-1, as in LZ4F_makeBlock: where
		// a failing block stops changes the table the next blocks see.
		n := c.compressBlock(src, start, end, dst[at+4:at+4+end-start-1])
		if n == 0 {
			dst = binary.LittleEndian.AppendUint32(dst, uint32(end-start)|lz4Uncompressed)
			dst = append(dst, src[start:end]...)
			continue
		}
		dst = binary.LittleEndian.AppendUint32(dst, uint32(n))
		dst = dst[:len(dst)+n]
	}
	return dst
}

// lz4ContentSize returns the content size an LZ4 frame declares, or -1.
func lz4ContentSize(src []byte) int64 {
	if len(src) < lz4HeaderSize || binary.LittleEndian.Uint32(src) != lz4Magic || src[4]&lz4FlagSize == 0 {
		return -1
	}
	v := binary.LittleEndian.Uint64(src[6:])
	if v > 1<<62 {
		return 1 << 62
	}
	return int64(v)
}

// appendLZ4Decoded decodes the LZ4 frame src and appends its content to dst,
// never holding more than limit bytes of content: a declared content size
// over the limit fails before anything is allocated, and blocks are decoded
// into at most the room left under the limit. Linked blocks (which Python
// writes for bodies over 64 KiB), block and content checksums and a content
// size are all supported; a dictionary ID is not.
func appendLZ4Decoded(dst, src []byte, limit int) ([]byte, error) {
	if len(src) < lz4MinFrameBytes {
		return dst, fmt.Errorf("%w: LZ4 frame of %d bytes", errTruncated, len(src))
	}
	if binary.LittleEndian.Uint32(src) != lz4Magic {
		return dst, corruptf("bad LZ4 frame magic 0x%08x", binary.LittleEndian.Uint32(src))
	}
	flg, bd := src[4], src[5]
	if flg&0xc0 != lz4FlagVersion || flg&0x02 != 0 || bd&0x8f != 0 {
		return dst, corruptf("bad LZ4 frame descriptor 0x%02x 0x%02x", flg, bd)
	}
	if flg&lz4FlagDictID != 0 {
		return dst, corruptf("LZ4 frame needs a dictionary")
	}
	blockMax := 1 << (8 + 2*int(bd>>4&7))
	if bd>>4&7 < 4 {
		return dst, corruptf("bad LZ4 block size id %d", bd>>4&7)
	}
	i := 6
	contentSize := int64(-1)
	if flg&lz4FlagSize != 0 {
		if len(src) < i+8+1 {
			return dst, errTruncated
		}
		v := binary.LittleEndian.Uint64(src[i:])
		if v > uint64(limit) {
			return dst, fmt.Errorf("%w: LZ4 frame declares %d bytes, limit %d", ErrTooLarge, v, limit)
		}
		contentSize = int64(v)
		i += 8
	}
	if byte(xxh32(src[4:i])>>8) != src[i] {
		return dst, corruptf("bad LZ4 frame header checksum")
	}
	i++

	start := len(dst)
	if contentSize >= 0 {
		dst = slices.Grow(dst, int(contentSize))
	}
	linked := flg&lz4FlagIndep == 0
	var spare *Buffer // a whole block of room, when the limit leaves less
	defer func() {
		if spare != nil {
			defaultPool.Put(spare)
		}
	}()
	for {
		if len(src) < i+4 {
			return dst, errTruncated
		}
		size := binary.LittleEndian.Uint32(src[i:])
		i += 4
		if size == 0 {
			break
		}
		raw := size&lz4Uncompressed != 0
		n := int(size &^ lz4Uncompressed)
		if n > blockMax {
			return dst, corruptf("LZ4 block of %d bytes, max %d", n, blockMax)
		}
		if len(src)-i < n {
			return dst, errTruncated
		}
		block := src[i : i+n]
		i += n
		if flg&lz4FlagBlockSum != 0 {
			if len(src) < i+4 {
				return dst, errTruncated
			}
			if xxh32(block) != binary.LittleEndian.Uint32(src[i:]) {
				return dst, corruptf("bad LZ4 block checksum")
			}
			i += 4
		}
		have := len(dst) - start
		room := limit - have
		if contentSize >= 0 {
			// More than the declared size is corrupt; the declared size is
			// already known to be under the limit.
			room = int(contentSize) - have
			if raw && n > room {
				return dst, corruptf("LZ4 frame holds more than the %d bytes it declares", contentSize)
			}
		}
		if raw {
			if n > room {
				return dst, tooLarge("decompressed LZ4 frame", have+n, limit)
			}
			dst = append(dst, block...)
			continue
		}
		var dict []byte
		if linked {
			dict = dst[max(start, len(dst)-lz4Window):]
		}
		if room >= blockMax || contentSize >= 0 {
			w := min(room, blockMax)
			dst = slices.Grow(dst, w)
			m, err := lz4.UncompressBlockWithDict(block, dst[len(dst):len(dst)+w], dict)
			if err != nil {
				return dst, corruptf("bad LZ4 block: %v", err)
			}
			dst = dst[:len(dst)+m]
			continue
		}
		// Less than a block of room is left under the limit: decode into a
		// spare block to tell a corrupt block from one that is too large.
		if spare == nil {
			spare = defaultPool.Get(blockMax)
		}
		m, err := lz4.UncompressBlockWithDict(block, spare.B[:blockMax], dict)
		if err != nil {
			return dst, corruptf("bad LZ4 block: %v", err)
		}
		if m > room {
			return dst, tooLarge("decompressed LZ4 frame", have+m, limit)
		}
		dst = append(dst, spare.B[:m]...)
	}
	if flg&lz4FlagSum != 0 {
		if len(src) < i+4 {
			return dst, errTruncated
		}
		if xxh32(dst[start:]) != binary.LittleEndian.Uint32(src[i:]) {
			return dst, corruptf("bad LZ4 content checksum")
		}
		i += 4
	}
	if contentSize >= 0 && int64(len(dst)-start) != contentSize {
		return dst, corruptf("LZ4 frame holds %d bytes, declares %d", len(dst)-start, contentSize)
	}
	if i != len(src) {
		return dst, corruptf("%d bytes after the LZ4 frame", len(src)-i)
	}
	return dst, nil
}
