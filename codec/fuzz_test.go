package codec

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// Fuzz targets, one per decoder. CI runs each for a few seconds:
//
//	go test -run '^$' -fuzz '^FuzzDecodeFrame$' -fuzztime 100000x -fuzzminimizetime 0 ./codec/
//
// Every decoder must return an error wrapping ErrCorrupt, ErrTooLarge or
// ErrUnknownTag for bad input, and never panic or allocate past the limit.

func addFrameSeeds(f *testing.F) {
	files, _ := filepath.Glob("testdata/*/*.bin")
	for _, name := range files {
		if b, err := os.ReadFile(name); err == nil && len(b) < 16<<10 {
			f.Add(b)
		}
	}
	c := MustNew(WithCompressionThreshold(0))
	e := fullEnvelope()
	for _, comp := range []Compression{CompressNone, CompressLZ4, CompressS2, CompressZstd} {
		c.compression = comp
		frame, _ := c.EncodeEnvelope(nil, e)
		f.Add(frame)
		frame, _ = c.EncodeBatch(nil, benchEnvelopes(3, 100))
		f.Add(frame)
	}
	f.Add([]byte("RAW"))
	f.Add([]byte("LZ4\x04\x22\x4d\x18\x40\x40\xc0\x00\x00\x00\x00"))
}

// fuzzCodec has a small limit, so that bombs are caught quickly.
func fuzzCodec() *Codec { return MustNew(WithMaxSize(64 << 10)) }

func checkDecodeErr(t *testing.T, err error) {
	t.Helper()
	if err != nil && !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrTooLarge) && !errors.Is(err, ErrUnknownTag) {
		t.Fatalf("unexpected error kind: %v", err)
	}
}

func FuzzDecodeFrame(f *testing.F) {
	addFrameSeeds(f)
	c := fuzzCodec()
	f.Fuzz(func(t *testing.T, frame []byte) {
		body, err := c.DecodeFrame(nil, frame)
		checkDecodeErr(t, err)
		if err == nil && len(body) > c.MaxSize() {
			t.Fatalf("decoded %d bytes past the limit", len(body))
		}
		v, err := c.DecodeValue(frame)
		checkDecodeErr(t, err)
		if err != nil {
			return
		}
		// Whatever decodes re-encodes, and decodes again.
		again, err := c.EncodeValue(nil, v)
		if err != nil {
			if errors.Is(err, ErrTooLarge) {
				return
			}
			t.Fatalf("re-encode: %v", err)
		}
		if _, err := c.DecodeValue(again); err != nil {
			t.Fatalf("decode of re-encoded value: %v", err)
		}
	})
}

func FuzzDecodeBatch(f *testing.F) {
	addFrameSeeds(f)
	c := fuzzCodec()
	f.Fuzz(func(t *testing.T, frame []byte) {
		envs, err := c.DecodeBatch(nil, frame)
		checkDecodeErr(t, err)
		if err != nil {
			return
		}
		ptrs := make([]*Envelope, len(envs))
		for i := range envs {
			ptrs[i] = &envs[i]
		}
		again, err := c.EncodeBatch(nil, ptrs)
		if err != nil {
			if errors.Is(err, ErrTooLarge) {
				return
			}
			t.Fatalf("re-encode: %v", err)
		}
		back, err := c.DecodeBatch(nil, again)
		if err != nil || len(back) != len(envs) {
			t.Fatalf("decode of re-encoded batch: %d envelopes, %v", len(back), err)
		}
	})
}

func FuzzDecodeEnvelope(f *testing.F) {
	body, _ := fullEnvelope().AppendMsgpack(nil)
	f.Add(body)
	for _, e := range benchEnvelopes(3, 300) {
		b, _ := e.AppendMsgpack(nil)
		f.Add(b)
	}
	f.Add([]byte{0x81, 0xa2, 'i', 'd', 0x01})
	c := fuzzCodec()
	f.Fuzz(func(t *testing.T, body []byte) {
		var e Envelope
		err := e.UnmarshalMsgpack(body)
		checkDecodeErr(t, err)
		var e2 Envelope
		err2 := c.DecodeEnvelope(append([]byte(TagRaw), body...), &e2)
		if (err == nil) != (err2 == nil) {
			t.Fatalf("UnmarshalMsgpack: %v; DecodeEnvelope: %v", err, err2)
		}
		if err != nil {
			return
		}
		again, err := e.AppendMsgpack(nil)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		var e3 Envelope
		if err := e3.UnmarshalMsgpack(again); err != nil {
			t.Fatalf("decode of re-encoded envelope: %v", err)
		}
	})
}

func FuzzUnmarshalValue(f *testing.F) {
	for _, v := range []any{
		map[string]any{"a": []any{int64(1), "x", nil, true, 1.5, []byte{1}}},
		Ext{Type: 5, Data: []byte("abc")}, uint64(1 << 63), int64(-1 << 40), float32(2.5),
	} {
		b, _ := AppendValue(nil, v)
		f.Add(b)
	}
	f.Add([]byte{0xdd, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := UnmarshalValue(b)
		checkDecodeErr(t, err)
		ov, oerr := UnmarshalOrdered(b)
		if (err == nil) != (oerr == nil) {
			t.Fatalf("UnmarshalValue: %v; UnmarshalOrdered: %v", err, oerr)
		}
		if err != nil {
			return
		}
		// The ordered form re-encodes to the same bytes, except where keys
		// were not strings (they come back as strings).
		again, err := AppendValue(nil, ov)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		if _, err := UnmarshalValue(again); err != nil {
			t.Fatalf("decode of re-encoded value: %v", err)
		}
		if js, err := AppendJSON(nil, v); err != nil {
			t.Fatalf("AppendJSON: %v", err)
		} else if _, err := ParseJSON(js); err != nil {
			t.Fatalf("ParseJSON of our JSON %s: %v", js, err)
		}
	})
}

// FuzzLZ4RoundTrip checks the LZ4 frame writer against the reader on any
// input, and the reader on the written frame with every prefix cut off.
func FuzzLZ4RoundTrip(f *testing.F) {
	f.Add([]byte("hello hello hello hello hello"))
	f.Add(bytes.Repeat([]byte("abcd"), 20000))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		frame := appendLZ4Frame(nil, data)
		got, err := appendLZ4Decoded(nil, frame, 1<<20)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("round trip of %d bytes: %v", len(data), err)
		}
		if len(frame) > 0 {
			if _, err := appendLZ4Decoded(nil, frame[:len(frame)-1], 1<<20); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("truncated frame: %v", err)
			}
		}
	})
}

func FuzzParseJSON(f *testing.F) {
	files, _ := filepath.Glob("testdata/seed-python/*.json")
	for _, name := range files {
		if b, err := os.ReadFile(name); err == nil && len(b) < 4<<10 {
			f.Add(b)
		}
	}
	f.Add([]byte(`{"$bytes":"AAE="}`))
	f.Add([]byte(`[18446744073709551615,-9223372036854775808,1.5e300,{"$float":"NaN"}]`))
	f.Fuzz(func(t *testing.T, js []byte) {
		v, err := ParseJSON(js)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		mp, err := AppendValue(nil, v)
		if err != nil {
			t.Fatalf("AppendValue: %v", err)
		}
		out, err := MsgpackToJSON(nil, mp)
		if err != nil {
			t.Fatalf("MsgpackToJSON: %v", err)
		}
		mp2, err := JSONToMsgpack(nil, out)
		if err != nil {
			t.Fatalf("JSONToMsgpack of %s: %v", out, err)
		}
		if !bytes.Equal(mp, mp2) {
			t.Fatalf("msgpack -> JSON -> msgpack changed the bytes:\n%s", out)
		}
	})
}
