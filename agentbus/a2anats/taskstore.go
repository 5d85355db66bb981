package a2anats

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/a2abus/a2abus/agentbus"
	"github.com/a2abus/a2abus/internal/kvcas"
	"github.com/a2abus/a2abus/internal/recent"
	"github.com/a2abus/a2abus/placement"
	"github.com/a2aproject/a2a-go/v2/a2a"
	"github.com/a2aproject/a2a-go/v2/a2asrv"
	"github.com/a2aproject/a2a-go/v2/a2asrv/taskstore"
	"github.com/nats-io/nats.go/jetstream"
)

// TasksBucket is the KV bucket of TaskStore: one key per task,
// <agentID>.<taskID>, and one per task a stored call created,
// <agentID>.calls.<callID>, whose value is the task's ID (see Server).
const TasksBucket = "a2abus_tasks"

// DefaultTaskTTL is how long a task is kept after its last update.
const DefaultTaskTTL = 24 * time.Hour

// TaskStore is an a2asrv task store in a KV bucket, so that the consumer
// that serves an agent's GetTask or CancelTask need not be the one that ran
// the task: agents move between consumers as consumers come and go. A
// task's version is its KV revision, so a2asrv's optimistic concurrency
// (a cancel applied while another process runs the task) works across
// processes. Each agent has a store of its own (the keys start with its
// ID): GetTask to one agent never finds another's task. It is safe for
// concurrent use.
type TaskStore struct {
	kv     jetstream.KeyValue
	now    func() time.Time
	prefix string                      // "<agentID>."
	seen   *recent.Map[string, uint64] // the floor of its reads (see get)
}

var _ taskstore.Store = (*TaskStore)(nil)

// storedTask is a task's KV value.
type storedTask struct {
	Task    *a2a.Task `json:"task"`
	User    string    `json:"user,omitempty"`
	Updated time.Time `json:"updated"`
}

// NewTaskStore opens agentID's task store on bus, creating the bucket with
// ttl as its entries' age limit (0 for DefaultTaskTTL).
func NewTaskStore(ctx context.Context, bus *agentbus.Bus, agentID string, ttl time.Duration) (*TaskStore, error) {
	if err := placement.ValidateAgentID(agentID); err != nil {
		return nil, fmt.Errorf("a2anats: task store: %w", err)
	}
	if ttl == 0 {
		ttl = DefaultTaskTTL
	}
	if ttl < 0 {
		return nil, fmt.Errorf("a2anats: task TTL %v: want positive", ttl)
	}
	kv, err := bus.KeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: TasksBucket, Description: "a2abus: A2A tasks", History: 1, TTL: ttl,
	})
	if err != nil {
		return nil, err
	}
	return &TaskStore{kv: kv, now: time.Now, prefix: agentID + ".", seen: recent.New[string, uint64](revisionsKept)}, nil
}

// key returns the KV key of a task ID in this store, or false for an ID
// a key cannot hold (such a task does not exist).
func (s *TaskStore) key(id a2a.TaskID) (string, bool) {
	k, ok := taskKey(id)
	return s.prefix + k, ok
}

// callsToken starts the keys of the tasks stored calls created, after the
// agent's ID: task IDs hold no '.', so these keys never look like a task's.
const callsToken = "calls."

// storedCall is the context key of the stored call a Server runs.
type storedCall struct{}

func withStoredCall(ctx context.Context, callID string) context.Context {
	return context.WithValue(ctx, storedCall{}, callID)
}

func storedCallFrom(ctx context.Context) string {
	id, _ := ctx.Value(storedCall{}).(string)
	return id
}

// callKey checks a call ID for a KV key token, as taskKey does.
func callKey(id string) (string, bool) { return taskKey(a2a.TaskID(id)) }

// callTask returns the task the stored call callID created in agentID's
// store, or nil when it made none.
func callTask(ctx context.Context, kv jetstream.KeyValue, agentID, callID string) (*a2a.Task, error) {
	call, ok := callKey(callID)
	if !ok {
		return nil, nil
	}
	e, err := kv.Get(ctx, agentID+"."+callsToken+call)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("a2anats: the task of call %s: %w", callID, err)
	}
	s := &TaskStore{kv: kv, prefix: agentID + ".", seen: recent.New[string, uint64](1)}
	key, ok := s.key(a2a.TaskID(e.Value()))
	if !ok {
		return nil, nil
	}
	st, err := s.get(ctx, key)
	if errors.Is(err, a2a.ErrTaskNotFound) {
		return nil, nil // expired
	}
	if err != nil {
		return nil, err
	}
	return st.Task, nil
}

// taskKey checks a task ID for a KV key. A2A task IDs are UUIDs.
func taskKey(id a2a.TaskID) (string, bool) {
	s := string(id)
	if s == "" || len(s) > 256 {
		return "", false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return "", false
		}
	}
	return s, true
}

func userOf(ctx context.Context) string {
	if cc, ok := a2asrv.CallContextFrom(ctx); ok && cc.User != nil {
		return cc.User.Name
	}
	return ""
}

func (s *TaskStore) encode(task *a2a.Task, user string) ([]byte, error) {
	b, err := json.Marshal(storedTask{Task: task, User: user, Updated: s.now()})
	if err != nil {
		return nil, fmt.Errorf("a2anats: encode task %s: %w", task.ID, err)
	}
	return b, nil
}

// Create implements taskstore.Store.
func (s *TaskStore) Create(ctx context.Context, task *a2a.Task) (taskstore.TaskVersion, error) {
	key, ok := s.key(task.ID)
	if !ok {
		return taskstore.TaskVersionMissing, fmt.Errorf("%w: task ID %q: want letters, digits, '-' or '_'", a2a.ErrInvalidParams, task.ID)
	}
	b, err := s.encode(task, userOf(ctx))
	if err != nil {
		return taskstore.TaskVersionMissing, err
	}
	// A task a stored call creates is found again by the call's ID, before
	// it exists, so that the call run again after its member died goes on
	// in it (Server.resume) instead of making another.
	if call, ok := callKey(storedCallFrom(ctx)); ok {
		if _, err := s.kv.Put(ctx, s.prefix+callsToken+call, []byte(task.ID)); err != nil {
			return taskstore.TaskVersionMissing, fmt.Errorf("a2anats: create task %s: note its call: %w", task.ID, err)
		}
	}
	rev, err := s.kv.Create(ctx, key, b)
	if errors.Is(err, jetstream.ErrKeyExists) {
		return taskstore.TaskVersionMissing, taskstore.ErrTaskAlreadyExists
	}
	if err != nil {
		return taskstore.TaskVersionMissing, fmt.Errorf("a2anats: create task %s: %w", task.ID, err)
	}
	s.see(key, rev)
	return taskstore.TaskVersion(rev), nil
}

// Update implements taskstore.Store.
func (s *TaskStore) Update(ctx context.Context, req *taskstore.UpdateRequest) (taskstore.TaskVersion, error) {
	key, ok := s.key(req.Task.ID)
	if !ok {
		return taskstore.TaskVersionMissing, a2a.ErrTaskNotFound
	}
	prev, err := s.get(ctx, key)
	if err != nil {
		return taskstore.TaskVersionMissing, err
	}
	if req.PrevVersion != taskstore.TaskVersionMissing && prev.Version != req.PrevVersion {
		return taskstore.TaskVersionMissing, taskstore.ErrConcurrentModification
	}
	b, err := s.encode(req.Task, prev.user)
	if err != nil {
		return taskstore.TaskVersionMissing, err
	}
	// A refusal because our own last write to the task is still in process
	// on the stream leader (R3 only) is retried at once: it is no conflict.
	rev, err := kvcas.RetryBusy(ctx, func() (uint64, error) { return s.kv.Update(ctx, key, b, uint64(prev.Version)) })
	if err != nil {
		if moved, busy := kvcas.Conflict(err); moved || busy {
			return taskstore.TaskVersionMissing, taskstore.ErrConcurrentModification
		}
		return taskstore.TaskVersionMissing, fmt.Errorf("a2anats: update task %s: %w", req.Task.ID, err)
	}
	s.see(key, rev)
	return taskstore.TaskVersion(rev), nil
}

// stored is a task as read, with its owner.
type stored struct {
	taskstore.StoredTask
	user    string
	updated time.Time
}

// get reads a task by direct get, which any replica may answer on R3, so
// that this process reads its own writes (a2asrv compares the version it
// read when it updates a task, and reads a task right after creating it)
// from the last revision this store wrote or read of the key on (readOwn).
func (s *TaskStore) get(ctx context.Context, key string) (*stored, error) {
	floor, _ := s.seen.Get(key)
	e, err := readOwn(ctx, s.kv, key, floor)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, a2a.ErrTaskNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("a2anats: get task %s: %w", key, err)
	}
	s.see(key, e.Revision())
	return decodeTask(&kvEntry{Key: key, Value: e.Value(), Revision: e.Revision()})
}

// kvEntry is a KV value with its key and revision.
type kvEntry struct {
	Key      string
	Value    []byte
	Revision uint64
}

// revisionsKept bounds the keys whose last revision a store remembers:
// twice this many.
const revisionsKept = 4096

// see records rev as the last revision seen of key, unless a later one
// was.
func (s *TaskStore) see(key string, rev uint64) {
	s.seen.Put(key, rev, func(stored uint64) bool { return stored >= rev })
}

func decodeTask(e *kvEntry) (*stored, error) {
	var st storedTask
	if err := json.Unmarshal(e.Value, &st); err != nil || st.Task == nil {
		return nil, fmt.Errorf("a2anats: task %s: undecodable entry: %v", e.Key, err)
	}
	return &stored{StoredTask: taskstore.StoredTask{Task: st.Task, Version: taskstore.TaskVersion(e.Revision)}, user: st.User, updated: st.Updated}, nil
}

// Get implements taskstore.Store.
func (s *TaskStore) Get(ctx context.Context, id a2a.TaskID) (*taskstore.StoredTask, error) {
	key, ok := s.key(id)
	if !ok {
		return nil, a2a.ErrTaskNotFound
	}
	st, err := s.get(ctx, key)
	if err != nil {
		return nil, err
	}
	return &st.StoredTask, nil
}

// List implements taskstore.Store: the caller's tasks (those created under
// the same authenticated user name, or without one), newest update first,
// filtered and paged as the request asks. It reads every task in the
// bucket, so it is meant for operators and small stores, not a hot path.
func (s *TaskStore) List(ctx context.Context, req *a2a.ListTasksRequest) (*a2a.ListTasksResponse, error) {
	pageSize := req.PageSize
	switch {
	case pageSize == 0:
		pageSize = 50
	case pageSize < 1 || pageSize > 100:
		return nil, fmt.Errorf("%w: page size %d: want 1 to 100", a2a.ErrInvalidRequest, pageSize)
	}
	offset := 0
	if req.PageToken != "" {
		n, err := strconv.Atoi(req.PageToken)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("%w: bad page token %q", a2a.ErrInvalidParams, req.PageToken)
		}
		offset = n
	}
	lister, err := s.kv.ListKeysFiltered(ctx, s.prefix+"*") // tasks, not their calls
	if err != nil {
		return nil, fmt.Errorf("a2anats: list tasks: %w", err)
	}
	user := userOf(ctx)
	var all []*stored
	for key := range lister.Keys() {
		st, err := s.get(ctx, key)
		if errors.Is(err, a2a.ErrTaskNotFound) {
			continue // deleted or expired since listed
		}
		if err != nil {
			return nil, err
		}
		t := st.Task
		switch {
		case st.user != user,
			req.ContextID != "" && t.ContextID != req.ContextID,
			req.Status != a2a.TaskStateUnspecified && t.Status.State != req.Status,
			req.StatusTimestampAfter != nil && t.Status.Timestamp != nil && t.Status.Timestamp.Before(*req.StatusTimestampAfter):
			continue
		}
		all = append(all, st)
	}
	slices.SortFunc(all, func(a, b *stored) int {
		if c := b.updated.Compare(a.updated); c != 0 {
			return c
		}
		return strings.Compare(string(b.Task.ID), string(a.Task.ID))
	})
	// Tasks is never nil: no match is "tasks": [] in JSON, as A2A asks.
	resp := &a2a.ListTasksResponse{Tasks: []*a2a.Task{}, TotalSize: len(all), PageSize: pageSize}
	page := all[min(offset, len(all)):]
	if len(page) > pageSize {
		page = page[:pageSize]
		resp.NextPageToken = strconv.Itoa(offset + pageSize)
	}
	history := 100
	if req.HistoryLength != nil {
		history = *req.HistoryLength
	}
	for _, st := range page {
		t := st.Task
		if history >= 0 && len(t.History) > history {
			t.History = t.History[len(t.History)-history:]
		}
		if !req.IncludeArtifacts {
			t.Artifacts = nil
		}
		resp.Tasks = append(resp.Tasks, t)
	}
	return resp, nil
}
