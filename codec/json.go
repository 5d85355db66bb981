package codec

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// JSON mapping of msgpack values, as used by `agentd codec` and the seed's
// test vectors:
//
//   - msgpack bin is {"$bytes": "<standard base64>"};
//   - integers are exact over the whole int64 and uint64 range (no float
//     rounding): JSON numbers without a fraction or exponent are integers,
//     the others floats (a float with an integral value is written as 1.0);
//   - map keys are strings (non-string msgpack keys are written in decimal);
//   - floats JSON cannot hold are {"$float": "NaN" | "Infinity" | "-Infinity"};
//   - msgpack extension values are {"$ext": {"type": N, "data": "<base64>"}}.
//
// Object key order is preserved both ways, so a JSON document converted to
// msgpack gives the bytes Python's msgpack.packb gives for the same dict.

// ParseJSON parses a JSON document into a value for AppendValue, following
// the mapping above: objects become OrderedMap, arrays []any, integers
// int64 (uint64 above MaxInt64), other numbers float64, and the $bytes,
// $ext and $float objects []byte, Ext and float64.
func ParseJSON(data []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	v, err := parseJSONValue(d, 0)
	if err != nil {
		return nil, err
	}
	if _, err := d.Token(); err != io.EOF {
		return nil, corruptf("JSON: data after the top-level value")
	}
	return v, nil
}

func jsonError(err error) error {
	if errors.Is(err, ErrCorrupt) {
		return err
	}
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return corruptf("JSON: %v", err)
}

func parseJSONValue(d *json.Decoder, depth int) (any, error) {
	if depth > maxDepth {
		return nil, errTooDeep
	}
	tok, err := d.Token()
	if err != nil {
		return nil, jsonError(err)
	}
	switch t := tok.(type) {
	case nil, bool, string:
		return t, nil
	case json.Number:
		return parseJSONNumber(string(t))
	case json.Delim:
		switch t {
		case '[':
			a := []any{}
			for d.More() {
				v, err := parseJSONValue(d, depth+1)
				if err != nil {
					return nil, err
				}
				a = append(a, v)
			}
			if _, err := d.Token(); err != nil {
				return nil, jsonError(err)
			}
			return a, nil
		case '{':
			m := OrderedMap{}
			for d.More() {
				kt, err := d.Token()
				if err != nil {
					return nil, jsonError(err)
				}
				k, _ := kt.(string)
				v, err := parseJSONValue(d, depth+1)
				if err != nil {
					return nil, err
				}
				m = append(m, KV{Key: k, Value: v})
			}
			if _, err := d.Token(); err != nil {
				return nil, jsonError(err)
			}
			return specialJSON(m)
		}
	}
	return nil, corruptf("JSON: unexpected token %v", tok)
}

// parseJSONNumber parses an integer exactly, or a float.
func parseJSONNumber(s string) (any, error) {
	if !strings.ContainsAny(s, ".eE") {
		if v, err := strconv.ParseInt(s, 10, 64); err == nil {
			return v, nil
		}
		if v, err := strconv.ParseUint(s, 10, 64); err == nil {
			return v, nil
		}
		return nil, corruptf("JSON: integer %s is outside the int64 and uint64 range", s)
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return nil, corruptf("JSON: number %s: %v", s, err)
	}
	return v, nil
}

// specialJSON turns the $bytes, $ext and $float objects into their values.
func specialJSON(m OrderedMap) (any, error) {
	if len(m) != 1 || !strings.HasPrefix(m[0].Key, "$") {
		return m, nil
	}
	switch m[0].Key {
	case "$bytes":
		s, ok := m[0].Value.(string)
		if !ok {
			return nil, corruptf("JSON: $bytes must be a base64 string")
		}
		return decodeBase64(s)
	case "$float":
		switch m[0].Value {
		case "NaN":
			return math.NaN(), nil
		case "Infinity":
			return math.Inf(1), nil
		case "-Infinity":
			return math.Inf(-1), nil
		}
		return nil, corruptf("JSON: $float must be NaN, Infinity or -Infinity")
	case "$ext":
		e, ok := m[0].Value.(OrderedMap)
		if ok {
			t, tok := e.Get("type")
			d, dok := e.Get("data")
			ti, iok := t.(int64)
			ds, sok := d.(string)
			if len(e) == 2 && tok && dok && iok && sok && ti >= math.MinInt8 && ti <= math.MaxInt8 {
				data, err := decodeBase64(ds)
				if err != nil {
					return nil, err
				}
				return Ext{Type: int8(ti), Data: data}, nil
			}
		}
		return nil, corruptf(`JSON: $ext must be {"type": -128..127, "data": base64}`)
	}
	return m, nil
}

func decodeBase64(s string) ([]byte, error) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		if b2, err2 := base64.RawStdEncoding.DecodeString(s); err2 == nil {
			return b2, nil
		}
		return nil, corruptf("JSON: bad base64: %v", err)
	}
	return b, nil
}

// AppendJSON appends v, a value of the generic types UnmarshalValue and
// ParseJSON return (plus the other integer widths, []string and
// map[string]string), as compact JSON following the mapping above.
// map[string]any keys are sorted; OrderedMap keys keep their order.
func AppendJSON(dst []byte, v any) ([]byte, error) {
	return appendJSON(dst, v, 0)
}

func appendJSON(b []byte, v any, depth int) ([]byte, error) {
	if depth > maxDepth {
		return b, fmt.Errorf("%w: nesting deeper than %d levels", ErrInvalidValue, maxDepth)
	}
	var err error
	switch v := v.(type) {
	case nil:
		return append(b, "null"...), nil
	case bool:
		return strconv.AppendBool(b, v), nil
	case string:
		return appendJSONString(b, v), nil
	case int64:
		return strconv.AppendInt(b, v, 10), nil
	case uint64:
		return strconv.AppendUint(b, v, 10), nil
	case int:
		return strconv.AppendInt(b, int64(v), 10), nil
	case int32:
		return strconv.AppendInt(b, int64(v), 10), nil
	case int16:
		return strconv.AppendInt(b, int64(v), 10), nil
	case int8:
		return strconv.AppendInt(b, int64(v), 10), nil
	case uint:
		return strconv.AppendUint(b, uint64(v), 10), nil
	case uint32:
		return strconv.AppendUint(b, uint64(v), 10), nil
	case uint16:
		return strconv.AppendUint(b, uint64(v), 10), nil
	case uint8:
		return strconv.AppendUint(b, uint64(v), 10), nil
	case float64:
		return appendJSONFloat(b, v, 64), nil
	case json.Number:
		n, err := parseJSONNumber(string(v))
		if err != nil {
			return b, fmt.Errorf("%w: json.Number %q", ErrInvalidValue, string(v))
		}
		return appendJSON(b, n, depth)
	case float32:
		return appendJSONFloat(b, float64(v), 32), nil
	case []byte:
		b = append(b, `{"$bytes":"`...)
		b = base64.StdEncoding.AppendEncode(b, v)
		return append(b, `"}`...), nil
	case Ext:
		b = fmt.Appendf(b, `{"$ext":{"type":%d,"data":"`, v.Type)
		b = base64.StdEncoding.AppendEncode(b, v.Data)
		return append(b, `"}}`...), nil
	case []any:
		b = append(b, '[')
		for i, e := range v {
			if i > 0 {
				b = append(b, ',')
			}
			if b, err = appendJSON(b, e, depth+1); err != nil {
				return b, err
			}
		}
		return append(b, ']'), nil
	case []string:
		b = append(b, '[')
		for i, e := range v {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, e)
		}
		return append(b, ']'), nil
	case OrderedMap:
		b = append(b, '{')
		for i, kv := range v {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(appendJSONString(b, kv.Key), ':')
			if b, err = appendJSON(b, kv.Value, depth+1); err != nil {
				return b, err
			}
		}
		return append(b, '}'), nil
	case map[string]any:
		b = append(b, '{')
		for i, k := range slices.Sorted(maps.Keys(v)) {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(appendJSONString(b, k), ':')
			if b, err = appendJSON(b, v[k], depth+1); err != nil {
				return b, err
			}
		}
		return append(b, '}'), nil
	case map[string]string:
		b = append(b, '{')
		for i, k := range slices.Sorted(maps.Keys(v)) {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(appendJSONString(b, k), ':')
			b = appendJSONString(b, v[k])
		}
		return append(b, '}'), nil
	}
	return b, fmt.Errorf("%w: %T has no JSON form here", ErrInvalidValue, v)
}

// appendJSONFloat writes a float so that it reads back as a float: with a
// fraction or an exponent (1.0, not 1), and NaN and infinities as $float.
func appendJSONFloat(b []byte, f float64, bits int) []byte {
	switch {
	case math.IsNaN(f):
		return append(b, `{"$float":"NaN"}`...)
	case math.IsInf(f, 1):
		return append(b, `{"$float":"Infinity"}`...)
	case math.IsInf(f, -1):
		return append(b, `{"$float":"-Infinity"}`...)
	}
	start := len(b)
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, bits)
	if !bytes.ContainsAny(b[start:], ".e") {
		b = append(b, ".0"...)
	}
	return b
}

const hexDigits = "0123456789abcdef"

// appendJSONString writes s as a JSON string. Invalid UTF-8 is replaced by
// U+FFFD, as encoding/json does.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i++
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// MsgpackToJSON appends the JSON form of the msgpack value body to dst,
// keeping map key order.
func MsgpackToJSON(dst, body []byte) ([]byte, error) {
	v, err := UnmarshalOrdered(body)
	if err != nil {
		return dst, err
	}
	return AppendJSON(dst, v)
}

// JSONToMsgpack appends the msgpack encoding of the JSON document js to
// dst, keeping object key order.
func JSONToMsgpack(dst, js []byte) ([]byte, error) {
	v, err := ParseJSON(js)
	if err != nil {
		return dst, err
	}
	return AppendValue(dst, v)
}
