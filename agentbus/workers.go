package agentbus

import (
	"context"
	"sync"
	"time"
)

// workers are a member's handler slots: a handler runs only in a free
// slot, so at most ServeWorkers run at once. One watchdog goroutine per
// Serve call scans the busy slots instead of a timer per handler call:
// it cancels a call past the handler timeout (ErrHandlerTimeout), and a
// call still running a grace after that, one that ignores its canceled
// context, it reports (a2abus_receive_hung_handlers, an error log) and
// stops holding anything: the slot is replaced by a new one, and the
// stored batch it handles is given up (hold.abandon) to its next delivery
// rather than kept alive for as long as the handler hangs.
type workers struct {
	free chan *worker // idle slots; its capacity is the slot count

	mu  sync.Mutex
	all []*worker // every slot, the watchdog's to scan
}

// worker is one handler slot.
type worker struct {
	mu       sync.Mutex
	start    time.Time // of the call running; zero while idle
	call     *callCtx  // the context the call runs under
	hold     *hold     // of the call's stored batch; nil for a direct request
	agent    string
	envelope string
	timedOut bool // its context was canceled at the timeout
	hung     bool // replaced by a new slot: it does not go back
}

func newWorkers(n int) *workers {
	ws := &workers{free: make(chan *worker, n), all: make([]*worker, n)}
	for i := range ws.all {
		ws.all[i] = &worker{}
		ws.free <- ws.all[i]
	}
	return ws
}

// get takes a free slot, waiting until ctx ends.
func (ws *workers) get(ctx context.Context) (*worker, error) {
	select {
	case w := <-ws.free:
		return w, nil
	default:
	}
	select {
	case w := <-ws.free:
		return w, nil
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
}

// begin marks the slot busy with a call and returns its start.
func (w *worker) begin(call *callCtx, h *hold, agent, envelope string) time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.start, w.call, w.hold, w.agent, w.envelope = time.Now(), call, h, agent, envelope
	w.timedOut = false
	return w.start
}

// put gives a slot back once its call returned; a slot replaced as hung
// is dropped instead.
func (ws *workers) put(w *worker, b *Bus) {
	w.mu.Lock()
	hung := w.hung
	w.start, w.call, w.hold = time.Time{}, nil, nil
	w.mu.Unlock()
	if hung {
		b.recv.hung.Add(-1) // it returned at last
		return
	}
	ws.free <- w // never blocks: the channel holds every slot
}

// callCtx is the context handler calls run under: one per run of a key's
// envelopes in a batch (or per direct request), not one per call, made
// anew only after the watchdog canceled it at a call's timeout.
type callCtx struct {
	parent context.Context
	ctx    context.Context
	cancel context.CancelCauseFunc
	// subject and delivered are the envelopes' subject and their batch's
	// delivery count (0 for a direct request), for their spans.
	subject   string
	delivered int
}

func newCallCtx(parent context.Context) *callCtx {
	c := &callCtx{parent: parent}
	c.ctx, c.cancel = context.WithCancelCause(parent)
	return c
}

// next returns the context for the next call: the same one, unless the
// watchdog canceled it (a timed-out call) while the parent lives on.
func (c *callCtx) next() context.Context {
	if c.ctx.Err() != nil && c.parent.Err() == nil {
		c.cancel(nil)
		c.ctx, c.cancel = context.WithCancelCause(c.parent)
	}
	return c.ctx
}

func (c *callCtx) end() { c.cancel(nil) }

// watch enforces the handler timeout until stop is closed.
func (ws *workers) watch(s *server, stop <-chan struct{}) {
	timeout := s.cfg.handlerTimeout
	grace := hungGrace(timeout)
	tick := time.NewTicker(min(timeout/4, time.Second))
	defer tick.Stop()
	var busy []*worker
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		ws.mu.Lock()
		busy = append(busy[:0], ws.all...)
		ws.mu.Unlock()
		now := time.Now()
		for _, w := range busy {
			w.mu.Lock()
			running := !w.start.IsZero()
			elapsed := now.Sub(w.start)
			if running && elapsed >= timeout && !w.timedOut {
				w.timedOut = true
				w.call.cancel(ErrHandlerTimeout)
			}
			hang := running && elapsed >= timeout+grace && !w.hung
			if hang {
				w.hung = true
			}
			h, agent, envelope := w.hold, w.agent, w.envelope
			w.mu.Unlock()
			if !hang {
				continue
			}
			s.bus.recv.hung.Add(1)
			s.bus.cfg.log.Error("handler ignores its canceled context: freeing its worker and giving its batch up",
				"agent", agent, "envelope", envelope, "running", elapsed.Round(time.Second), "timeout", timeout)
			if h != nil {
				h.abandon()
			}
			fresh := &worker{} // the replacement: the hung one never goes back
			ws.mu.Lock()
			for i := range ws.all {
				if ws.all[i] == w {
					ws.all[i] = fresh
				}
			}
			ws.mu.Unlock()
			ws.free <- fresh
		}
	}
}

// hungGrace is how long past its timeout a handler may take to return
// before it counts as hung.
func hungGrace(timeout time.Duration) time.Duration { return min(timeout, 30*time.Second) }
