package codec

import (
	"bytes"
	"encoding/json"
	"strings"
)

// The A2A (Agent2Agent) protocol objects an Envelope carries. Field names,
// in JSON and in msgpack alike, are those of the A2A specification's JSON
// (messageId, contextId, taskId, ...), and each object carries its "kind"
// discriminator, so an A2A object converts to and from the wire without
// loss. To keep large integers in metadata exact when reading A2A JSON,
// decode with a json.Decoder and UseNumber: json.Number values encode as
// exact msgpack integers.

// Role is the sender of a Message.
type Role string

// Roles.
const (
	RoleUser  Role = "user"
	RoleAgent Role = "agent"
)

// PartKind discriminates the content of a Part.
type PartKind string

// Part kinds.
const (
	PartText PartKind = "text"
	PartFile PartKind = "file"
	PartData PartKind = "data"
)

// TaskState is the state of a Task.
type TaskState string

// Task states.
const (
	TaskSubmitted     TaskState = "submitted"
	TaskWorking       TaskState = "working"
	TaskInputRequired TaskState = "input-required"
	TaskCompleted     TaskState = "completed"
	TaskCanceled      TaskState = "canceled"
	TaskFailed        TaskState = "failed"
	TaskRejected      TaskState = "rejected"
	TaskAuthRequired  TaskState = "auth-required"
	TaskUnknown       TaskState = "unknown"
)

// Kind discriminators of the A2A objects.
const (
	kindMessage        = "message"
	kindTask           = "task"
	kindStatusUpdate   = "status-update"
	kindArtifactUpdate = "artifact-update"
)

// Message is an A2A message: one turn of communication between agents.
type Message struct {
	MessageID        string         `json:"messageId"`
	Role             Role           `json:"role"`
	Parts            []Part         `json:"parts"`
	ContextID        string         `json:"contextId,omitempty"`
	TaskID           string         `json:"taskId,omitempty"`
	ReferenceTaskIDs []string       `json:"referenceTaskIds,omitempty"`
	Extensions       []string       `json:"extensions,omitempty"`
	Metadata         map[string]any `json:"metadata,omitempty"`
}

// Text returns the text of the message's text parts, joined by newlines.
func (m *Message) Text() string {
	var texts []string
	for _, p := range m.Parts {
		if p.Kind == PartText {
			texts = append(texts, p.Text)
		}
	}
	return strings.Join(texts, "\n")
}

// Part is one piece of content of a Message or an Artifact: text, a file
// or structured data, as Kind says.
type Part struct {
	Kind     PartKind
	Text     string         // PartText
	File     *FileContent   // PartFile
	Data     map[string]any // PartData
	Metadata map[string]any
}

// TextPart returns a text part.
func TextPart(text string) Part { return Part{Kind: PartText, Text: text} }

// DataPart returns a structured data part.
func DataPart(data map[string]any) Part { return Part{Kind: PartData, Data: data} }

// FilePart returns a file part.
func FilePart(f FileContent) Part { return Part{Kind: PartFile, File: &f} }

// FileContent is a file, inline (Bytes) or by reference (URI). In JSON the
// bytes are base64, as in the A2A specification; in msgpack they are bin.
type FileContent struct {
	Name     string `json:"name,omitempty"`
	MIMEType string `json:"mimeType,omitempty"`
	Bytes    []byte `json:"bytes,omitempty"`
	URI      string `json:"uri,omitempty"`
}

// TaskStatus is the state of a Task with an optional message.
type TaskStatus struct {
	State     TaskState `json:"state"`
	Message   *Message  `json:"message,omitempty"`
	Timestamp string    `json:"timestamp,omitempty"` // ISO 8601
}

// Artifact is an output of a Task.
type Artifact struct {
	ArtifactID  string         `json:"artifactId"`
	Name        string         `json:"name,omitempty"`
	Description string         `json:"description,omitempty"`
	Parts       []Part         `json:"parts"`
	Metadata    map[string]any `json:"metadata,omitempty"`
	Extensions  []string       `json:"extensions,omitempty"`
}

// Task is an A2A task.
type Task struct {
	ID        string         `json:"id"`
	ContextID string         `json:"contextId"`
	Status    TaskStatus     `json:"status"`
	History   []Message      `json:"history,omitempty"`
	Artifacts []Artifact     `json:"artifacts,omitempty"`
	Metadata  map[string]any `json:"metadata,omitempty"`
}

// TaskStatusUpdateEvent reports a change of a task's status.
type TaskStatusUpdateEvent struct {
	TaskID    string         `json:"taskId"`
	ContextID string         `json:"contextId"`
	Status    TaskStatus     `json:"status"`
	Final     bool           `json:"final"`
	Metadata  map[string]any `json:"metadata,omitempty"`
}

// TaskArtifactUpdateEvent delivers an artifact, or a chunk of one.
type TaskArtifactUpdateEvent struct {
	TaskID    string         `json:"taskId"`
	ContextID string         `json:"contextId"`
	Artifact  Artifact       `json:"artifact"`
	Append    bool           `json:"append,omitempty"`
	LastChunk bool           `json:"lastChunk,omitempty"`
	Metadata  map[string]any `json:"metadata,omitempty"`
}

// MarshalJSON writes the message with "kind": "message".
func (m Message) MarshalJSON() ([]byte, error) {
	type message Message
	return json.Marshal(struct {
		Kind string `json:"kind"`
		message
	}{kindMessage, message(m)})
}

// MarshalJSON writes the task with "kind": "task".
func (t Task) MarshalJSON() ([]byte, error) {
	type task Task
	return json.Marshal(struct {
		Kind string `json:"kind"`
		task
	}{kindTask, task(t)})
}

// MarshalJSON writes the event with "kind": "status-update".
func (e TaskStatusUpdateEvent) MarshalJSON() ([]byte, error) {
	type event TaskStatusUpdateEvent
	return json.Marshal(struct {
		Kind string `json:"kind"`
		event
	}{kindStatusUpdate, event(e)})
}

// MarshalJSON writes the event with "kind": "artifact-update".
func (e TaskArtifactUpdateEvent) MarshalJSON() ([]byte, error) {
	type event TaskArtifactUpdateEvent
	return json.Marshal(struct {
		Kind string `json:"kind"`
		event
	}{kindArtifactUpdate, event(e)})
}

// MarshalJSON writes the part as the A2A TextPart, FilePart or DataPart.
func (p Part) MarshalJSON() ([]byte, error) {
	switch p.Kind {
	case PartText:
		return json.Marshal(struct {
			Kind     PartKind       `json:"kind"`
			Text     string         `json:"text"`
			Metadata map[string]any `json:"metadata,omitempty"`
		}{p.Kind, p.Text, p.Metadata})
	case PartFile:
		return json.Marshal(struct {
			Kind     PartKind       `json:"kind"`
			File     *FileContent   `json:"file"`
			Metadata map[string]any `json:"metadata,omitempty"`
		}{p.Kind, p.File, p.Metadata})
	case PartData:
		return json.Marshal(struct {
			Kind     PartKind       `json:"kind"`
			Data     map[string]any `json:"data"`
			Metadata map[string]any `json:"metadata,omitempty"`
		}{p.Kind, p.Data, p.Metadata})
	}
	return json.Marshal(struct {
		Kind     PartKind       `json:"kind,omitempty"`
		Text     string         `json:"text,omitempty"`
		File     *FileContent   `json:"file,omitempty"`
		Data     map[string]any `json:"data,omitempty"`
		Metadata map[string]any `json:"metadata,omitempty"`
	}{p.Kind, p.Text, p.File, p.Data, p.Metadata})
}

// UnmarshalJSON reads any of the A2A part objects.
func (p *Part) UnmarshalJSON(b []byte) error {
	var v struct {
		Kind     PartKind       `json:"kind"`
		Text     string         `json:"text"`
		File     *FileContent   `json:"file"`
		Data     map[string]any `json:"data"`
		Metadata map[string]any `json:"metadata"`
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber() // keep integers in data and metadata exact
	if err := d.Decode(&v); err != nil {
		return err
	}
	*p = Part{Kind: v.Kind, Text: v.Text, File: v.File, Data: v.Data, Metadata: v.Metadata}
	return nil
}

// msgpack encodings of the A2A objects, with the same field names.

func appendParts(b []byte, parts []Part) ([]byte, error) {
	b = appendArrayHeader(b, len(parts))
	var err error
	for i := range parts {
		if b, err = parts[i].AppendMsgpack(b); err != nil {
			return b, err
		}
	}
	return b, nil
}

// AppendMsgpack appends the part as a msgpack map.
func (p *Part) AppendMsgpack(b []byte) ([]byte, error) {
	text := p.Kind == PartText || p.Text != ""
	data := p.Kind == PartData || p.Data != nil
	b = appendMapHeader(b, 1+count(text)+count(p.File != nil)+count(data)+count(p.Metadata != nil))
	var err error
	if p.Kind == PartText {
		b = appendStr(append(b, "\xa4kind\xa4text\xa4text"...), p.Text)
	} else {
		b = appendStr(append(b, "\xa4kind"...), string(p.Kind))
		if text {
			b = appendStr(append(b, "\xa4text"...), p.Text)
		}
	}
	if p.File != nil {
		b = p.File.appendMsgpack(appendStr(b, "file"))
	}
	if data {
		b = appendStr(b, "data")
		if p.Data == nil {
			b = appendMapHeader(b, 0)
		} else if b, err = appendValue(b, p.Data, 1); err != nil {
			return b, err
		}
	}
	if p.Metadata != nil {
		if b, err = appendValue(appendStr(b, "metadata"), p.Metadata, 1); err != nil {
			return b, err
		}
	}
	return b, nil
}

func (f *FileContent) appendMsgpack(b []byte) []byte {
	b = appendMapHeader(b, count(f.Name != "")+count(f.MIMEType != "")+count(f.Bytes != nil)+count(f.URI != ""))
	if f.Name != "" {
		b = appendStr(appendStr(b, "name"), f.Name)
	}
	if f.MIMEType != "" {
		b = appendStr(appendStr(b, "mimeType"), f.MIMEType)
	}
	if f.Bytes != nil {
		b = appendBin(appendStr(b, "bytes"), f.Bytes)
	}
	if f.URI != "" {
		b = appendStr(appendStr(b, "uri"), f.URI)
	}
	return b
}

// AppendMsgpack appends the message as a msgpack map.
func (m *Message) AppendMsgpack(b []byte) ([]byte, error) {
	b = appendMapHeader(b, 4+count(m.ContextID != "")+count(m.TaskID != "")+
		count(m.ReferenceTaskIDs != nil)+count(m.Extensions != nil)+count(m.Metadata != nil))
	b = appendStr(append(b, "\xa4kind\xa7message\xa9messageId"...), m.MessageID)
	b = appendStr(append(b, "\xa4role"...), string(m.Role))
	b, err := appendParts(append(b, "\xa5parts"...), m.Parts)
	if err != nil {
		return b, err
	}
	if m.ContextID != "" {
		b = appendStr(append(b, "\xa9contextId"...), m.ContextID)
	}
	if m.TaskID != "" {
		b = appendStr(append(b, "\xa6taskId"...), m.TaskID)
	}
	if m.ReferenceTaskIDs != nil {
		b = appendStrings(appendStr(b, "referenceTaskIds"), m.ReferenceTaskIDs)
	}
	if m.Extensions != nil {
		b = appendStrings(appendStr(b, "extensions"), m.Extensions)
	}
	if m.Metadata != nil {
		return appendValue(appendStr(b, "metadata"), m.Metadata, 1)
	}
	return b, nil
}

func (s *TaskStatus) appendMsgpack(b []byte) ([]byte, error) {
	b = appendMapHeader(b, 1+count(s.Message != nil)+count(s.Timestamp != ""))
	b = appendStr(appendStr(b, "state"), string(s.State))
	var err error
	if s.Message != nil {
		if b, err = s.Message.AppendMsgpack(appendStr(b, "message")); err != nil {
			return b, err
		}
	}
	if s.Timestamp != "" {
		b = appendStr(appendStr(b, "timestamp"), s.Timestamp)
	}
	return b, nil
}

func (a *Artifact) appendMsgpack(b []byte) ([]byte, error) {
	b = appendMapHeader(b, 2+count(a.Name != "")+count(a.Description != "")+
		count(a.Metadata != nil)+count(a.Extensions != nil))
	b = appendStr(appendStr(b, "artifactId"), a.ArtifactID)
	if a.Name != "" {
		b = appendStr(appendStr(b, "name"), a.Name)
	}
	if a.Description != "" {
		b = appendStr(appendStr(b, "description"), a.Description)
	}
	b, err := appendParts(appendStr(b, "parts"), a.Parts)
	if err != nil {
		return b, err
	}
	if a.Metadata != nil {
		if b, err = appendValue(appendStr(b, "metadata"), a.Metadata, 1); err != nil {
			return b, err
		}
	}
	if a.Extensions != nil {
		b = appendStrings(appendStr(b, "extensions"), a.Extensions)
	}
	return b, nil
}

// AppendMsgpack appends the task as a msgpack map.
func (t *Task) AppendMsgpack(b []byte) ([]byte, error) {
	b = appendMapHeader(b, 4+count(t.History != nil)+count(t.Artifacts != nil)+count(t.Metadata != nil))
	b = appendStr(appendStr(b, "kind"), kindTask)
	b = appendStr(appendStr(b, "id"), t.ID)
	b = appendStr(appendStr(b, "contextId"), t.ContextID)
	b, err := t.Status.appendMsgpack(appendStr(b, "status"))
	if err != nil {
		return b, err
	}
	if t.History != nil {
		b = appendArrayHeader(appendStr(b, "history"), len(t.History))
		for i := range t.History {
			if b, err = t.History[i].AppendMsgpack(b); err != nil {
				return b, err
			}
		}
	}
	if t.Artifacts != nil {
		b = appendArrayHeader(appendStr(b, "artifacts"), len(t.Artifacts))
		for i := range t.Artifacts {
			if b, err = t.Artifacts[i].appendMsgpack(b); err != nil {
				return b, err
			}
		}
	}
	if t.Metadata != nil {
		return appendValue(appendStr(b, "metadata"), t.Metadata, 1)
	}
	return b, nil
}

// AppendMsgpack appends the event as a msgpack map.
func (e *TaskStatusUpdateEvent) AppendMsgpack(b []byte) ([]byte, error) {
	b = appendMapHeader(b, 5+count(e.Metadata != nil))
	b = appendStr(appendStr(b, "kind"), kindStatusUpdate)
	b = appendStr(appendStr(b, "taskId"), e.TaskID)
	b = appendStr(appendStr(b, "contextId"), e.ContextID)
	b, err := e.Status.appendMsgpack(appendStr(b, "status"))
	if err != nil {
		return b, err
	}
	b = appendBool(appendStr(b, "final"), e.Final)
	if e.Metadata != nil {
		return appendValue(appendStr(b, "metadata"), e.Metadata, 1)
	}
	return b, nil
}

// AppendMsgpack appends the event as a msgpack map.
func (e *TaskArtifactUpdateEvent) AppendMsgpack(b []byte) ([]byte, error) {
	b = appendMapHeader(b, 4+count(e.Append)+count(e.LastChunk)+count(e.Metadata != nil))
	b = appendStr(appendStr(b, "kind"), kindArtifactUpdate)
	b = appendStr(appendStr(b, "taskId"), e.TaskID)
	b = appendStr(appendStr(b, "contextId"), e.ContextID)
	b, err := e.Artifact.appendMsgpack(appendStr(b, "artifact"))
	if err != nil {
		return b, err
	}
	if e.Append {
		b = appendBool(appendStr(b, "append"), true)
	}
	if e.LastChunk {
		b = appendBool(appendStr(b, "lastChunk"), true)
	}
	if e.Metadata != nil {
		return appendValue(appendStr(b, "metadata"), e.Metadata, 1)
	}
	return b, nil
}

func count(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Decoding. Unknown keys are skipped; "kind" is implied by the field the
// object sits in.

// readFields reads a msgpack map of string keys, calling field for each
// key with the reader at its value; field must consume the value.
func (r *reader) readFields(field func(key []byte) error) error {
	n, err := r.mapLen()
	if err != nil {
		return err
	}
	for range n {
		k, err := r.strBytes()
		if err != nil {
			return err
		}
		if err := field(k); err != nil {
			return err
		}
	}
	return nil
}

func (r *reader) readParts() ([]Part, error) {
	if r.tryNil() {
		return nil, nil
	}
	n, err := r.arrayLen()
	if err != nil {
		return nil, err
	}
	if err := r.enter(); err != nil {
		return nil, err
	}
	if n == 0 {
		return nil, nil
	}
	parts := r.partSlice(n)
	for range n {
		var p Part
		if err := r.readPart(&p); err != nil {
			return nil, err
		}
		parts = append(parts, p)
	}
	r.leave()
	return parts, nil
}

func (r *reader) readPart(p *Part) error {
	return r.readFields(func(k []byte) (err error) {
		switch string(k) {
		case "kind":
			var s string
			s, err = r.readStringOrNil()
			p.Kind = PartKind(s)
		case "text":
			p.Text, err = r.readStringOrNil()
		case "file":
			if !r.tryNil() {
				p.File = new(FileContent)
				err = r.readFile(p.File)
			}
		case "data":
			p.Data, err = r.readGenericMap()
		case "metadata":
			p.Metadata, err = r.readGenericMap()
		default:
			err = r.skip()
		}
		return err
	})
}

func (r *reader) readFile(f *FileContent) error {
	return r.readFields(func(k []byte) (err error) {
		switch string(k) {
		case "name":
			f.Name, err = r.readStringOrNil()
		case "mimeType":
			f.MIMEType, err = r.readStringOrNil()
		case "bytes":
			f.Bytes, err = r.readBinOrNil()
		case "uri":
			f.URI, err = r.readStringOrNil()
		default:
			err = r.skip()
		}
		return err
	})
}

func (r *reader) readStrings() ([]string, error) {
	if r.tryNil() {
		return nil, nil
	}
	n, err := r.arrayLen()
	if err != nil {
		return nil, err
	}
	s := make([]string, 0, min(n, 64))
	for range n {
		v, err := r.readStringOrNil()
		if err != nil {
			return nil, err
		}
		s = append(s, v)
	}
	return s, nil
}

func (r *reader) readMessage(m *Message) error {
	if err := r.enter(); err != nil {
		return err
	}
	defer r.leave()
	return r.readFields(func(k []byte) (err error) {
		switch string(k) {
		case "messageId":
			m.MessageID, err = r.readStringOrNil()
		case "role":
			var s string
			s, err = r.readStringOrNil()
			m.Role = Role(s)
		case "parts":
			m.Parts, err = r.readParts()
		case "contextId":
			m.ContextID, err = r.readStringOrNil()
		case "taskId":
			m.TaskID, err = r.readStringOrNil()
		case "referenceTaskIds":
			m.ReferenceTaskIDs, err = r.readStrings()
		case "extensions":
			m.Extensions, err = r.readStrings()
		case "metadata":
			m.Metadata, err = r.readGenericMap()
		default:
			err = r.skip()
		}
		return err
	})
}

func (r *reader) readStatus(s *TaskStatus) error {
	return r.readFields(func(k []byte) (err error) {
		switch string(k) {
		case "state":
			var v string
			v, err = r.readStringOrNil()
			s.State = TaskState(v)
		case "message":
			if !r.tryNil() {
				s.Message = r.newMessage()
				err = r.readMessage(s.Message)
			}
		case "timestamp":
			s.Timestamp, err = r.readStringOrNil()
		default:
			err = r.skip()
		}
		return err
	})
}

func (r *reader) readArtifact(a *Artifact) error {
	if err := r.enter(); err != nil {
		return err
	}
	defer r.leave()
	return r.readFields(func(k []byte) (err error) {
		switch string(k) {
		case "artifactId":
			a.ArtifactID, err = r.readStringOrNil()
		case "name":
			a.Name, err = r.readStringOrNil()
		case "description":
			a.Description, err = r.readStringOrNil()
		case "parts":
			a.Parts, err = r.readParts()
		case "metadata":
			a.Metadata, err = r.readGenericMap()
		case "extensions":
			a.Extensions, err = r.readStrings()
		default:
			err = r.skip()
		}
		return err
	})
}

func (r *reader) readTask(t *Task) error {
	return r.readFields(func(k []byte) (err error) {
		switch string(k) {
		case "id":
			t.ID, err = r.readStringOrNil()
		case "contextId":
			t.ContextID, err = r.readStringOrNil()
		case "status":
			err = r.readStatus(&t.Status)
		case "history":
			var m int
			if m, err = r.arrayLen(); err == nil {
				t.History = make([]Message, 0, min(m, 64))
				for i := 0; i < m && err == nil; i++ {
					t.History = append(t.History, Message{})
					err = r.readMessage(&t.History[i])
				}
			}
		case "artifacts":
			var m int
			if m, err = r.arrayLen(); err == nil {
				t.Artifacts = make([]Artifact, 0, min(m, 64))
				for i := 0; i < m && err == nil; i++ {
					t.Artifacts = append(t.Artifacts, Artifact{})
					err = r.readArtifact(&t.Artifacts[i])
				}
			}
		case "metadata":
			t.Metadata, err = r.readGenericMap()
		default:
			err = r.skip()
		}
		return err
	})
}

func (r *reader) readStatusUpdate(e *TaskStatusUpdateEvent) error {
	return r.readFields(func(k []byte) (err error) {
		switch string(k) {
		case "taskId":
			e.TaskID, err = r.readStringOrNil()
		case "contextId":
			e.ContextID, err = r.readStringOrNil()
		case "status":
			err = r.readStatus(&e.Status)
		case "final":
			e.Final, err = r.readBool()
		case "metadata":
			e.Metadata, err = r.readGenericMap()
		default:
			err = r.skip()
		}
		return err
	})
}

func (r *reader) readArtifactUpdate(e *TaskArtifactUpdateEvent) error {
	return r.readFields(func(k []byte) (err error) {
		switch string(k) {
		case "taskId":
			e.TaskID, err = r.readStringOrNil()
		case "contextId":
			e.ContextID, err = r.readStringOrNil()
		case "artifact":
			err = r.readArtifact(&e.Artifact)
		case "append":
			e.Append, err = r.readBool()
		case "lastChunk":
			e.LastChunk, err = r.readBool()
		case "metadata":
			e.Metadata, err = r.readGenericMap()
		default:
			err = r.skip()
		}
		return err
	})
}
