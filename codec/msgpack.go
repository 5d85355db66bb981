package codec

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"sync"

	"github.com/vmihailenco/msgpack/v5"
)

// maxDepth bounds the nesting of arrays and maps, on encode (which also
// catches cycles) and on decode (so that hostile input cannot exhaust the
// stack). It matches the stack of the msgpack C unpacker Python uses.
const maxDepth = 1024

// KV is one entry of an OrderedMap.
type KV struct {
	Key   string
	Value any
}

// OrderedMap is a msgpack map whose entries keep their order, as Python's
// dicts do. AppendValue writes the entries in order, so a value parsed with
// ParseJSON or UnmarshalOrdered re-encodes to the same bytes as the original.
type OrderedMap []KV

// Get returns the value of the first entry with the given key.
func (m OrderedMap) Get(key string) (any, bool) {
	for _, kv := range m {
		if kv.Key == key {
			return kv.Value, true
		}
	}
	return nil, false
}

// Ext is a msgpack extension value that this package does not interpret.
type Ext struct {
	Type int8
	Data []byte
}

// Msgpack format bytes.
const (
	mpNil      = 0xc0
	mpFalse    = 0xc2
	mpTrue     = 0xc3
	mpBin8     = 0xc4
	mpBin16    = 0xc5
	mpBin32    = 0xc6
	mpExt8     = 0xc7
	mpExt16    = 0xc8
	mpExt32    = 0xc9
	mpFloat32  = 0xca
	mpFloat64  = 0xcb
	mpUint8    = 0xcc
	mpUint16   = 0xcd
	mpUint32   = 0xce
	mpUint64   = 0xcf
	mpInt8     = 0xd0
	mpInt16    = 0xd1
	mpInt32    = 0xd2
	mpInt64    = 0xd3
	mpFixExt1  = 0xd4
	mpFixExt16 = 0xd8
	mpStr8     = 0xd9
	mpStr16    = 0xda
	mpStr32    = 0xdb
	mpArray16  = 0xdc
	mpArray32  = 0xdd
	mpMap16    = 0xde
	mpMap32    = 0xdf
)

// appendNil appends msgpack nil.
func appendNil(b []byte) []byte { return append(b, mpNil) }

// appendBool appends a msgpack bool.
func appendBool(b []byte, v bool) []byte {
	if v {
		return append(b, mpTrue)
	}
	return append(b, mpFalse)
}

// appendInt appends v in the smallest msgpack integer form, as Python's
// msgpack does: non-negative values use the unsigned forms.
func appendInt(b []byte, v int64) []byte {
	if v >= 0 {
		return appendUint(b, uint64(v))
	}
	switch {
	case v >= -32:
		return append(b, byte(v))
	case v >= math.MinInt8:
		return append(b, mpInt8, byte(v))
	case v >= math.MinInt16:
		return append(b, mpInt16, byte(v>>8), byte(v))
	case v >= math.MinInt32:
		return binary.BigEndian.AppendUint32(append(b, mpInt32), uint32(v))
	default:
		return binary.BigEndian.AppendUint64(append(b, mpInt64), uint64(v))
	}
}

// appendUint appends v in the smallest unsigned msgpack integer form.
func appendUint(b []byte, v uint64) []byte {
	switch {
	case v <= 0x7f:
		return append(b, byte(v))
	case v <= math.MaxUint8:
		return append(b, mpUint8, byte(v))
	case v <= math.MaxUint16:
		return append(b, mpUint16, byte(v>>8), byte(v))
	case v <= math.MaxUint32:
		return binary.BigEndian.AppendUint32(append(b, mpUint32), uint32(v))
	default:
		return binary.BigEndian.AppendUint64(append(b, mpUint64), v)
	}
}

// appendFloat64 appends a msgpack float 64, the form Python uses for every
// float.
func appendFloat64(b []byte, v float64) []byte {
	return binary.BigEndian.AppendUint64(append(b, mpFloat64), math.Float64bits(v))
}

// appendFloat32 appends a msgpack float 32.
func appendFloat32(b []byte, v float32) []byte {
	return binary.BigEndian.AppendUint32(append(b, mpFloat32), math.Float32bits(v))
}

// appendStrHeader appends the header of a msgpack str of n bytes, using str8
// as Python does with use_bin_type=True.
func appendStrHeader(b []byte, n int) []byte {
	switch {
	case n <= 31:
		return append(b, 0xa0|byte(n))
	case n <= math.MaxUint8:
		return append(b, mpStr8, byte(n))
	case n <= math.MaxUint16:
		return append(b, mpStr16, byte(n>>8), byte(n))
	default:
		return binary.BigEndian.AppendUint32(append(b, mpStr32), uint32(n))
	}
}

// appendStr appends a msgpack str.
func appendStr(b []byte, s string) []byte {
	return append(appendStrHeader(b, len(s)), s...)
}

// appendBin appends a msgpack bin.
func appendBin(b []byte, v []byte) []byte {
	n := len(v)
	switch {
	case n <= math.MaxUint8:
		b = append(b, mpBin8, byte(n))
	case n <= math.MaxUint16:
		b = append(b, mpBin16, byte(n>>8), byte(n))
	default:
		b = binary.BigEndian.AppendUint32(append(b, mpBin32), uint32(n))
	}
	return append(b, v...)
}

// appendArrayHeader appends the header of a msgpack array of n elements.
func appendArrayHeader(b []byte, n int) []byte {
	switch {
	case n <= 15:
		return append(b, 0x90|byte(n))
	case n <= math.MaxUint16:
		return append(b, mpArray16, byte(n>>8), byte(n))
	default:
		return binary.BigEndian.AppendUint32(append(b, mpArray32), uint32(n))
	}
}

// appendMapHeader appends the header of a msgpack map of n entries.
func appendMapHeader(b []byte, n int) []byte {
	switch {
	case n <= 15:
		return append(b, 0x80|byte(n))
	case n <= math.MaxUint16:
		return append(b, mpMap16, byte(n>>8), byte(n))
	default:
		return binary.BigEndian.AppendUint32(append(b, mpMap32), uint32(n))
	}
}

// appendExt appends a msgpack extension value.
func appendExt(b []byte, typ int8, data []byte) []byte {
	n := len(data)
	switch n {
	case 1:
		b = append(b, 0xd4, byte(typ))
	case 2:
		b = append(b, 0xd5, byte(typ))
	case 4:
		b = append(b, 0xd6, byte(typ))
	case 8:
		b = append(b, 0xd7, byte(typ))
	case 16:
		b = append(b, 0xd8, byte(typ))
	default:
		switch {
		case n <= math.MaxUint8:
			b = append(b, mpExt8, byte(n), byte(typ))
		case n <= math.MaxUint16:
			b = append(b, mpExt16, byte(n>>8), byte(n), byte(typ))
		default:
			b = binary.BigEndian.AppendUint32(append(b, mpExt32), uint32(n))
			b = append(b, byte(typ))
		}
	}
	return append(b, data...)
}

// appendStringMap appends a map[string]string.
func appendStringMap(b []byte, m map[string]string) []byte {
	b = appendMapHeader(b, len(m))
	for k, v := range m {
		b = appendStr(appendStr(b, k), v)
	}
	return b
}

// appendStrings appends a []string as a msgpack array.
func appendStrings(b []byte, s []string) []byte {
	b = appendArrayHeader(b, len(s))
	for _, v := range s {
		b = appendStr(b, v)
	}
	return b
}

// Appender is implemented by types that write their own msgpack encoding,
// such as Envelope and the A2A types. AppendValue uses it.
type Appender interface {
	AppendMsgpack(dst []byte) ([]byte, error)
}

// AppendValue appends the msgpack encoding of v to dst.
//
// The common dynamic types are encoded without reflection, in the forms
// Python's msgpack.packb(v, use_bin_type=True) chooses: nil, bool, every
// integer type (smallest form), float64 (float 64), float32 (float 32),
// string (str), []byte (bin), []any, []string, map[string]any,
// map[string]string, OrderedMap, Ext, json.Number (as an exact integer or a
// float) and Appender. Other types (structs,
// typed slices and maps) go through github.com/vmihailenco/msgpack/v5 with
// compact integers. Go maps are written in Go's iteration order; use
// OrderedMap when the byte order of keys matters.
func AppendValue(dst []byte, v any) ([]byte, error) {
	return appendValue(dst, v, 0)
}

func appendValue(b []byte, v any, depth int) ([]byte, error) {
	if depth > maxDepth {
		return b, fmt.Errorf("%w: nesting deeper than %d levels (a cycle?)", ErrInvalidValue, maxDepth)
	}
	var err error
	switch v := v.(type) {
	case nil:
		return appendNil(b), nil
	case bool:
		return appendBool(b, v), nil
	case string:
		return appendStr(b, v), nil
	case int:
		return appendInt(b, int64(v)), nil
	case int64:
		return appendInt(b, v), nil
	case int32:
		return appendInt(b, int64(v)), nil
	case int16:
		return appendInt(b, int64(v)), nil
	case int8:
		return appendInt(b, int64(v)), nil
	case uint:
		return appendUint(b, uint64(v)), nil
	case uint64:
		return appendUint(b, v), nil
	case uint32:
		return appendUint(b, uint64(v)), nil
	case uint16:
		return appendUint(b, uint64(v)), nil
	case uint8:
		return appendUint(b, uint64(v)), nil
	case float64:
		return appendFloat64(b, v), nil
	case float32:
		return appendFloat32(b, v), nil
	case []byte:
		if v == nil {
			return appendNil(b), nil
		}
		return appendBin(b, v), nil
	case []any:
		if v == nil {
			return appendNil(b), nil
		}
		b = appendArrayHeader(b, len(v))
		for _, e := range v {
			if b, err = appendValue(b, e, depth+1); err != nil {
				return b, err
			}
		}
		return b, nil
	case map[string]any:
		if v == nil {
			return appendNil(b), nil
		}
		b = appendMapHeader(b, len(v))
		for k, e := range v {
			b = appendStr(b, k)
			if b, err = appendValue(b, e, depth+1); err != nil {
				return b, err
			}
		}
		return b, nil
	case OrderedMap:
		if v == nil {
			return appendNil(b), nil
		}
		b = appendMapHeader(b, len(v))
		for _, kv := range v {
			b = appendStr(b, kv.Key)
			if b, err = appendValue(b, kv.Value, depth+1); err != nil {
				return b, err
			}
		}
		return b, nil
	case []string:
		if v == nil {
			return appendNil(b), nil
		}
		return appendStrings(b, v), nil
	case map[string]string:
		if v == nil {
			return appendNil(b), nil
		}
		return appendStringMap(b, v), nil
	case Ext:
		return appendExt(b, v.Type, v.Data), nil
	case json.Number:
		n, err := parseJSONNumber(string(v))
		if err != nil {
			return b, fmt.Errorf("%w: json.Number %q", ErrInvalidValue, string(v))
		}
		return appendValue(b, n, depth)
	case Appender:
		if rv := reflect.ValueOf(v); rv.Kind() == reflect.Pointer && rv.IsNil() {
			return appendNil(b), nil
		}
		return v.AppendMsgpack(b)
	}
	return appendReflect(b, v)
}

// reflectEncoder wraps a vmihailenco encoder configured as Python packs.
type reflectEncoder struct {
	buf bytes.Buffer
	enc *msgpack.Encoder
}

var reflectEncoders = sync.Pool{New: func() any {
	e := &reflectEncoder{}
	e.enc = msgpack.NewEncoder(&e.buf)
	e.enc.UseCompactInts(true)
	return e
}}

// appendReflect encodes values of other types with vmihailenco/msgpack.
func appendReflect(b []byte, v any) (out []byte, err error) {
	e := reflectEncoders.Get().(*reflectEncoder)
	defer reflectEncoders.Put(e)
	e.buf.Reset()
	// vmihailenco/msgpack can panic on some exotic values (such as cyclic
	// pointers); turn that into an error rather than crashing the caller.
	defer func() {
		if r := recover(); r != nil {
			out, err = b, fmt.Errorf("%w: %T: %v", ErrInvalidValue, v, r)
		}
	}()
	if err := e.enc.Encode(v); err != nil {
		return b, fmt.Errorf("%w: %T: %v", ErrInvalidValue, v, err)
	}
	return append(b, e.buf.Bytes()...), nil
}
