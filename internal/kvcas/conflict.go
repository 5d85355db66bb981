package kvcas

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// JetStream error codes of a write refused over the key's revision.
//
// 10071 says the key's revision is not the one the write expected: the
// conflict is settled. 10164 comes from replicated streams only, and says
// that another write to the key was still in process when this one came,
// so the server refused it before proposing it, whatever the key's
// revision. That other write may be our own previous one: the stream
// leader answers a write before it clears it from its writes in process,
// so a holder that writes again at once can be refused with 10164 while
// the key is at the revision it holds (back-to-back writes on a cluster
// under -race show it). Taken as a conflict, that would give up a lease
// we hold, or fail a task update for no reason. So 10164 is retried a few
// times at once (RetryBusy); what a caller makes of it if it persists is
// the caller's.
const (
	codeWrongLastSequence      = jetstream.JSErrCodeStreamWrongLastSequence         // 10071
	codeWrongLastSequenceConst = jetstream.JSErrCodeStreamWrongLastSequenceConstant // 10164
)

// Conflict classifies a write the server refused over the key's revision:
// moved when the key's revision is not the one the write expected, busy
// when another write to the key was in process. nats.go wraps both codes
// in ErrKeyExists (Create) or ErrKeyRevisionMismatch (Update, Delete), so
// the code decides.
func Conflict(err error) (moved, busy bool) {
	if err == nil {
		return false, false
	}
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode {
		case codeWrongLastSequence:
			return true, false
		case codeWrongLastSequenceConst:
			return false, true
		}
	}
	return errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch), false
}

// busyTries is how many times RetryBusy makes a write the server refuses
// with 10164, pausing 1, 2, 4 and 8 ms in between: the write in process
// that it waits for is one replication round old at most. unheardTries
// is how many times it makes a write no stream received (its bucket's
// stream has no leader yet, as just after it is created on R3), pausing
// up to unheardPause in between: a few seconds in all, an election's time.
const (
	busyTries    = 5
	unheardTries = 40
	unheardPause = 100 * time.Millisecond
)

// RetryBusy makes the write w, again while the server refuses it with
// 10164 (up to busyTries times) or while no stream received it
// (jetstream.ErrNoStreamResponse, nobody listening: up to unheardTries
// times), or until ctx ends, and returns the last answer. Each try is the
// same write at the same expected revision, and a refused or unheard one
// stored nothing, so a retry can only do what the first try could have
// done.
func RetryBusy(ctx context.Context, w func() (uint64, error)) (uint64, error) {
	pause := time.Millisecond
	busy, unheard := 0, 0
	for {
		rev, err := w()
		_, refused := Conflict(err)
		switch {
		case refused:
			busy++
			if busy == busyTries {
				return rev, err
			}
		case errors.Is(err, jetstream.ErrNoStreamResponse):
			unheard++
			if unheard == unheardTries {
				return rev, err
			}
		default:
			return rev, err
		}
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return rev, err
		case <-t.C:
		}
		pause = min(2*pause, unheardPause)
	}
}
