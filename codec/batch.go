package codec

import "slices"

// A batch frame holds a msgpack array of envelopes (or of any values),
// encoded once and compressed once.

// batchHeaderRoom is reserved at the start of a BatchWriter's buffer for the
// array header, whose size depends on the final count.
const batchHeaderRoom = 5

// MaxBatchLen is the most envelopes a batch may hold. With the default max
// size it bounds the memory a hostile batch of empty envelopes can make the
// decoder allocate (an Envelope struct is about 200 bytes, its encoding can
// be 1 byte).
const MaxBatchLen = 1 << 16

// BatchWriter accumulates envelopes into one batch body, so that callers
// (the batcher) can watch its size as it grows and frame it once.
//
// A BatchWriter is not safe for concurrent use. Release it when done to
// return its buffer to the pool.
type BatchWriter struct {
	c   *Codec
	buf *Buffer
	n   int
}

// NewBatchWriter returns an empty BatchWriter using the Codec's options and
// pool.
func (c *Codec) NewBatchWriter() *BatchWriter {
	w := &BatchWriter{c: c}
	w.Reset()
	return w
}

// Reset empties the writer, keeping its buffer.
func (w *BatchWriter) Reset() {
	if w.buf == nil {
		w.buf = w.c.pool.Get(8 << 10)
	}
	w.buf.B = append(w.buf.B[:0], make([]byte, batchHeaderRoom)...)
	w.n = 0
}

// Release returns the writer's buffer to the pool. The writer must not be
// used afterwards, except for Reset.
func (w *BatchWriter) Release() {
	if w.buf != nil {
		w.c.pool.Put(w.buf)
		w.buf = nil
	}
}

// Len returns the number of entries added since the last Reset.
func (w *BatchWriter) Len() int { return w.n }

// Size returns the size of the batch body so far, in bytes.
func (w *BatchWriter) Size() int {
	if w.buf == nil {
		return 0
	}
	return len(w.buf.B) - batchHeaderRoom + arrayHeaderLen(w.n)
}

// Add appends an envelope to the batch. If the batch would exceed the max
// size, Add fails with ErrTooLarge and leaves the batch as it was.
func (w *BatchWriter) Add(e *Envelope) error {
	if w.buf == nil {
		w.Reset()
	}
	at := len(w.buf.B)
	b, err := e.AppendMsgpack(w.buf.B)
	return w.added(b, at, err)
}

// AddValue appends any value (see AppendValue) to the batch.
func (w *BatchWriter) AddValue(v any) error {
	if w.buf == nil {
		w.Reset()
	}
	at := len(w.buf.B)
	b, err := AppendValue(w.buf.B, v)
	return w.added(b, at, err)
}

// AddEncoded appends an entry that is already msgpack, such as the output
// of Envelope.AppendMsgpack: senders encode each message once, in their own
// goroutine, and the batch only concatenates. b is copied; it is not
// checked to be valid msgpack.
func (w *BatchWriter) AddEncoded(b []byte) error {
	if w.buf == nil {
		w.Reset()
	}
	at := len(w.buf.B)
	return w.added(append(w.buf.B, b...), at, nil)
}

func (w *BatchWriter) added(b []byte, at int, err error) error {
	w.buf.B = b
	if err == nil && w.n >= MaxBatchLen {
		err = tooLarge("batch entry count", w.n+1, MaxBatchLen)
	}
	if err == nil && w.Size()+arrayHeaderLen(w.n+1)-arrayHeaderLen(w.n) > w.c.maxSize {
		err = tooLarge("batch", w.Size(), w.c.maxSize)
	}
	if err != nil {
		w.buf.B = w.buf.B[:at]
		return err
	}
	w.n++
	return nil
}

// AppendFrame appends the batch as one frame to dst. The writer keeps its
// contents; Reset it to start the next batch.
func (w *BatchWriter) AppendFrame(dst []byte) ([]byte, error) {
	if w.buf == nil {
		w.Reset()
	}
	h := arrayHeaderLen(w.n)
	start := batchHeaderRoom - h
	appendArrayHeader(w.buf.B[start:start], w.n)
	return w.c.AppendFrame(dst, w.buf.B[start:])
}

func arrayHeaderLen(n int) int {
	switch {
	case n <= 15:
		return 1
	case n <= 0xffff:
		return 3
	}
	return 5
}

// EncodeBatch appends one frame holding all the envelopes to dst.
func (c *Codec) EncodeBatch(dst []byte, envs []*Envelope) ([]byte, error) {
	if len(envs) > MaxBatchLen {
		return dst, tooLarge("batch entry count", len(envs), MaxBatchLen)
	}
	dst, start := beginFrame(dst)
	dst = appendArrayHeader(dst, len(envs))
	var err error
	for _, e := range envs {
		if dst, err = e.AppendMsgpack(dst); err != nil {
			break
		}
	}
	return c.finishFrame(dst, start, err)
}

// DecodeBatch decodes a batch frame and appends its envelopes to dst.
// Payload bytes are copied once (by decompression, or one copy of a RAW
// body): the envelopes' strings and byte slices all point into that one
// buffer, which they own. A frame holding a single envelope map (not an
// array) decodes as a batch of one.
func (c *Codec) DecodeBatch(dst []Envelope, frame []byte) ([]Envelope, error) {
	r, err := c.frameReader(frame)
	if err != nil {
		return dst, err
	}
	r.slab = new(slab)
	c0, err := r.peek()
	if err != nil {
		return dst, err
	}
	if c0&0xf0 == 0x80 || c0 == mpMap16 || c0 == mpMap32 {
		dst = append(dst, Envelope{})
		if err := r.readEnvelope(&dst[len(dst)-1]); err != nil {
			return dst[:len(dst)-1], err
		}
	} else {
		n, err := r.arrayLen()
		if err != nil {
			return dst, err
		}
		if n > MaxBatchLen {
			return dst, tooLarge("batch entry count", n, MaxBatchLen)
		}
		start := len(dst)
		dst = slices.Grow(dst, n)[:start+n]
		for i := start; i < len(dst); i++ {
			if err := r.readEnvelope(&dst[i]); err != nil {
				return dst[:start], err
			}
		}
	}
	if r.i != len(r.b) {
		return dst, corruptf("%d bytes after the batch", len(r.b)-r.i)
	}
	return dst, nil
}
