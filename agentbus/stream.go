package agentbus

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/a2abus/a2abus/internal/kvcas"
	"github.com/nats-io/nats.go/jetstream"
)

// Names of the streams the bus runs on and of their subjects.
const (
	// StreamName is the stream that stores A2A messages on their way to
	// consumers. Messages are removed once acknowledged (work queue).
	StreamName = "A2A"
	// SubjectPrefix starts every A2A message subject:
	// a2a.in.<pool>.<partition>.<agent>.
	SubjectPrefix = "a2a.in"

	// DeadLetterStreamName is the stream of messages that could not be
	// handled, each with the reason.
	DeadLetterStreamName = "A2A_DLQ"
	// DeadLetterSubjectPrefix starts every dead letter's subject.
	DeadLetterSubjectPrefix = "a2a.dlq"
)

// Stream defaults.
const (
	DefaultDuplicates         = 2 * time.Minute
	DefaultMaxMsgSize         = 16 << 20 // a 10 MiB message plus batch envelope and headers
	DefaultMaxBytes           = 8 << 30
	DefaultDeadLetterMaxBytes = 1 << 30
)

// StreamConfig holds the settings of the A2A stream and its dead-letter
// stream. The zero value takes every default.
type StreamConfig struct {
	// Replicas is the number of copies of each message: 1 on a single
	// server, 3 in a cluster. Default 1.
	Replicas int
	// Storage is file (default, survives restarts) or memory.
	Storage jetstream.StorageType
	// Duplicates is the window in which a repeated Nats-Msg-Id is dropped.
	// Default DefaultDuplicates.
	Duplicates time.Duration
	// MaxMsgSize is the largest message (one batch frame) the stream takes.
	// Default DefaultMaxMsgSize.
	MaxMsgSize int32
	// MaxBytes bounds the A2A stream. When it is full a publish fails with
	// an error (discard new); nothing already stored is dropped. Default
	// DefaultMaxBytes.
	MaxBytes int64
	// MaxAge, when set, removes messages that were not handled in time.
	// Default 0: messages wait for their consumer however long it takes,
	// since ageing out unhandled messages would lose them silently.
	MaxAge time.Duration
	// DeadLetterMaxBytes bounds the dead-letter stream (discard new).
	// Default DefaultDeadLetterMaxBytes.
	DeadLetterMaxBytes int64
	// UpdateLimits makes EnsureStreams bring the limits and replicas of
	// existing streams to these settings. Without it existing streams are
	// left as they are (an operator may have tuned them), and only checked
	// for conflicts.
	UpdateLimits bool
}

// Validate reports the first setting that is out of range.
func (c StreamConfig) Validate() error {
	switch {
	case c.Replicas < 0 || c.Replicas > 5:
		return fmt.Errorf("agentbus: stream replicas %d out of range 1..5", c.Replicas)
	case c.Duplicates < 0:
		return fmt.Errorf("agentbus: negative duplicate window %v", c.Duplicates)
	case c.MaxMsgSize < 0:
		return fmt.Errorf("agentbus: negative max message size %d", c.MaxMsgSize)
	case c.MaxBytes < 0 || c.DeadLetterMaxBytes < 0:
		return fmt.Errorf("agentbus: negative stream size limit")
	case c.MaxAge < 0:
		return fmt.Errorf("agentbus: negative max age %v", c.MaxAge)
	}
	return nil
}

func (c StreamConfig) withDefaults() StreamConfig {
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	if c.Duplicates == 0 {
		c.Duplicates = DefaultDuplicates
	}
	if c.MaxMsgSize == 0 {
		c.MaxMsgSize = DefaultMaxMsgSize
	}
	if c.MaxBytes == 0 {
		c.MaxBytes = DefaultMaxBytes
	}
	if c.DeadLetterMaxBytes == 0 {
		c.DeadLetterMaxBytes = DefaultDeadLetterMaxBytes
	}
	return c
}

// streams returns the JetStream configurations of the A2A stream and the
// dead-letter stream.
func (c StreamConfig) streams() []jetstream.StreamConfig {
	c = c.withDefaults()
	return []jetstream.StreamConfig{{
		Name:              StreamName,
		Description:       "a2abus: A2A messages waiting for their consumer group",
		Subjects:          []string{SubjectPrefix + ".>"},
		Retention:         jetstream.WorkQueuePolicy,
		Discard:           jetstream.DiscardNew,
		Storage:           c.Storage,
		Replicas:          c.Replicas,
		Duplicates:        c.Duplicates,
		MaxMsgSize:        c.MaxMsgSize,
		MaxBytes:          c.MaxBytes,
		MaxAge:            c.MaxAge,
		MaxMsgs:           -1,
		MaxConsumers:      -1,
		MaxMsgsPerSubject: -1,
	}, {
		Name:              DeadLetterStreamName,
		Description:       "a2abus: messages that could not be handled, with the reason",
		Subjects:          []string{DeadLetterSubjectPrefix + ".>"},
		Retention:         jetstream.LimitsPolicy,
		Discard:           jetstream.DiscardNew,
		Storage:           c.Storage,
		Replicas:          c.Replicas,
		Duplicates:        c.Duplicates,
		MaxMsgSize:        c.MaxMsgSize,
		MaxBytes:          c.DeadLetterMaxBytes,
		MaxMsgs:           -1,
		MaxConsumers:      -1,
		MaxMsgsPerSubject: -1,
		AllowDirect:       true,
	}}
}

// EnsureStreams creates the A2A stream and the dead-letter stream, or
// checks existing ones. Settings JetStream cannot change or that would
// change the bus's semantics (subjects, retention, storage, discard policy)
// give an error wrapping ErrStreamConflict and leave the stream as it is.
// Limits (size, age, duplicate window, replicas) of an existing stream are
// updated only when cfg.UpdateLimits is set. Calling it again with the same
// cfg changes nothing.
func EnsureStreams(ctx context.Context, js jetstream.JetStream, cfg StreamConfig) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	for _, want := range cfg.streams() {
		if err := ensureStreamRetrying(ctx, js, want, cfg.UpdateLimits); err != nil {
			return err
		}
	}
	return nil
}

// streamAttempt bounds one try of EnsureStreams at a stream: a JetStream
// API request that a cluster electing its meta leader drops gets no answer
// at all, and would otherwise hold the caller to its whole deadline.
const streamAttempt = 10 * time.Second

// ensureStreamRetrying runs ensureStream until it succeeds, fails for a
// reason a retry cannot change (a conflict, a refusal), or ctx ends.
func ensureStreamRetrying(ctx context.Context, js jetstream.JetStream, want jetstream.StreamConfig, update bool) error {
	for {
		actx, cancel := context.WithTimeout(ctx, streamAttempt)
		err := ensureStream(actx, js, want, update)
		cancel()
		if err == nil || ctx.Err() != nil || !transient(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// transient reports whether err may pass by itself: an unanswered request,
// no JetStream responder yet, or a cluster still electing or placing.
func transient(err error) bool { return kvcas.Transient(err) }

func ensureStream(ctx context.Context, js jetstream.JetStream, want jetstream.StreamConfig, update bool) error {
	s, err := js.Stream(ctx, want.Name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		_, err = js.CreateStream(ctx, want)
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			// Another process created it first; check its settings.
			return ensureStream(ctx, js, want, update)
		}
		if err != nil {
			return fmt.Errorf("agentbus: create stream %s: %w", want.Name, err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("agentbus: look up stream %s: %w", want.Name, err)
	}
	have := s.CachedInfo().Config
	if conflicts := streamConflicts(have, want); len(conflicts) > 0 {
		return fmt.Errorf("%w: stream %s has %s", ErrStreamConflict, want.Name, strings.Join(conflicts, "; "))
	}
	if !update || sameLimits(have, want) {
		return nil
	}
	// Keep what the operator set that we do not manage (placement, mirrors,
	// metadata); change only our limits.
	upd := have
	upd.Description = want.Description
	upd.Replicas = want.Replicas
	upd.Duplicates = want.Duplicates
	upd.MaxMsgSize = want.MaxMsgSize
	upd.MaxBytes = want.MaxBytes
	upd.MaxAge = want.MaxAge
	upd.AllowDirect = want.AllowDirect
	if _, err := js.UpdateStream(ctx, upd); err != nil {
		return fmt.Errorf("agentbus: update stream %s: %w", want.Name, err)
	}
	return nil
}

// streamConflicts lists the settings of have that EnsureStreams will not
// change to want's.
func streamConflicts(have, want jetstream.StreamConfig) []string {
	var c []string
	if !slices.Equal(have.Subjects, want.Subjects) {
		c = append(c, fmt.Sprintf("subjects %v, want %v", have.Subjects, want.Subjects))
	}
	if have.Retention != want.Retention {
		c = append(c, fmt.Sprintf("retention %s, want %s", have.Retention, want.Retention))
	}
	if have.Storage != want.Storage {
		c = append(c, fmt.Sprintf("storage %s, want %s", have.Storage, want.Storage))
	}
	if have.Discard != want.Discard {
		c = append(c, fmt.Sprintf("discard policy %s, want %s", have.Discard, want.Discard))
	}
	return c
}

func sameLimits(have, want jetstream.StreamConfig) bool {
	return have.Description == want.Description &&
		have.Replicas == want.Replicas &&
		have.Duplicates == want.Duplicates &&
		have.MaxMsgSize == want.MaxMsgSize &&
		have.MaxBytes == want.MaxBytes &&
		have.MaxAge == want.MaxAge &&
		have.AllowDirect == want.AllowDirect
}
