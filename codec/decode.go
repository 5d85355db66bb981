package codec

import (
	"encoding/binary"
	"math"
	"strconv"
	"unsafe"
)

// reader decodes msgpack from a byte slice.
//
// With alias set, decoded strings and byte slices point into b instead of
// being copied. That is only safe when b is owned by the decoded values and
// never written again: the frame decoders make sure of it by decoding from a
// buffer they allocated (the decompressed body, or a single copy of a RAW
// body) and then dropping their own reference to it.
type reader struct {
	b       []byte
	i       int
	alias   bool
	ordered bool // maps decode as OrderedMap instead of map[string]any
	depth   int
	slab    *slab // batch decoding: allocate structs in blocks
}

// slab hands out Messages, Headers and Parts from shared blocks, so that
// decoding a batch of n envelopes costs a few allocations instead of 3n.
// A block stays alive while any envelope decoded from it does.
type slab struct {
	msgs    []Message
	headers []Header
	parts   []Part
}

const slabBlock = 128

func (r *reader) newMessage() *Message {
	s := r.slab
	if s == nil {
		return new(Message)
	}
	if len(s.msgs) == 0 {
		s.msgs = make([]Message, slabBlock)
	}
	m := &s.msgs[0]
	s.msgs = s.msgs[1:]
	return m
}

func (r *reader) headerSlice(n int) Headers {
	s := r.slab
	if s == nil || n > slabBlock {
		return make(Headers, 0, n)
	}
	if len(s.headers) < n {
		s.headers = make([]Header, slabBlock*2)
	}
	h := s.headers[:0:n]
	s.headers = s.headers[n:]
	return h
}

func (r *reader) partSlice(n int) []Part {
	s := r.slab
	if s == nil || n > slabBlock {
		return make([]Part, 0, min(n, 64))
	}
	if len(s.parts) < n {
		s.parts = make([]Part, slabBlock)
	}
	p := s.parts[:0:n]
	s.parts = s.parts[n:]
	return p
}

func (r *reader) remaining() int { return len(r.b) - r.i }

// peek returns the next format byte without consuming it.
func (r *reader) peek() (byte, error) {
	if r.i >= len(r.b) {
		return 0, errTruncated
	}
	return r.b[r.i], nil
}

// next consumes n bytes.
func (r *reader) next(n int) ([]byte, error) {
	if n < 0 || n > len(r.b)-r.i {
		return nil, errTruncated
	}
	p := r.b[r.i : r.i+n : r.i+n]
	r.i += n
	return p, nil
}

func (r *reader) byte1() (byte, error) {
	if r.i >= len(r.b) {
		return 0, errTruncated
	}
	c := r.b[r.i]
	r.i++
	return c, nil
}

func (r *reader) uint16() (int, error) {
	p, err := r.next(2)
	if err != nil {
		return 0, err
	}
	return int(binary.BigEndian.Uint16(p)), nil
}

func (r *reader) uint32() (int, error) {
	p, err := r.next(4)
	if err != nil {
		return 0, err
	}
	return int(binary.BigEndian.Uint32(p)), nil
}

func (r *reader) uint64() (uint64, error) {
	p, err := r.next(8)
	if err != nil {
		return 0, err
	}
	return binary.BigEndian.Uint64(p), nil
}

// tryNil consumes a nil and reports whether there was one.
func (r *reader) tryNil() bool {
	if r.i < len(r.b) && r.b[r.i] == mpNil {
		r.i++
		return true
	}
	return false
}

// str makes a string of p, aliasing it when allowed.
func (r *reader) str(p []byte) string {
	if len(p) == 0 {
		return ""
	}
	if r.alias {
		return unsafe.String(&p[0], len(p))
	}
	return string(p)
}

// bin makes a byte slice of p, aliasing it when allowed. The result is never
// nil, so an empty bin stays distinct from nil.
func (r *reader) bin(p []byte) []byte {
	if r.alias {
		return p
	}
	return append(make([]byte, 0, len(p)), p...)
}

// strLen reads the header of a str (or, leniently, a bin: old Python
// packers wrote strings as raw bytes) and returns its length.
func (r *reader) strLen() (int, error) {
	c, err := r.byte1()
	if err != nil {
		return 0, err
	}
	switch {
	case c&0xe0 == 0xa0:
		return int(c & 0x1f), nil
	case c == mpStr8 || c == mpBin8:
		n, err := r.byte1()
		return int(n), err
	case c == mpStr16 || c == mpBin16:
		return r.uint16()
	case c == mpStr32 || c == mpBin32:
		return r.uint32()
	}
	r.i--
	return 0, corruptf("expected a string, found %s", formatName(c))
}

// strBytes reads a str and returns its bytes without copying them.
func (r *reader) strBytes() ([]byte, error) {
	n, err := r.strLen()
	if err != nil {
		return nil, err
	}
	return r.next(n)
}

// readString reads a str.
func (r *reader) readString() (string, error) {
	p, err := r.strBytes()
	if err != nil {
		return "", err
	}
	return r.str(p), nil
}

// readStringOrNil reads a str, or nil as "".
func (r *reader) readStringOrNil() (string, error) {
	if r.tryNil() {
		return "", nil
	}
	return r.readString()
}

// readBinOrNil reads a bin (or a str) as bytes, or nil.
func (r *reader) readBinOrNil() ([]byte, error) {
	if r.tryNil() {
		return nil, nil
	}
	p, err := r.strBytes()
	if err != nil {
		return nil, err
	}
	return r.bin(p), nil
}

// readBool reads a bool, or nil as false.
func (r *reader) readBool() (bool, error) {
	c, err := r.byte1()
	if err != nil {
		return false, err
	}
	switch c {
	case mpTrue:
		return true, nil
	case mpFalse, mpNil:
		return false, nil
	}
	r.i--
	return false, corruptf("expected a bool, found %s", formatName(c))
}

// readInt reads an integer that fits in an int64; nil reads as 0.
func (r *reader) readInt() (int64, error) {
	c, err := r.byte1()
	if err != nil {
		return 0, err
	}
	switch {
	case c <= 0x7f:
		return int64(c), nil
	case c >= 0xe0:
		return int64(int8(c)), nil
	}
	switch c {
	case mpNil:
		return 0, nil
	case mpUint8:
		v, err := r.byte1()
		return int64(v), err
	case mpUint16:
		v, err := r.uint16()
		return int64(v), err
	case mpUint32:
		v, err := r.uint32()
		return int64(v), err
	case mpUint64:
		v, err := r.uint64()
		if err == nil && v > math.MaxInt64 {
			return 0, corruptf("integer %d overflows int64", v)
		}
		return int64(v), err
	case mpInt8:
		v, err := r.byte1()
		return int64(int8(v)), err
	case mpInt16:
		v, err := r.uint16()
		return int64(int16(v)), err
	case mpInt32:
		v, err := r.uint32()
		return int64(int32(v)), err
	case mpInt64:
		v, err := r.uint64()
		return int64(v), err
	}
	r.i--
	return 0, corruptf("expected an integer, found %s", formatName(c))
}

// isStr reports whether c starts a str, a bin or nil.
func isStr(c byte) bool {
	return c&0xe0 == 0xa0 || c == mpNil || (c >= mpStr8 && c <= mpStr32) || (c >= mpBin8 && c <= mpBin32)
}

// arrayLen reads an array header; nil reads as an empty array. The length
// is checked against the bytes left, so that a forged header cannot make
// the caller allocate more than the input could hold.
func (r *reader) arrayLen() (int, error) {
	c, err := r.byte1()
	if err != nil {
		return 0, err
	}
	var n int
	switch {
	case c&0xf0 == 0x90:
		n = int(c & 0x0f)
	case c == mpArray16:
		n, err = r.uint16()
	case c == mpArray32:
		n, err = r.uint32()
	case c == mpNil:
		return 0, nil
	default:
		r.i--
		return 0, corruptf("expected an array, found %s", formatName(c))
	}
	if err != nil {
		return 0, err
	}
	if n > r.remaining() {
		return 0, errTruncated
	}
	return n, nil
}

// mapLen reads a map header; nil reads as an empty map.
func (r *reader) mapLen() (int, error) {
	c, err := r.byte1()
	if err != nil {
		return 0, err
	}
	var n int
	switch {
	case c&0xf0 == 0x80:
		n = int(c & 0x0f)
	case c == mpMap16:
		n, err = r.uint16()
	case c == mpMap32:
		n, err = r.uint32()
	case c == mpNil:
		return 0, nil
	default:
		r.i--
		return 0, corruptf("expected a map, found %s", formatName(c))
	}
	if err != nil {
		return 0, err
	}
	if n > r.remaining()/2 {
		return 0, errTruncated
	}
	return n, nil
}

// enter and leave track nesting.
func (r *reader) enter() error {
	r.depth++
	if r.depth > maxDepth {
		return errTooDeep
	}
	return nil
}

func (r *reader) leave() { r.depth-- }

// readValue decodes any msgpack value into the generic Go types: nil, bool,
// int64 (or uint64 above MaxInt64), float64, float32, string, []byte,
// []any, map[string]any (or OrderedMap when r.ordered) and Ext.
func (r *reader) readValue() (any, error) {
	c, err := r.byte1()
	if err != nil {
		return nil, err
	}
	switch {
	case c <= 0x7f:
		return int64(c), nil
	case c >= 0xe0:
		return int64(int8(c)), nil
	case c&0xe0 == 0xa0:
		p, err := r.next(int(c & 0x1f))
		if err != nil {
			return nil, err
		}
		return r.str(p), nil
	case c&0xf0 == 0x90:
		r.i--
		return r.readArray()
	case c&0xf0 == 0x80:
		r.i--
		return r.readMap()
	}
	switch c {
	case mpNil:
		return nil, nil
	case mpFalse:
		return false, nil
	case mpTrue:
		return true, nil
	case mpUint8:
		v, err := r.byte1()
		return int64(v), err
	case mpUint16:
		v, err := r.uint16()
		return int64(v), err
	case mpUint32:
		v, err := r.uint32()
		return int64(v), err
	case mpUint64:
		v, err := r.uint64()
		if err != nil {
			return nil, err
		}
		if v > math.MaxInt64 {
			return v, nil
		}
		return int64(v), nil
	case mpInt8:
		v, err := r.byte1()
		return int64(int8(v)), err
	case mpInt16:
		v, err := r.uint16()
		return int64(int16(v)), err
	case mpInt32:
		v, err := r.uint32()
		return int64(int32(v)), err
	case mpInt64:
		v, err := r.uint64()
		return int64(v), err
	case mpFloat32:
		v, err := r.uint32()
		return math.Float32frombits(uint32(v)), err
	case mpFloat64:
		v, err := r.uint64()
		return math.Float64frombits(v), err
	case mpStr8, mpStr16, mpStr32:
		r.i--
		return r.readString()
	case mpBin8, mpBin16, mpBin32:
		r.i--
		p, err := r.strBytes()
		if err != nil {
			return nil, err
		}
		return r.bin(p), nil
	case mpArray16, mpArray32:
		r.i--
		return r.readArray()
	case mpMap16, mpMap32:
		r.i--
		return r.readMap()
	case 0xd4, 0xd5, 0xd6, 0xd7, 0xd8, mpExt8, mpExt16, mpExt32:
		r.i--
		return r.readExt()
	}
	return nil, corruptf("invalid msgpack format byte 0x%02x", c)
}

func (r *reader) readExt() (any, error) {
	c, _ := r.byte1()
	var n int
	var err error
	switch c {
	case 0xd4, 0xd5, 0xd6, 0xd7, 0xd8:
		n = 1 << (c - 0xd4)
	case mpExt8:
		var v byte
		v, err = r.byte1()
		n = int(v)
	case mpExt16:
		n, err = r.uint16()
	case mpExt32:
		n, err = r.uint32()
	}
	if err != nil {
		return nil, err
	}
	t, err := r.byte1()
	if err != nil {
		return nil, err
	}
	p, err := r.next(n)
	if err != nil {
		return nil, err
	}
	return Ext{Type: int8(t), Data: r.bin(p)}, nil
}

func (r *reader) readArray() (any, error) {
	if r.tryNil() {
		return nil, nil
	}
	n, err := r.arrayLen()
	if err != nil {
		return nil, err
	}
	if err := r.enter(); err != nil {
		return nil, err
	}
	// Preallocate no more than a modest amount: every element costs at
	// least one input byte but 16 bytes here.
	a := make([]any, 0, min(n, 1024))
	for range n {
		v, err := r.readValue()
		if err != nil {
			return nil, err
		}
		a = append(a, v)
	}
	r.leave()
	return a, nil
}

func (r *reader) readMap() (any, error) {
	if r.tryNil() {
		return nil, nil
	}
	n, err := r.mapLen()
	if err != nil {
		return nil, err
	}
	if err := r.enter(); err != nil {
		return nil, err
	}
	defer r.leave()
	if r.ordered {
		m := make(OrderedMap, 0, min(n, 1024))
		for range n {
			k, err := r.readKey()
			if err != nil {
				return nil, err
			}
			v, err := r.readValue()
			if err != nil {
				return nil, err
			}
			m = append(m, KV{Key: k, Value: v})
		}
		return m, nil
	}
	m := make(map[string]any, min(n, 1024))
	for range n {
		k, err := r.readKey()
		if err != nil {
			return nil, err
		}
		if m[k], err = r.readValue(); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// readGenericMap reads a map into a map[string]any regardless of r.ordered.
func (r *reader) readGenericMap() (map[string]any, error) {
	ordered := r.ordered
	r.ordered = false
	v, err := r.readMap()
	r.ordered = ordered
	if err != nil || v == nil {
		return nil, err
	}
	return v.(map[string]any), nil
}

// readKey reads a map key as a string. Keys are str (or bin) in everything
// Python's msgpack unpacks by default; integer, float, bool and nil keys are
// accepted and written in decimal (or "true", "false", "null").
func (r *reader) readKey() (string, error) {
	c, err := r.peek()
	if err != nil {
		return "", err
	}
	if isStr(c) && c != mpNil {
		return r.readString()
	}
	v, err := r.readValue()
	if err != nil {
		return "", err
	}
	switch k := v.(type) {
	case nil:
		return "null", nil
	case bool:
		return strconv.FormatBool(k), nil
	case int64:
		return strconv.FormatInt(k, 10), nil
	case uint64:
		return strconv.FormatUint(k, 10), nil
	case float64:
		return strconv.FormatFloat(k, 'g', -1, 64), nil
	case float32:
		return strconv.FormatFloat(float64(k), 'g', -1, 32), nil
	}
	return "", corruptf("map key of type %T", v)
}

// skip skips one value of any type.
func (r *reader) skip() error {
	c, err := r.byte1()
	if err != nil {
		return err
	}
	n := 0
	switch {
	case c <= 0x7f || c >= 0xe0:
		return nil
	case c&0xe0 == 0xa0:
		_, err = r.next(int(c & 0x1f))
		return err
	case c&0xf0 == 0x90:
		return r.skipN(int(c & 0x0f))
	case c&0xf0 == 0x80:
		return r.skipN(2 * int(c&0x0f))
	}
	switch c {
	case mpNil, mpFalse, mpTrue:
		return nil
	case mpUint8, mpInt8:
		_, err = r.next(1)
	case mpUint16, mpInt16:
		_, err = r.next(2)
	case mpUint32, mpInt32, mpFloat32:
		_, err = r.next(4)
	case mpUint64, mpInt64, mpFloat64:
		_, err = r.next(8)
	case mpStr8, mpBin8:
		var v byte
		if v, err = r.byte1(); err == nil {
			_, err = r.next(int(v))
		}
	case mpStr16, mpBin16:
		if n, err = r.uint16(); err == nil {
			_, err = r.next(n)
		}
	case mpStr32, mpBin32:
		if n, err = r.uint32(); err == nil {
			_, err = r.next(n)
		}
	case 0xd4, 0xd5, 0xd6, 0xd7, 0xd8, mpExt8, mpExt16, mpExt32:
		r.i--
		_, err = r.readExt()
	case mpArray16:
		if n, err = r.uint16(); err == nil {
			err = r.skipN(n)
		}
	case mpArray32:
		if n, err = r.uint32(); err == nil {
			err = r.skipN(n)
		}
	case mpMap16:
		if n, err = r.uint16(); err == nil {
			err = r.skipN(2 * n)
		}
	case mpMap32:
		if n, err = r.uint32(); err == nil {
			err = r.skipN(2 * n)
		}
	default:
		return corruptf("invalid msgpack format byte 0x%02x", c)
	}
	return err
}

func (r *reader) skipN(n int) error {
	if n > r.remaining() {
		return errTruncated
	}
	if err := r.enter(); err != nil {
		return err
	}
	for range n {
		if err := r.skip(); err != nil {
			return err
		}
	}
	r.leave()
	return nil
}

// formatName names a msgpack format byte for error messages.
func formatName(c byte) string {
	switch {
	case c <= 0x7f || c >= 0xe0 || (c >= mpUint8 && c <= mpInt64):
		return "an integer"
	case c&0xe0 == 0xa0 || (c >= mpStr8 && c <= mpStr32):
		return "a string"
	case c&0xf0 == 0x90 || c == mpArray16 || c == mpArray32:
		return "an array"
	case c&0xf0 == 0x80 || c == mpMap16 || c == mpMap32:
		return "a map"
	case c == mpNil:
		return "nil"
	case c == mpTrue || c == mpFalse:
		return "a bool"
	case c == mpFloat32 || c == mpFloat64:
		return "a float"
	case c >= mpBin8 && c <= mpBin32:
		return "binary data"
	case (c >= mpFixExt1 && c <= mpFixExt16) || (c >= mpExt8 && c <= mpExt32):
		return "an extension"
	}
	return "format byte 0x" + strconv.FormatUint(uint64(c), 16)
}

// UnmarshalValue decodes one msgpack value (with nothing after it) into the
// generic Go types: nil, bool, int64 (uint64 for integers above MaxInt64),
// float64 (float32 for msgpack float 32), string, []byte, []any,
// map[string]any and Ext. Strings and byte slices are copied out of b.
func UnmarshalValue(b []byte) (any, error) {
	r := reader{b: b}
	return r.readTop()
}

// UnmarshalOrdered is UnmarshalValue with maps decoded as OrderedMap, in
// the order of the encoding.
func UnmarshalOrdered(b []byte) (any, error) {
	r := reader{b: b, ordered: true}
	return r.readTop()
}

func (r *reader) readTop() (any, error) {
	v, err := r.readValue()
	if err != nil {
		return nil, err
	}
	if r.i != len(r.b) {
		return nil, corruptf("%d bytes after the value", len(r.b)-r.i)
	}
	return v, nil
}
