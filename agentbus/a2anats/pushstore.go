package a2anats

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/a2abus/a2abus/internal/kvcas"
	"github.com/a2abus/a2abus/internal/recent"
	"github.com/a2aproject/a2a-go/v2/a2a"
	"github.com/a2aproject/a2a-go/v2/a2asrv/push"
	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"
)

// PushConfigStore is an a2asrv push config store (push.ConfigStore) in the
// task store's KV bucket (TasksBucket), so that the push configs of a task
// outlive the process that stored them: whichever member runs the task
// next, or serves GetTaskPushConfig, reads them. A task's configs are one
// key, <agentID>.push.<taskID>, whose value lists them in the order they
// were first saved; they expire with the bucket's entries, a day after
// their last change by default, like the tasks. The keys start with the
// agent's ID, so an agent's own credentials (agentbus.AgentPermissions)
// cover its configs and no one else's. It is safe for concurrent use.
type PushConfigStore struct {
	kv     jetstream.KeyValue
	prefix string                      // "<agentID>.push."
	seen   *recent.Map[string, uint64] // the floor of its reads (readOwn)
	newID  func() string
}

var _ push.ConfigStore = (*PushConfigStore)(nil)

// pushToken follows the agent's ID in the keys of its push configs. Task
// IDs hold no '.', so these keys never look like a task's.
const pushToken = "push."

// Limits of a task's push configs, so that a key's value stays small: a
// config past them is refused with a clear error.
const (
	MaxPushConfigs = 16   // configs per task
	maxPushURL     = 8192 // bytes of a config's URL
	maxPushField   = 4096 // bytes of its ID, token, scheme or credentials
	// A save or delete that loses a compare-and-set to another write is
	// read and tried again, up to pushSaveTries rounds, after a random
	// pause of up to pushSaveRetryPause doubled per round (at most 32
	// times): writers that met do not meet again in lockstep.
	pushSaveTries      = 32
	pushSaveRetryPause = 2 * time.Millisecond
)

// PushConfigs returns the store of the push configs of this task store's
// tasks: the same bucket, keys <agentID>.push.<taskID>.
func (s *TaskStore) PushConfigs() *PushConfigStore {
	return &PushConfigStore{
		kv:     s.kv,
		prefix: s.prefix + pushToken,
		seen:   recent.New[string, uint64](revisionsKept),
		newID:  func() string { return uuid.Must(uuid.NewV7()).String() },
	}
}

// storedPushConfigs is the KV value of a task's push configs.
type storedPushConfigs struct {
	Configs []*a2a.PushConfig `json:"configs"`
	Updated time.Time         `json:"updated"`
}

// decodePushConfigs decodes the value of a task's push configs key.
func decodePushConfigs(key string, value []byte) ([]*a2a.PushConfig, error) {
	var v storedPushConfigs
	if err := json.Unmarshal(value, &v); err != nil {
		return nil, fmt.Errorf("a2anats: push configs %s: undecodable entry: %v", key, err)
	}
	if len(v.Configs) > MaxPushConfigs {
		return nil, fmt.Errorf("a2anats: push configs %s: %d configs, more than %d", key, len(v.Configs), MaxPushConfigs)
	}
	for i, c := range v.Configs {
		if c == nil {
			return nil, fmt.Errorf("a2anats: push configs %s: config %d is null", key, i)
		}
		if err := ValidatePushConfig(c); err != nil {
			return nil, fmt.Errorf("a2anats: push configs %s: config %d: %w", key, i, err)
		}
		if c.ID == "" || slices.ContainsFunc(v.Configs[:i], func(o *a2a.PushConfig) bool { return o.ID == c.ID }) {
			return nil, fmt.Errorf("a2anats: push configs %s: config %d: empty or repeated ID %q", key, i, c.ID)
		}
	}
	return v.Configs, nil
}

// ValidatePushConfig checks a push config as PushConfigStore stores it and
// PushSender sends to it: an absolute http or https URL with a host, an
// authentication scheme that is an HTTP token, and a token and credentials
// that an HTTP header can carry, each within its size limit. The error
// wraps a2a.ErrInvalidParams and says what is wrong.
func ValidatePushConfig(c *a2a.PushConfig) error {
	if c == nil {
		return fmt.Errorf("%w: no push config", a2a.ErrInvalidParams)
	}
	if len(c.URL) > maxPushURL {
		return fmt.Errorf("%w: push config url: %d bytes, want at most %d", a2a.ErrInvalidParams, len(c.URL), maxPushURL)
	}
	u, err := url.Parse(c.URL)
	if err != nil {
		return fmt.Errorf("%w: push config url %q: %v", a2a.ErrInvalidParams, c.URL, err)
	}
	if s := strings.ToLower(u.Scheme); s != "http" && s != "https" || u.Host == "" {
		return fmt.Errorf("%w: push config url %q: want an absolute http or https URL", a2a.ErrInvalidParams, c.URL)
	}
	for _, f := range []struct{ name, v string }{{"id", c.ID}, {"token", c.Token}} {
		if err := checkHeaderValue(f.name, f.v); err != nil {
			return err
		}
	}
	if c.Auth != nil {
		if !isToken(c.Auth.Scheme) {
			return fmt.Errorf("%w: push config authentication scheme %q: want an HTTP authentication scheme such as Bearer or Basic", a2a.ErrInvalidParams, c.Auth.Scheme)
		}
		if err := checkHeaderValue("authentication credentials", c.Auth.Credentials); err != nil {
			return err
		}
	}
	return nil
}

// checkHeaderValue checks that an HTTP header can carry v: valid UTF-8,
// no control characters but tab, within maxPushField bytes.
func checkHeaderValue(name, v string) error {
	if len(v) > maxPushField {
		return fmt.Errorf("%w: push config %s: %d bytes, want at most %d", a2a.ErrInvalidParams, name, len(v), maxPushField)
	}
	if !utf8.ValidString(v) || strings.ContainsFunc(v, func(r rune) bool { return r < ' ' && r != '\t' || r == 0x7f }) {
		return fmt.Errorf("%w: push config %s: want UTF-8 without control characters", a2a.ErrInvalidParams, name)
	}
	return nil
}

// isToken reports whether s is an HTTP token (RFC 9110 section 5.6.2), as
// an authentication scheme is, within maxPushField bytes.
func isToken(s string) bool {
	if s == "" || len(s) > maxPushField {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

// key returns the KV key of a task's push configs, or false for a task ID
// a key cannot hold (such a task does not exist).
func (s *PushConfigStore) key(id a2a.TaskID) (string, bool) {
	k, ok := taskKey(id)
	return s.prefix + k, ok
}

// read returns a task's configs and the key's revision (0: none).
func (s *PushConfigStore) read(ctx context.Context, key string) ([]*a2a.PushConfig, uint64, error) {
	floor, _ := s.seen.Get(key)
	e, err := readOwn(ctx, s.kv, key, floor)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("a2anats: get push configs %s: %w", key, err)
	}
	s.see(key, e.Revision())
	configs, err := decodePushConfigs(key, e.Value())
	return configs, e.Revision(), err
}

// see records rev as the last revision seen of key, unless a later one
// was.
func (s *PushConfigStore) see(key string, rev uint64) {
	s.seen.Put(key, rev, func(stored uint64) bool { return stored >= rev })
}

// update applies change to a task's configs with a compare-and-set on the
// key's revision, read again and retried when another write came first.
// change returns the configs to store or an error that ends the update; it
// may be called more than once. A task whose last config is deleted keeps
// its key, with no configs, until it expires: a key that disappears would
// look like a replica behind this store's writes (readOwn).
func (s *PushConfigStore) update(ctx context.Context, key string, change func([]*a2a.PushConfig) ([]*a2a.PushConfig, error)) error {
	var last error
	for try := 1; try <= pushSaveTries; try++ {
		configs, rev, err := s.read(ctx, key)
		if err != nil {
			return err
		}
		next, err := change(slices.Clone(configs))
		if err != nil {
			return err
		}
		if len(next) == 0 && len(configs) == 0 {
			return nil // nothing stored, nothing to store
		}
		b, err := json.Marshal(storedPushConfigs{Configs: next, Updated: time.Now()})
		if err != nil {
			return fmt.Errorf("a2anats: encode push configs %s: %w", key, err)
		}
		newRev, err := kvcas.RetryBusy(ctx, func() (uint64, error) {
			if rev == 0 {
				return s.kv.Create(ctx, key, b)
			}
			return s.kv.Update(ctx, key, b, rev)
		})
		if err == nil {
			s.see(key, newRev)
			return nil
		}
		if moved, busy := kvcas.Conflict(err); !moved && !busy {
			return fmt.Errorf("a2anats: write push configs %s: %w", key, err)
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("a2anats: write push configs %s: %w", key, ctx.Err())
		case <-time.After(time.Duration(rand.Int64N(int64(pushSaveRetryPause) << min(try, 5)))):
		}
	}
	return fmt.Errorf("a2anats: write push configs %s: %d tries refused by other writes: %w", key, pushSaveTries, last)
}

// Save implements push.ConfigStore: it stores a copy of config among the
// task's configs, replacing the one with its ID. A config without an ID
// gets one: the ID of the stored call it came with (so that the call run
// again by another member after its first died replaces it rather than
// adding a second), else a new UUID. A config ValidatePushConfig refuses
// is refused with its error.
func (s *PushConfigStore) Save(ctx context.Context, taskID a2a.TaskID, config *a2a.PushConfig) (*a2a.PushConfig, error) {
	if err := ValidatePushConfig(config); err != nil {
		return nil, err
	}
	key, ok := s.key(taskID)
	if !ok {
		return nil, fmt.Errorf("%w: task ID %q: want letters, digits, '-' or '_'", a2a.ErrInvalidParams, taskID)
	}
	c := copyPushConfig(config)
	if c.ID == "" {
		if call := storedCallFrom(ctx); call != "" {
			c.ID = "call-" + call
		} else {
			c.ID = s.newID()
		}
	}
	err := s.update(ctx, key, func(configs []*a2a.PushConfig) ([]*a2a.PushConfig, error) {
		i := slices.IndexFunc(configs, func(o *a2a.PushConfig) bool { return o.ID == c.ID })
		if i >= 0 {
			configs[i] = c
			return configs, nil
		}
		if len(configs) >= MaxPushConfigs {
			return nil, fmt.Errorf("%w: task %s has %d push configs, the most it may have", a2a.ErrInvalidParams, taskID, MaxPushConfigs)
		}
		return append(configs, c), nil
	})
	if err != nil {
		return nil, err
	}
	return copyPushConfig(c), nil
}

// Get implements push.ConfigStore: push.ErrPushConfigNotFound when the task
// has no config with that ID.
func (s *PushConfigStore) Get(ctx context.Context, taskID a2a.TaskID, configID string) (*a2a.PushConfig, error) {
	configs, err := s.List(ctx, taskID)
	if err != nil {
		return nil, err
	}
	for _, c := range configs {
		if c.ID == configID {
			return c, nil
		}
	}
	return nil, fmt.Errorf("%w: task %s has no push config %q", push.ErrPushConfigNotFound, taskID, configID)
}

// List implements push.ConfigStore: the task's configs in the order they
// were first saved, none for an unknown task. a2asrv lists them for every
// event of a task: one KV read.
func (s *PushConfigStore) List(ctx context.Context, taskID a2a.TaskID) ([]*a2a.PushConfig, error) {
	key, ok := s.key(taskID)
	if !ok {
		return []*a2a.PushConfig{}, nil
	}
	configs, _, err := s.read(ctx, key)
	if err != nil {
		return nil, err
	}
	if configs == nil {
		configs = []*a2a.PushConfig{}
	}
	return configs, nil
}

// Delete implements push.ConfigStore. Deleting a config that is not there
// is no error.
func (s *PushConfigStore) Delete(ctx context.Context, taskID a2a.TaskID, configID string) error {
	key, ok := s.key(taskID)
	if !ok {
		return nil
	}
	return s.update(ctx, key, func(configs []*a2a.PushConfig) ([]*a2a.PushConfig, error) {
		return slices.DeleteFunc(configs, func(c *a2a.PushConfig) bool { return c.ID == configID }), nil
	})
}

// DeleteAll implements push.ConfigStore.
func (s *PushConfigStore) DeleteAll(ctx context.Context, taskID a2a.TaskID) error {
	key, ok := s.key(taskID)
	if !ok {
		return nil
	}
	return s.update(ctx, key, func([]*a2a.PushConfig) ([]*a2a.PushConfig, error) { return nil, nil })
}

func copyPushConfig(c *a2a.PushConfig) *a2a.PushConfig {
	cp := *c
	if c.Auth != nil {
		auth := *c.Auth
		cp.Auth = &auth
	}
	return &cp
}
