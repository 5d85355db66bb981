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

	mu   sync.Mutex
	busy map[*worker]struct{}
}

// worker is one handler slot.
type worker struct {
	mu       sync.Mutex
	start    time.Time // of the call running; zero while idle
	cancel   context.CancelCauseFunc
	hold     *hold // of the call's stored batch; nil for a direct request
	agent    string
	envelope string
	timedOut bool // its context was canceled at the timeout
	hung     bool // replaced by a new slot: it does not go back
}

func newWorkers(n int) *workers {
	w := &workers{free: make(chan *worker, n), busy: make(map[*worker]struct{}, n)}
	for range n {
		w.free <- &worker{}
	}
	return w
}

// get takes a free slot, waiting until ctx ends.
func (ws *workers) get(ctx context.Context) (*worker, error) {
	select {
	case w := <-ws.free:
		ws.mu.Lock()
		ws.busy[w] = struct{}{}
		ws.mu.Unlock()
		return w, nil
	default:
	}
	select {
	case w := <-ws.free:
		ws.mu.Lock()
		ws.busy[w] = struct{}{}
		ws.mu.Unlock()
		return w, nil
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
}

// begin marks the slot busy with a call and returns its start.
func (w *worker) begin(cancel context.CancelCauseFunc, h *hold, agent, envelope string) time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.start, w.cancel, w.hold, w.agent, w.envelope = time.Now(), cancel, h, agent, envelope
	w.timedOut = false
	return w.start
}

// put gives a slot back once its call returned; a slot replaced as hung
// is dropped instead.
func (ws *workers) put(w *worker, b *Bus) {
	w.mu.Lock()
	hung := w.hung
	w.start, w.cancel, w.hold = time.Time{}, nil, nil
	w.mu.Unlock()
	if hung {
		b.recv.hung.Add(-1) // it returned at last
		return
	}
	ws.mu.Lock()
	delete(ws.busy, w)
	ws.mu.Unlock()
	ws.free <- w // never blocks: the channel holds every slot
}

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
		busy = busy[:0]
		for w := range ws.busy {
			busy = append(busy, w)
		}
		ws.mu.Unlock()
		now := time.Now()
		for _, w := range busy {
			w.mu.Lock()
			running := !w.start.IsZero()
			elapsed := now.Sub(w.start)
			if running && elapsed >= timeout && !w.timedOut {
				w.timedOut = true
				w.cancel(ErrHandlerTimeout)
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
			ws.mu.Lock()
			delete(ws.busy, w)
			ws.mu.Unlock()
			ws.free <- &worker{} // the replacement: the hung one never goes back
		}
	}
}

// hungGrace is how long past its timeout a handler may take to return
// before it counts as hung.
func hungGrace(timeout time.Duration) time.Duration { return min(timeout, 30*time.Second) }
