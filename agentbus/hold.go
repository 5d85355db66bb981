package agentbus

import (
	"context"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// hold is a member's claim on one delivered batch: JetStream redelivers
// the batch (to any member) once its ack wait passes without an ack or a
// progress ack, so the member renews the wait with progress acks that the
// server confirms, every quarter of the ack wait. The hold's deadline is
// when the last confirmed renewal was sent plus the ack wait, less an
// eighth of it (time for the canceled handlers to return): the server counts the wait from when it received that renewal,
// which is later, so the deadline passes before the server may redeliver.
// Until the first confirmation the deadline counts from the delivery's
// arrival, less a quarter of the ack wait for the time it was in transit.
//
// At the deadline the hold is lost: the batch's handler context is
// canceled with ErrFenced, no handler of the batch starts any more, and
// the batch is neither acknowledged nor released, since by then it may be
// another member's delivery (an ack by stream sequence would acknowledge
// that one).
type hold struct {
	msg     jetstream.Msg
	nc      *nats.Conn
	ackWait time.Duration
	cancel  context.CancelCauseFunc
	timer   *time.Timer // the next renewal (or the check of the deadline)

	mu       sync.Mutex
	deadline time.Time
	lost     bool
	released bool
}

// progressAck is the body of a progress ack (JetStream's AckProgress).
var progressAck = []byte("+WPI")

// hold starts keeping msg, whose handlers run under the context cancel
// ends. No goroutine runs until the first renewal is due, a quarter of
// the ack wait on: most batches are done before that.
func (s *server) hold(msg jetstream.Msg, cancel context.CancelCauseFunc) *hold {
	h := &hold{
		msg: msg, nc: s.bus.conns[0], ackWait: s.cfg.ackWait, cancel: cancel,
		deadline: time.Now().Add(s.cfg.ackWait - s.cfg.ackWait/4),
	}
	h.mu.Lock() // renew, which takes it first, sees the timer set
	h.timer = time.AfterFunc(h.ackWait/4, h.renew)
	h.mu.Unlock()
	return h
}

// held reports whether the batch is still ours: the deadline has not
// passed.
func (h *hold) held() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.lost && !time.Now().Before(h.deadline) {
		h.lose()
	}
	return !h.lost
}

// lose marks the hold lost and cancels the batch's handlers; h.mu is held.
func (h *hold) lose() {
	h.lost = true
	h.cancel(ErrFenced)
}

// abandon gives the hold up at once: a handler of the batch hangs, so the
// batch goes to its next delivery rather than being kept alive by it.
func (h *hold) abandon() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.lost {
		h.lost = true
		h.cancel(ErrHandlerHung)
	}
}

// release stops renewing, once the batch is acknowledged, released or
// given up. A renewal in flight then renews no more.
func (h *hold) release() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.released = true
	h.timer.Stop()
}

// renew runs on the hold's timer: it loses the hold once the deadline has
// passed, and otherwise sends a progress ack that the server confirms and,
// once it does, moves the deadline; then it sets the timer for the next
// renewal, or for the deadline if that comes first.
func (h *hold) renew() {
	h.mu.Lock()
	if h.released || h.lost {
		h.mu.Unlock()
		return
	}
	if !time.Now().Before(h.deadline) {
		h.lose()
		h.mu.Unlock()
		return
	}
	deadline := h.deadline
	h.mu.Unlock()

	sent := time.Now()
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	_, err := h.nc.RequestWithContext(ctx, h.msg.Reply(), progressAck)
	cancel()

	h.mu.Lock()
	defer h.mu.Unlock()
	if h.released || h.lost {
		return
	}
	if err == nil {
		h.deadline = sent.Add(h.ackWait - h.ackWait/8)
	}
	h.timer.Reset(max(min(h.ackWait/4-time.Since(sent), time.Until(h.deadline)), 0))
}
