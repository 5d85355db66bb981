package codec

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
)

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }
func jsonUnmarshal(b []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	return d.Decode(v)
}
func contains(s, sub string) bool { return strings.Contains(s, sub) }

func TestJSONRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		json string
		want any
	}{
		{"max int64", `9223372036854775807`, int64(math.MaxInt64)},
		{"min int64", `-9223372036854775808`, int64(math.MinInt64)},
		{"max uint64", `18446744073709551615`, uint64(math.MaxUint64)},
		{"float", `0.5566648979370926`, 0.5566648979370926},
		{"integral float", `1.0`, 1.0},
		{"exponent", `1e+300`, 1e300},
		{"bytes", `{"$bytes":"AAEC"}`, []byte{0, 1, 2}},
		{"nan", `{"$float":"NaN"}`, math.NaN()},
		{"inf", `{"$float":"-Infinity"}`, math.Inf(-1)},
		{"ext", `{"$ext":{"type":-1,"data":"AAAAAQ=="}}`, Ext{Type: -1, Data: []byte{0, 0, 0, 1}}},
		{"order", `{"b":1,"a":[true,null,"x"]}`, OrderedMap{{"b", int64(1)}, {"a", []any{true, nil, "x"}}}},
		{"escapes", `"a\"b\\c\n\u0001ü"`, "a\"b\\c\n\x01ü"},
		{"empty", `{}`, OrderedMap{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := ParseJSON([]byte(tt.json))
			if err != nil {
				t.Fatal(err)
			}
			if f, ok := tt.want.(float64); ok && math.IsNaN(f) {
				if g, ok := v.(float64); !ok || !math.IsNaN(g) {
					t.Fatalf("got %v", v)
				}
			} else if !reflect.DeepEqual(v, tt.want) {
				t.Fatalf("ParseJSON = %#v, want %#v", v, tt.want)
			}
			mp, err := JSONToMsgpack(nil, []byte(tt.json))
			if err != nil {
				t.Fatal(err)
			}
			js, err := MsgpackToJSON(nil, mp)
			if err != nil {
				t.Fatal(err)
			}
			if string(js) != tt.json {
				t.Fatalf("JSON round trip gives %s, want %s", js, tt.json)
			}
		})
	}
}

func TestParseJSONErrors(t *testing.T) {
	for _, in := range []string{
		``, `{`, `[1,]`, `18446744073709551616`, `-9223372036854775809`, `{"$bytes":1}`,
		`{"$bytes":"!!"}`, `{"$float":"x"}`, `{"$ext":{"type":999,"data":""}}`, `1 2`, `1e999`,
		strings.Repeat("[", 2000) + strings.Repeat("]", 2000),
	} {
		if _, err := ParseJSON([]byte(in)); !errors.Is(err, ErrCorrupt) {
			t.Errorf("ParseJSON(%.20q) err = %v", in, err)
		}
	}
}

func TestAppendJSONFloatsAndKeys(t *testing.T) {
	v := map[string]any{"b": float32(1.5), "a": 1e-7, "c": 123456789.0, "d": map[string]string{"y": "1", "x": "2"}, "e": []string{"s"}}
	js, err := AppendJSON(nil, v)
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"a":1e-07,"b":1.5,"c":123456789.0,"d":{"x":"2","y":"1"},"e":["s"]}`
	if string(js) != want {
		t.Fatalf("got %s\nwant %s", js, want)
	}
	if _, err := AppendJSON(nil, struct{}{}); !errors.Is(err, ErrInvalidValue) {
		t.Fatalf("struct: %v", err)
	}
	// Non-string msgpack keys become strings.
	body := []byte{0x84, 0x01, 0xa1, 'a', 0xc3, 0xa1, 'b', 0xc0, 0xa1, 'c', 0xcb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0, 0xa1, 'd'}
	js, err = MsgpackToJSON(nil, body)
	if err != nil || !bytes.Equal(js, []byte(`{"1":"a","true":"b","null":"c","1.5":"d"}`)) {
		t.Fatalf("got %s, %v", js, err)
	}
}
