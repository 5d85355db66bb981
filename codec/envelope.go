package codec

import (
	"errors"
	"math"
	"time"
)

// Envelope is one message on the bus: routing fields and the A2A content.
//
// On the wire it is a msgpack map with short snake_case keys for the
// routing fields (the seed's id, from, to, kind, ts and headers, plus
// reply_to, correlation_id, deadline and attempt), the A2A object under
// message, task, status_update or artifact_update (with the A2A JSON field
// names inside), an arbitrary payload, and every other key kept in Extra.
// Empty fields are left out. Python reads an envelope as a plain dict.
type Envelope struct {
	ID            string  // message ID, stable across retries ("id")
	From          string  // sender agent ID ("from")
	To            string  // destination agent ID ("to")
	Kind          string  // application-defined kind ("kind")
	CreatedAt     int64   // creation time, Unix milliseconds ("ts")
	ReplyTo       string  // subject for the reply ("reply_to")
	CorrelationID string  // ID of the request a reply answers ("correlation_id")
	Headers       Headers // ("headers")
	Deadline      int64   // Unix milliseconds after which to drop it; 0 for none ("deadline")
	Attempt       uint32  // delivery attempt, 0 for the first ("attempt")

	// The A2A content: usually one of these is set.
	Message        *Message                 // ("message")
	Task           *Task                    // ("task")
	StatusUpdate   *TaskStatusUpdateEvent   // ("status_update")
	ArtifactUpdate *TaskArtifactUpdateEvent // ("artifact_update")

	// Payload is any other value (typically a map[string]any); it decodes
	// into the generic types UnmarshalValue returns ("payload").
	Payload any

	// Extra holds the keys this struct has no field for, and values whose
	// type does not fit their field, so that nothing is lost on a round
	// trip. Keys of fields that are set are not written from Extra.
	Extra map[string]any
}

// Header is one routing header.
type Header struct {
	Key, Value string
}

// Headers are an envelope's routing headers, in wire order (a msgpack map
// of strings, as the seed's headers dict). A slice rather than a Go map:
// encoding it is several times faster, decoding it allocates once, and its
// encoding is deterministic.
type Headers []Header

// Get returns the value of the first header with the key, or "".
func (h Headers) Get(key string) string {
	v, _ := h.Lookup(key)
	return v
}

// Lookup returns the value of the first header with the key.
func (h Headers) Lookup(key string) (string, bool) {
	for _, kv := range h {
		if kv.Key == key {
			return kv.Value, true
		}
	}
	return "", false
}

// Set sets the value of the first header with the key, or adds one.
func (h *Headers) Set(key, value string) {
	for i := range *h {
		if (*h)[i].Key == key {
			(*h)[i].Value = value
			return
		}
	}
	*h = append(*h, Header{key, value})
}

// Del removes every header with the key.
func (h *Headers) Del(key string) {
	out := (*h)[:0]
	for _, kv := range *h {
		if kv.Key != key {
			out = append(out, kv)
		}
	}
	clear((*h)[len(out):])
	*h = out
}

// Expired reports whether the envelope has a deadline before now.
func (e *Envelope) Expired(now time.Time) bool {
	return e.Deadline != 0 && now.UnixMilli() > e.Deadline
}

// Wire keys.
const (
	keyID             = "id"
	keyFrom           = "from"
	keyTo             = "to"
	keyKind           = "kind"
	keyCreatedAt      = "ts"
	keyReplyTo        = "reply_to"
	keyCorrelationID  = "correlation_id"
	keyHeaders        = "headers"
	keyDeadline       = "deadline"
	keyAttempt        = "attempt"
	keyMessage        = "message"
	keyTask           = "task"
	keyStatusUpdate   = "status_update"
	keyArtifactUpdate = "artifact_update"
	keyPayload        = "payload"
)

// isSet reports whether the field written under key is set, for the known
// keys; Extra entries under those keys are written only when it is not.
func (e *Envelope) isSet(key string) bool {
	switch key {
	case keyID:
		return e.ID != ""
	case keyFrom:
		return e.From != ""
	case keyTo:
		return e.To != ""
	case keyKind:
		return e.Kind != ""
	case keyCreatedAt:
		return e.CreatedAt != 0
	case keyReplyTo:
		return e.ReplyTo != ""
	case keyCorrelationID:
		return e.CorrelationID != ""
	case keyHeaders:
		return e.Headers != nil
	case keyDeadline:
		return e.Deadline != 0
	case keyAttempt:
		return e.Attempt != 0
	case keyMessage:
		return e.Message != nil
	case keyTask:
		return e.Task != nil
	case keyStatusUpdate:
		return e.StatusUpdate != nil
	case keyArtifactUpdate:
		return e.ArtifactUpdate != nil
	case keyPayload:
		return e.Payload != nil
	}
	return false
}

// AppendMsgpack appends the envelope's msgpack encoding to b. It allocates
// nothing when b has room.
func (e *Envelope) AppendMsgpack(b []byte) ([]byte, error) {
	n := count(e.ID != "") + count(e.From != "") + count(e.To != "") + count(e.Kind != "") +
		count(e.CreatedAt != 0) + count(e.ReplyTo != "") + count(e.CorrelationID != "") +
		count(e.Headers != nil) + count(e.Deadline != 0) + count(e.Attempt != 0) +
		count(e.Message != nil) + count(e.Task != nil) + count(e.StatusUpdate != nil) +
		count(e.ArtifactUpdate != nil) + count(e.Payload != nil)
	if len(e.Extra) > 0 {
		for k := range e.Extra {
			if !e.isSet(k) {
				n++
			}
		}
	}
	b = appendMapHeader(b, n)
	// Keys are written as constant bytes: fixstr header and name.
	if e.ID != "" {
		b = appendStr(append(b, "\xa2id"...), e.ID)
	}
	if e.From != "" {
		b = appendStr(append(b, "\xa4from"...), e.From)
	}
	if e.To != "" {
		b = appendStr(append(b, "\xa2to"...), e.To)
	}
	if e.Kind != "" {
		b = appendStr(append(b, "\xa4kind"...), e.Kind)
	}
	if e.CreatedAt != 0 {
		b = appendInt(append(b, "\xa2ts"...), e.CreatedAt)
	}
	if e.ReplyTo != "" {
		b = appendStr(append(b, "\xa8reply_to"...), e.ReplyTo)
	}
	if e.CorrelationID != "" {
		b = appendStr(append(b, "\xaecorrelation_id"...), e.CorrelationID)
	}
	if e.Headers != nil {
		b = appendMapHeader(append(b, "\xa7headers"...), len(e.Headers))
		for _, h := range e.Headers {
			b = appendStr(appendStr(b, h.Key), h.Value)
		}
	}
	if e.Deadline != 0 {
		b = appendInt(append(b, "\xa8deadline"...), e.Deadline)
	}
	if e.Attempt != 0 {
		b = appendUint(append(b, "\xa7attempt"...), uint64(e.Attempt))
	}
	var err error
	if e.Message != nil {
		if b, err = e.Message.AppendMsgpack(append(b, "\xa7message"...)); err != nil {
			return b, err
		}
	}
	if e.Task != nil {
		if b, err = e.Task.AppendMsgpack(appendStr(b, keyTask)); err != nil {
			return b, err
		}
	}
	if e.StatusUpdate != nil {
		if b, err = e.StatusUpdate.AppendMsgpack(appendStr(b, keyStatusUpdate)); err != nil {
			return b, err
		}
	}
	if e.ArtifactUpdate != nil {
		if b, err = e.ArtifactUpdate.AppendMsgpack(appendStr(b, keyArtifactUpdate)); err != nil {
			return b, err
		}
	}
	if e.Payload != nil {
		if b, err = appendValue(appendStr(b, keyPayload), e.Payload, 1); err != nil {
			return b, err
		}
	}
	if len(e.Extra) == 0 {
		return b, nil
	}
	for k, v := range e.Extra {
		if e.isSet(k) {
			continue
		}
		if b, err = appendValue(appendStr(b, k), v, 1); err != nil {
			return b, err
		}
	}
	return b, nil
}

// MarshalMsgpack returns the envelope's msgpack encoding (for
// github.com/vmihailenco/msgpack/v5 and other users of that interface).
func (e *Envelope) MarshalMsgpack() ([]byte, error) {
	return e.AppendMsgpack(nil)
}

// UnmarshalMsgpack decodes a msgpack envelope, copying strings and byte
// slices out of b.
func (e *Envelope) UnmarshalMsgpack(b []byte) error {
	r := reader{b: b}
	if err := r.readEnvelope(e); err != nil {
		return err
	}
	if r.i != len(b) {
		return corruptf("%d bytes after the envelope", len(b)-r.i)
	}
	return nil
}

// readEnvelope decodes one envelope map into e, replacing its contents.
func (r *reader) readEnvelope(e *Envelope) error {
	*e = Envelope{}
	n, err := r.mapLen()
	if err != nil {
		return err
	}
	for range n {
		c, err := r.peek()
		if err != nil {
			return err
		}
		if !isStr(c) || c == mpNil {
			// A non-string key: keep it, as a string, in Extra.
			k, err := r.readKey()
			if err != nil {
				return err
			}
			if err := r.readExtra(e, k); err != nil {
				return err
			}
			continue
		}
		kb, err := r.strBytes()
		if err != nil {
			return err
		}
		at := r.i
		if err := r.readField(e, kb); err != nil {
			// A value of the wrong type for its field goes to Extra;
			// truncated or invalid msgpack fails below as well.
			if errors.Is(err, errTruncated) || errors.Is(err, errTooDeep) {
				return err
			}
			r.i = at
			e.clear(string(kb))
			if err := r.readExtra(e, r.str(kb)); err != nil {
				return err
			}
		}
	}
	return nil
}

func (r *reader) readExtra(e *Envelope, k string) error {
	v, err := r.readValue()
	if err != nil {
		return err
	}
	if e.Extra == nil {
		e.Extra = make(map[string]any)
	}
	e.Extra[k] = v
	return nil
}

// clear zeroes the field for key after a failed typed decode.
func (e *Envelope) clear(key string) {
	switch key {
	case keyID:
		e.ID = ""
	case keyFrom:
		e.From = ""
	case keyTo:
		e.To = ""
	case keyKind:
		e.Kind = ""
	case keyCreatedAt:
		e.CreatedAt = 0
	case keyReplyTo:
		e.ReplyTo = ""
	case keyCorrelationID:
		e.CorrelationID = ""
	case keyHeaders:
		e.Headers = nil
	case keyDeadline:
		e.Deadline = 0
	case keyAttempt:
		e.Attempt = 0
	case keyMessage:
		e.Message = nil
	case keyTask:
		e.Task = nil
	case keyStatusUpdate:
		e.StatusUpdate = nil
	case keyArtifactUpdate:
		e.ArtifactUpdate = nil
	}
}

var errAttemptRange = corruptf("attempt out of range")

// readField decodes the value of key kb into its field, or into Extra for
// keys without a field.
func (r *reader) readField(e *Envelope, kb []byte) error {
	var err error
	switch string(kb) {
	case keyID:
		e.ID, err = r.readString()
	case keyFrom:
		e.From, err = r.readString()
	case keyTo:
		e.To, err = r.readString()
	case keyKind:
		e.Kind, err = r.readString()
	case keyCreatedAt:
		e.CreatedAt, err = r.readInt()
	case keyReplyTo:
		e.ReplyTo, err = r.readString()
	case keyCorrelationID:
		e.CorrelationID, err = r.readString()
	case keyHeaders:
		e.Headers, err = r.readHeaders()
	case keyDeadline:
		e.Deadline, err = r.readInt()
	case keyAttempt:
		var v int64
		if v, err = r.readInt(); err == nil {
			if v < 0 || v > math.MaxUint32 {
				return errAttemptRange
			}
			e.Attempt = uint32(v)
		}
	case keyMessage:
		e.Message = r.newMessage()
		err = r.readMessage(e.Message)
	case keyTask:
		e.Task = new(Task)
		err = r.readTask(e.Task)
	case keyStatusUpdate:
		e.StatusUpdate = new(TaskStatusUpdateEvent)
		err = r.readStatusUpdate(e.StatusUpdate)
	case keyArtifactUpdate:
		e.ArtifactUpdate = new(TaskArtifactUpdateEvent)
		err = r.readArtifactUpdate(e.ArtifactUpdate)
	case keyPayload:
		e.Payload, err = r.readValue()
	default:
		return r.readExtra(e, r.str(kb))
	}
	return err
}

// readHeaders reads a map of strings to strings.
func (r *reader) readHeaders() (Headers, error) {
	if r.tryNil() {
		return nil, nil
	}
	n, err := r.mapLen()
	if err != nil {
		return nil, err
	}
	h := r.headerSlice(n)
	for range n {
		k, err := r.readString()
		if err != nil {
			return nil, err
		}
		v, err := r.readString()
		if err != nil {
			return nil, err
		}
		h = append(h, Header{k, v})
	}
	return h, nil
}

// EncodeEnvelope appends a frame holding e to dst. In steady state, with
// dst reused, it allocates nothing.
func (c *Codec) EncodeEnvelope(dst []byte, e *Envelope) ([]byte, error) {
	dst, start := beginFrame(dst)
	dst, err := e.AppendMsgpack(dst)
	return c.finishFrame(dst, start, err)
}

// DecodeEnvelope decodes a frame holding one envelope into e. The decoded
// strings and byte slices share one buffer that e owns (the decompressed
// body, or one copy of a RAW body), so frame may be reused afterwards.
func (c *Codec) DecodeEnvelope(frame []byte, e *Envelope) error {
	r, err := c.frameReader(frame)
	if err != nil {
		return err
	}
	if err := r.readEnvelope(e); err != nil {
		return err
	}
	if r.i != len(r.b) {
		return corruptf("%d bytes after the envelope", len(r.b)-r.i)
	}
	return nil
}
