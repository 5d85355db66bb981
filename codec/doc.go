// Package codec encodes a2abus messages: envelopes (an A2A message, task or
// event plus routing fields) as msgpack, in frames that are RAW or
// compressed with LZ4, S2 or zstd, one message or a whole batch per frame.
//
// A frame is a 3-byte tag and a body: "RAW" + msgpack, "LZ4" + an LZ4 frame
// of msgpack, "S2B" + an S2 block, "ZST" + a zstd frame. RAW and LZ4 frames
// are those of the seed's Python serializer, byte for byte:
// msgpack.packb(v, use_bin_type=True), then
// lz4.frame.compress(b, compression_level=1) for bodies over 1024 bytes when
// that saves at least 10% (linked blocks over 64 KiB included). S2 and zstd
// are for Go-to-Go traffic. Go maps have no order, so byte equality with
// Python needs OrderedMap (or Headers, which keep their order).
//
// Encoding appends to a caller's buffer and allocates nothing in steady
// state; decoding copies payload bytes once (decompression, or one copy of
// a RAW body) and lets the decoded strings and byte slices share that
// buffer. Sizes are limited (10 MiB by default) on encode and on decode,
// before anything is allocated for a body. Malformed input returns an error
// wrapping ErrCorrupt, ErrTooLarge or ErrUnknownTag; it never panics.
//
// Example:
//
//	c, err := codec.New() // LZ4, Python-compatible
//	if err != nil { ... }
//	frame, err := c.EncodeEnvelope(nil, &codec.Envelope{
//		ID: "m-1", From: "planner", To: "worker",
//		Message: &codec.Message{MessageID: "m-1", Role: codec.RoleUser,
//			Parts: []codec.Part{codec.TextPart("hello")}},
//	})
//	var e codec.Envelope
//	err = c.DecodeEnvelope(frame, &e)
//
// Concurrency: a Codec and a Pool are safe for concurrent use; all
// functions are safe to call concurrently. A BatchWriter is not safe for
// concurrent use.
package codec
