package codec

// EncodeValue appends a frame holding the msgpack encoding of v (see
// AppendValue) to dst.
func (c *Codec) EncodeValue(dst []byte, v any) ([]byte, error) {
	dst, start := beginFrame(dst)
	dst, err := AppendValue(dst, v)
	return c.finishFrame(dst, start, err)
}

// DecodeValue decodes a frame holding any msgpack value into the generic
// types UnmarshalValue returns.
func (c *Codec) DecodeValue(frame []byte) (any, error) {
	r, err := c.frameReader(frame)
	if err != nil {
		return nil, err
	}
	return r.readTop()
}

// DecodeOrdered is DecodeValue with maps decoded as OrderedMap, in the
// order of the encoding.
func (c *Codec) DecodeOrdered(frame []byte) (any, error) {
	r, err := c.frameReader(frame)
	if err != nil {
		return nil, err
	}
	r.ordered = true
	return r.readTop()
}

// frameReader decodes the body of frame into a buffer that the decoded
// values own: the decompressed body, or one copy of a RAW body. Strings and
// byte slices decoded from it alias it instead of being copied again.
func (c *Codec) frameReader(frame []byte) (reader, error) {
	body, owned, err := c.decodeBody(nil, frame, true)
	if err != nil {
		return reader{}, err
	}
	if !owned {
		body = append([]byte(nil), body...)
	}
	return reader{b: body, alias: true}, nil
}
