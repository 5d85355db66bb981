package codec

import (
	"errors"
	"math"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"
)

func fullEnvelope() *Envelope {
	return &Envelope{
		ID: "m-1", From: "planner", To: "worker", Kind: "message/send",
		CreatedAt: 1700000000123, ReplyTo: "_INBOX.abc", CorrelationID: "m-0",
		Headers:  Headers{{"trace", "0c5c7fd0"}, {"priority", "1"}},
		Deadline: 1700000060123, Attempt: 3,
		Message: &Message{
			MessageID: "m-1", Role: RoleUser, ContextID: "ctx", TaskID: "t-1",
			ReferenceTaskIDs: []string{"t-0"}, Extensions: []string{"urn:x"},
			Parts: []Part{
				TextPart("hello"),
				FilePart(FileContent{Name: "a.bin", MIMEType: "application/octet-stream", Bytes: []byte{0, 1, 2}}),
				FilePart(FileContent{URI: "https://example.com/x"}),
				DataPart(map[string]any{"n": int64(1), "list": []any{"a", true, nil, 2.5}}),
				{Kind: PartText, Text: "", Metadata: map[string]any{"k": "v"}},
			},
			Metadata: map[string]any{"big": uint64(math.MaxUint64), "neg": int64(math.MinInt64)},
		},
		Task: &Task{
			ID: "t-1", ContextID: "ctx",
			Status:    TaskStatus{State: TaskWorking, Timestamp: "2024-01-01T00:00:00Z", Message: &Message{MessageID: "s", Role: RoleAgent, Parts: []Part{TextPart("busy")}}},
			History:   []Message{{MessageID: "h", Role: RoleUser, Parts: []Part{TextPart("hi")}}},
			Artifacts: []Artifact{{ArtifactID: "a", Name: "n", Description: "d", Parts: []Part{TextPart("x")}, Metadata: map[string]any{"m": int64(2)}, Extensions: []string{"e"}}},
			Metadata:  map[string]any{"x": "y"},
		},
		StatusUpdate:   &TaskStatusUpdateEvent{TaskID: "t-1", ContextID: "ctx", Status: TaskStatus{State: TaskCompleted}, Final: true, Metadata: map[string]any{}},
		ArtifactUpdate: &TaskArtifactUpdateEvent{TaskID: "t-1", ContextID: "ctx", Artifact: Artifact{ArtifactID: "a", Parts: []Part{DataPart(map[string]any{})}}, Append: true, LastChunk: true},
		Payload:        map[string]any{"nested": map[string]any{"bytes": []byte("xyz"), "f": 1.5, "arr": []any{int64(-7), "s"}}},
		Extra:          map[string]any{"seq": int64(9), "ok": true},
	}
}

func TestEnvelopeRoundTrip(t *testing.T) {
	for _, comp := range []Compression{CompressNone, CompressLZ4, CompressS2, CompressZstd, CompressAuto} {
		t.Run(comp.String(), func(t *testing.T) {
			c := MustNew(WithCompression(comp), WithCompressionThreshold(0))
			want := fullEnvelope()
			frame, err := c.EncodeEnvelope(nil, want)
			if err != nil {
				t.Fatal(err)
			}
			var got Envelope
			if err := c.DecodeEnvelope(frame, &got); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(&got, want) {
				t.Fatalf("got  %+v\nwant %+v", got, *want)
			}
			// The same through the copying msgpack API.
			body, _ := want.MarshalMsgpack()
			var got2 Envelope
			if err := got2.UnmarshalMsgpack(body); err != nil || !reflect.DeepEqual(&got2, want) {
				t.Fatalf("UnmarshalMsgpack: %v", err)
			}
		})
	}
}

// TestEnvelopeLenient checks that keys of the wrong type and unknown keys
// land in Extra rather than failing or being lost.
func TestEnvelopeLenient(t *testing.T) {
	in := OrderedMap{
		{"id", int64(5)},                      // not a string
		{"ts", 1.7e9},                         // a float, not ms
		{"headers", map[string]any{"n": 1.0}}, // a non-string header
		{"attempt", int64(-1)},
		{"message", "not a map"},
		{"from", "a"},
		{"custom", []any{"x"}},
	}
	body, err := AppendValue(nil, in)
	if err != nil {
		t.Fatal(err)
	}
	var e Envelope
	if err := e.UnmarshalMsgpack(body); err != nil {
		t.Fatal(err)
	}
	want := Envelope{From: "a", Extra: map[string]any{
		"id": int64(5), "ts": 1.7e9, "headers": map[string]any{"n": 1.0}, "attempt": int64(-1),
		"message": "not a map", "custom": []any{"x"},
	}}
	if !reflect.DeepEqual(e, want) {
		t.Fatalf("got  %+v\nwant %+v", e, want)
	}
	back, _ := e.AppendMsgpack(nil)
	v1, _ := UnmarshalValue(back)
	v2, _ := UnmarshalValue(body)
	if !reflect.DeepEqual(v1, v2) {
		t.Fatalf("re-encoded %v, want %v", v1, v2)
	}
}

func TestEnvelopeDecodeErrors(t *testing.T) {
	good, _ := fullEnvelope().AppendMsgpack(nil)
	tests := []struct {
		name    string
		body    []byte
		wantErr error
	}{
		{"empty", nil, ErrCorrupt},
		{"not a map", []byte{0x91, 0x01}, ErrCorrupt},
		{"truncated", good[:len(good)/2], ErrCorrupt},
		{"trailing", append(append([]byte{}, good...), 0xc0), ErrCorrupt},
		{"invalid byte", []byte{0x81, 0xa2, 'i', 'd', 0xc1}, ErrCorrupt},
		{"huge map header", []byte{0xdf, 0xff, 0xff, 0xff, 0xff}, ErrCorrupt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var e Envelope
			if err := e.UnmarshalMsgpack(tt.body); !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestEnvelopeExpired(t *testing.T) {
	now := time.UnixMilli(1000)
	for _, tt := range []struct {
		deadline int64
		want     bool
	}{{0, false}, {999, true}, {1000, false}, {1001, false}} {
		if got := (&Envelope{Deadline: tt.deadline}).Expired(now); got != tt.want {
			t.Errorf("deadline %d: %v", tt.deadline, got)
		}
	}
}

// randValue returns a random generic value as the decoder returns them.
func randValue(rng *rand.Rand, depth int) any {
	n := 10
	if depth > 3 {
		n = 7 // scalars only
	}
	switch rng.IntN(n) {
	case 0:
		return nil
	case 1:
		return rng.IntN(2) == 0
	case 2:
		return rng.Int64() >> rng.IntN(64) * []int64{1, -1}[rng.IntN(2)]
	case 3:
		return uint64(math.MaxInt64) + 1 + rng.Uint64N(math.MaxInt64)
	case 4:
		return rng.NormFloat64() * math.Pow(10, float64(rng.IntN(40)-20))
	case 5:
		return randString(rng, rng.IntN(300))
	case 6:
		b := make([]byte, rng.IntN(100))
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	case 7, 8:
		m := map[string]any{}
		for range rng.IntN(5) {
			m[randString(rng, rng.IntN(10))] = randValue(rng, depth+1)
		}
		return m
	default:
		a := make([]any, rng.IntN(5))
		for i := range a {
			a[i] = randValue(rng, depth+1)
		}
		return a
	}
}

func randString(rng *rand.Rand, n int) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyzäöü日本 0123456789"
	r := []rune(alphabet)
	s := make([]rune, n)
	for i := range s {
		s[i] = r[rng.IntN(len(r))]
	}
	return string(s)
}

func randMap(rng *rand.Rand) map[string]any {
	if rng.IntN(3) == 0 {
		return nil
	}
	m := map[string]any{}
	for range 1 + rng.IntN(3) {
		m[randString(rng, 1+rng.IntN(8))] = randValue(rng, 1)
	}
	return m
}

func randStr(rng *rand.Rand) string {
	if rng.IntN(3) == 0 {
		return ""
	}
	return randString(rng, 1+rng.IntN(40))
}

func randParts(rng *rand.Rand) []Part {
	if rng.IntN(4) == 0 {
		return nil
	}
	parts := make([]Part, 1+rng.IntN(3))
	for i := range parts {
		switch rng.IntN(3) {
		case 0:
			parts[i] = TextPart(randString(rng, rng.IntN(500)))
		case 1:
			f := FileContent{Name: randStr(rng), MIMEType: randStr(rng), URI: randStr(rng)}
			if rng.IntN(2) == 0 {
				f.Bytes = []byte(randString(rng, rng.IntN(50)))
			}
			parts[i] = FilePart(f)
		default:
			d := randMap(rng)
			if d == nil {
				d = map[string]any{}
			}
			parts[i] = DataPart(d)
		}
		parts[i].Metadata = randMap(rng)
	}
	return parts
}

func randMessage(rng *rand.Rand) *Message {
	m := &Message{MessageID: randStr(rng), Role: Role(randStr(rng)), Parts: randParts(rng),
		ContextID: randStr(rng), TaskID: randStr(rng), Metadata: randMap(rng)}
	if rng.IntN(2) == 0 {
		m.ReferenceTaskIDs = []string{randStr(rng)}
	}
	return m
}

// randEnvelope returns a random envelope in the normal form decoding
// gives: empty collections are nil.
func randEnvelope(rng *rand.Rand) *Envelope {
	e := &Envelope{
		ID: randStr(rng), From: randStr(rng), To: randStr(rng), Kind: randStr(rng),
		CreatedAt: rng.Int64N(1 << 45), ReplyTo: randStr(rng), CorrelationID: randStr(rng),
		Deadline: rng.Int64() - rng.Int64(), Attempt: rng.Uint32(),
	}
	if rng.IntN(2) == 0 {
		e.Headers = Headers{{randStr(rng), randStr(rng)}, {"k", randStr(rng)}}
	}
	switch rng.IntN(5) {
	case 0:
		e.Message = randMessage(rng)
	case 1:
		e.Task = &Task{ID: randStr(rng), ContextID: randStr(rng), Status: TaskStatus{State: TaskFailed, Message: randMessage(rng)}, Metadata: randMap(rng)}
		if rng.IntN(2) == 0 {
			e.Task.History = []Message{*randMessage(rng)}
			e.Task.Artifacts = []Artifact{{ArtifactID: randStr(rng), Parts: randParts(rng)}}
		}
	case 2:
		e.StatusUpdate = &TaskStatusUpdateEvent{TaskID: randStr(rng), Status: TaskStatus{State: TaskWorking}, Final: rng.IntN(2) == 0}
	case 3:
		e.ArtifactUpdate = &TaskArtifactUpdateEvent{TaskID: randStr(rng), Artifact: Artifact{ArtifactID: randStr(rng), Parts: randParts(rng)}, Append: rng.IntN(2) == 0}
	}
	if rng.IntN(2) == 0 {
		e.Payload = randValue(rng, 0)
	}
	if rng.IntN(3) == 0 {
		e.Extra = map[string]any{"x-" + randStr(rng): randValue(rng, 0)}
	}
	return e
}

// TestPropertyRoundTrip checks decode(encode(x)) == x for random envelopes,
// alone and in batches, with every compression.
func TestPropertyRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(42, 7))
	codecs := []*Codec{
		MustNew(), MustNew(WithCompressionThreshold(0)), MustNew(WithCompression(CompressNone)),
		MustNew(WithCompression(CompressS2), WithCompressionThreshold(0)),
		MustNew(WithCompression(CompressZstd), WithCompressionThreshold(0)),
		MustNew(WithCompression(CompressAuto)),
	}
	for i := range 400 {
		c := codecs[i%len(codecs)]
		want := randEnvelope(rng)
		frame, err := c.EncodeEnvelope(nil, want)
		if err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		var got Envelope
		if err := c.DecodeEnvelope(frame, &got); err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		if !reflect.DeepEqual(&got, want) {
			t.Fatalf("case %d:\ngot  %#v\nwant %#v", i, got, *want)
		}
		// Generic values too.
		v := randValue(rng, 0)
		frame, err = c.EncodeValue(nil, v)
		if err != nil {
			t.Fatal(err)
		}
		if gv, err := c.DecodeValue(frame); err != nil || !reflect.DeepEqual(gv, v) {
			t.Fatalf("case %d: value %#v -> %#v (%v)", i, v, gv, err)
		}
	}
	for i := range 20 {
		c := codecs[i%len(codecs)]
		envs := make([]*Envelope, rng.IntN(40))
		for j := range envs {
			envs[j] = randEnvelope(rng)
		}
		frame, err := c.EncodeBatch(nil, envs)
		if err != nil {
			t.Fatal(err)
		}
		got, err := c.DecodeBatch(nil, frame)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(envs) {
			t.Fatalf("batch %d: %d envelopes, want %d", i, len(got), len(envs))
		}
		for j := range got {
			if !reflect.DeepEqual(&got[j], envs[j]) {
				t.Fatalf("batch %d envelope %d differs", i, j)
			}
		}
	}
}

func TestAppendValueErrors(t *testing.T) {
	cyclic := []any{nil}
	cyclic[0] = cyclic
	tests := []struct {
		name    string
		v       any
		wantErr error
	}{
		{"channel", make(chan int), ErrInvalidValue},
		{"func", func() {}, ErrInvalidValue},
		{"cycle", cyclic, ErrInvalidValue},
		{"struct ok", struct{ A int }{1}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := AppendValue(nil, tt.v); !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestA2AJSON(t *testing.T) {
	e := fullEnvelope()
	for _, v := range []any{e.Message, e.Task, e.StatusUpdate, e.ArtifactUpdate} {
		js, err := jsonMarshal(v)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s", js)
		back := reflect.New(reflect.TypeOf(v).Elem()).Interface()
		if err := jsonUnmarshal(js, back); err != nil {
			t.Fatal(err)
		}
		js2, _ := jsonMarshal(back)
		if string(js) != string(js2) {
			t.Fatalf("JSON round trip:\n%s\n%s", js, js2)
		}
	}
	js, _ := jsonMarshal(e.Message)
	for _, want := range []string{`"kind":"message"`, `"messageId":"m-1"`, `"contextId":"ctx"`, `{"kind":"text","text":""`, `"kind":"file","file":{"name":"a.bin","mimeType":"application/octet-stream","bytes":"AAEC"}`} {
		if !contains(string(js), want) {
			t.Errorf("message JSON lacks %s", want)
		}
	}
}

func TestHeaders(t *testing.T) {
	var h Headers
	h.Set("a", "1")
	h.Set("b", "2")
	h.Set("a", "3")
	if h.Get("a") != "3" || h.Get("b") != "2" || h.Get("c") != "" || len(h) != 2 {
		t.Fatalf("after Set: %v", h)
	}
	if _, ok := h.Lookup("c"); ok {
		t.Fatal("Lookup found c")
	}
	h = append(h, Header{"a", "4"})
	h.Del("a")
	if !reflect.DeepEqual(h, Headers{{"b", "2"}}) {
		t.Fatalf("after Del: %v", h)
	}
}
