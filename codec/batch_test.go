package codec

import (
	"errors"
	"reflect"
	"testing"
)

func TestBatchWriter(t *testing.T) {
	c := MustNew(WithCompression(CompressS2))
	envs := benchEnvelopes(40, 256)
	w := c.NewBatchWriter()
	defer w.Release()
	for round := range 2 {
		for i, e := range envs {
			if err := w.Add(e); err != nil {
				t.Fatal(err)
			}
			if w.Len() != i+1 {
				t.Fatalf("Len = %d", w.Len())
			}
		}
		frame, err := w.AppendFrame(nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := c.DecodeFrame(nil, frame)
		if len(body) != w.Size() {
			t.Fatalf("round %d: Size %d, body %d", round, w.Size(), len(body))
		}
		same, _ := c.EncodeBatch(nil, envs)
		if !reflect.DeepEqual(mustDecodeBatch(t, c, frame), mustDecodeBatch(t, c, same)) {
			t.Fatal("BatchWriter and EncodeBatch disagree")
		}
		w.Reset()
	}
	if err := w.AddValue(map[string]any{"x": int64(1)}); err != nil {
		t.Fatal(err)
	}
	frame, _ := w.AppendFrame(nil)
	v, err := c.DecodeValue(frame)
	if err != nil || !reflect.DeepEqual(v, []any{map[string]any{"x": int64(1)}}) {
		t.Fatalf("AddValue batch = %v, %v", v, err)
	}
}

func mustDecodeBatch(t *testing.T, c *Codec, frame []byte) []Envelope {
	t.Helper()
	envs, err := c.DecodeBatch(nil, frame)
	if err != nil {
		t.Fatal(err)
	}
	return envs
}

func TestBatchWriterLimit(t *testing.T) {
	c := MustNew(WithMaxSize(1000))
	w := c.NewBatchWriter()
	defer w.Release()
	e := benchEnvelopes(1, 300)[0]
	for range 3 {
		if err := w.Add(e); err != nil {
			t.Fatal(err)
		}
	}
	size := w.Size()
	if err := w.Add(e); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("4th Add: %v", err)
	}
	if w.Len() != 3 || w.Size() != size {
		t.Fatalf("a failed Add changed the batch: %d entries, %d bytes", w.Len(), w.Size())
	}
	if _, err := w.AppendFrame(nil); err != nil {
		t.Fatal(err)
	}
}

// TestDecodeBatchOwnsItsBuffer checks that decoded envelopes do not alias
// the frame: the caller may reuse it.
func TestDecodeBatchOwnsItsBuffer(t *testing.T) {
	for _, comp := range []Compression{CompressNone, CompressLZ4} {
		c := MustNew(WithCompression(comp))
		envs := benchEnvelopes(20, 256)
		frame, err := c.EncodeBatch(nil, envs)
		if err != nil {
			t.Fatal(err)
		}
		got := mustDecodeBatch(t, c, frame)
		clear(frame)
		for i := range got {
			if !reflect.DeepEqual(&got[i], envs[i]) {
				t.Fatalf("%v: envelope %d changed when the frame was cleared", comp, i)
			}
		}
	}
}

func TestDecodeBatchErrors(t *testing.T) {
	c := MustNew()
	one, _ := c.EncodeEnvelope(nil, benchEnvelopes(1, 100)[0])
	got, err := c.DecodeBatch(nil, one)
	if err != nil || len(got) != 1 {
		t.Fatalf("single envelope as a batch: %d, %v", len(got), err)
	}
	tooMany := append([]byte("RAW\xdd\x00\x01\x00\x01"), make([]byte, 1<<16+1)...)
	for i := 8; i < len(tooMany); i++ {
		tooMany[i] = 0x80
	}
	tests := []struct {
		name    string
		frame   []byte
		wantErr error
	}{
		{"not an array", []byte("RAW\x01"), ErrCorrupt},
		{"truncated", []byte("RAW\x92\x80"), ErrCorrupt},
		{"element not a map", []byte("RAW\x91\x01"), ErrCorrupt},
		{"too many entries", tooMany, ErrTooLarge},
		{"unknown tag", []byte("ABC"), ErrUnknownTag},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := c.DecodeBatch(nil, tt.frame); !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

// TestBatchWriterAddEncoded checks that a batch of pre-encoded envelopes is
// the same batch as one of the envelopes themselves.
func TestBatchWriterAddEncoded(t *testing.T) {
	c := MustNew(WithCompression(CompressS2))
	envs := benchEnvelopes(20, 200)
	w := c.NewBatchWriter()
	defer w.Release()
	for _, e := range envs {
		b, err := e.AppendMsgpack(nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.AddEncoded(b); err != nil {
			t.Fatal(err)
		}
	}
	frame, err := w.AppendFrame(nil)
	if err != nil {
		t.Fatal(err)
	}
	same, _ := c.EncodeBatch(nil, envs)
	if !reflect.DeepEqual(mustDecodeBatch(t, c, frame), mustDecodeBatch(t, c, same)) {
		t.Fatal("AddEncoded batch and EncodeBatch disagree")
	}

	small := MustNew(WithMaxSize(100))
	ws := small.NewBatchWriter()
	defer ws.Release()
	if err := ws.AddEncoded(make([]byte, 200)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("AddEncoded over the max size: %v, want ErrTooLarge", err)
	}
	if ws.Len() != 0 {
		t.Fatalf("Len = %d after a refused entry", ws.Len())
	}
}
