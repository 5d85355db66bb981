package agentbus

import (
	"context"
	"sync"
	"time"

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
	ackWait time.Duration
	cancel  context.CancelCauseFunc
	stop    chan struct{}
	done    chan struct{}

	mu       sync.Mutex
	deadline time.Time
	lost     bool
}

// progressAck is the body of a progress ack (JetStream's AckProgress).
var progressAck = []byte("+WPI")

// hold starts keeping msg, whose handlers run under the context cancel
// ends.
func (s *server) hold(msg jetstream.Msg, cancel context.CancelCauseFunc) *hold {
	h := &hold{
		msg: msg, ackWait: s.cfg.ackWait, cancel: cancel,
		stop: make(chan struct{}), done: make(chan struct{}),
		deadline: time.Now().Add(s.cfg.ackWait - s.cfg.ackWait/4),
	}
	go h.keep(s)
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
// given up.
func (h *hold) release() {
	close(h.stop)
	<-h.done
}

// keep renews the hold every quarter of the ack wait until released, and
// loses it when a renewal cannot be confirmed before the deadline.
func (h *hold) keep(s *server) {
	defer close(h.done)
	nc := s.bus.conns[0]
	tick := time.NewTicker(h.ackWait / 4)
	defer tick.Stop()
	for {
		h.mu.Lock()
		deadline := h.deadline
		h.mu.Unlock()
		expire := time.NewTimer(time.Until(deadline))
		select {
		case <-h.stop:
			expire.Stop()
			return
		case <-expire.C:
			h.mu.Lock()
			if !time.Now().Before(h.deadline) && !h.lost {
				h.lose()
			}
			lost := h.lost
			h.mu.Unlock()
			if lost {
				<-h.stop
				return
			}
			continue
		case <-tick.C:
			expire.Stop()
		}
		h.mu.Lock()
		lost := h.lost // abandoned: renew no more
		h.mu.Unlock()
		if lost {
			<-h.stop
			return
		}
		sent := time.Now()
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		_, err := nc.RequestWithContext(ctx, h.msg.Reply(), progressAck)
		cancel()
		if err != nil {
			continue // the deadline decides
		}
		h.mu.Lock()
		if !h.lost {
			h.deadline = sent.Add(h.ackWait - h.ackWait/8)
		}
		h.mu.Unlock()
	}
}
