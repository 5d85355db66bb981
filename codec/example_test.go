package codec_test

import (
	"fmt"
	"os"

	"github.com/a2abus/a2abus/codec"
)

func Example() {
	c, err := codec.New() // LZ4 over 1024 bytes, as the Python seed
	if err != nil {
		panic(err)
	}
	frame, err := c.EncodeEnvelope(nil, &codec.Envelope{
		ID: "m-1", From: "planner", To: "worker", Kind: "message/send", CreatedAt: 1700000000000,
		Message: &codec.Message{
			MessageID: "m-1", Role: codec.RoleUser,
			Parts: []codec.Part{codec.TextPart("summarize the weather report")},
		},
	})
	if err != nil {
		panic(err)
	}
	var e codec.Envelope
	if err := c.DecodeEnvelope(frame, &e); err != nil {
		panic(err)
	}
	tag, _ := codec.FrameTag(frame)
	fmt.Println(tag, e.From, "->", e.To, e.Message.Text())
	// Output: RAW planner -> worker summarize the weather report
}

func ExampleCodec_EncodeBatch() {
	c := codec.MustNew(codec.WithCompression(codec.CompressS2))
	var envs []*codec.Envelope
	for i := range 100 {
		envs = append(envs, &codec.Envelope{
			ID: fmt.Sprintf("m-%d", i), To: "worker",
			Payload: map[string]any{"text": "the same words compress well, the same words compress well"},
		})
	}
	frame, err := c.EncodeBatch(nil, envs)
	if err != nil {
		panic(err)
	}
	got, err := c.DecodeBatch(nil, frame)
	if err != nil {
		panic(err)
	}
	tag, _ := codec.FrameTag(frame)
	fmt.Println(tag, len(got), got[99].ID, got[99].Payload.(map[string]any)["text"] != "")
	// Output: S2B 100 m-99 true
}

func ExampleBatchWriter() {
	c := codec.MustNew()
	w := c.NewBatchWriter()
	defer w.Release()
	for i := range 3 {
		if err := w.Add(&codec.Envelope{ID: fmt.Sprint(i), To: "worker"}); err != nil {
			panic(err)
		}
	}
	fmt.Println(w.Len(), "envelopes,", w.Size(), "bytes")
	frame, err := w.AppendFrame(nil)
	if err != nil {
		panic(err)
	}
	envs, _ := c.DecodeBatch(nil, frame)
	fmt.Println(envs[2].ID)
	// Output:
	// 3 envelopes, 49 bytes
	// 2
}

func ExampleCodec_DecodeValue() {
	// A frame made by the seed's Python serializer.
	frame, err := os.ReadFile("testdata/seed-python/nested.bin")
	if err != nil {
		panic(err)
	}
	v, err := codec.MustNew().DecodeValue(frame)
	if err != nil {
		panic(err)
	}
	fmt.Println(v.(map[string]any)["a"])
	// Output: [1 -2 3.5 <nil> true xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx]
}

func ExampleMsgpackToJSON() {
	body, _ := codec.JSONToMsgpack(nil, []byte(`{"id":"m-1","n":18446744073709551615,"bin":{"$bytes":"AAE="}}`))
	js, _ := codec.MsgpackToJSON(nil, body)
	fmt.Println(string(js))
	// Output: {"id":"m-1","n":18446744073709551615,"bin":{"$bytes":"AAE="}}
}

func ExamplePool() {
	p := codec.NewPool()
	buf := p.Get(5000)
	fmt.Println(len(buf.B), cap(buf.B))
	p.Put(buf)
	// Output: 0 8192
}

func ExampleParseCompression() {
	comp, err := codec.ParseCompression("zstd")
	fmt.Println(comp, err)
	_, err = codec.ParseCompression("gzip")
	fmt.Println(err)
	// Output:
	// zstd <nil>
	// codec: invalid option: compression "gzip" (want auto, lz4, s2, zstd or none)
}
