package batcher_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/a2abus/a2abus/batcher"
)

// recorder is a FlushFunc that records the batches it gets, checks that a
// destination never has two in flight, and can hold flushes until released.
type recorder[T any] struct {
	mu        sync.Mutex
	batches   map[string][][]T
	order     []string // destination of each batch, in call order
	perDest   map[string]int
	inFlight  int
	maxFlight int
	overlap   bool // a destination had two batches in flight

	// gate, if set, is called before a batch is recorded; it may block.
	gate func(ctx context.Context, dest string, items []T) error
}

func newRecorder[T any]() *recorder[T] {
	return &recorder[T]{batches: map[string][][]T{}, perDest: map[string]int{}}
}

func (r *recorder[T]) flush(ctx context.Context, dest string, items []T) error {
	r.mu.Lock()
	r.perDest[dest]++
	if r.perDest[dest] > 1 {
		r.overlap = true
	}
	r.inFlight++
	r.maxFlight = max(r.maxFlight, r.inFlight)
	gate := r.gate
	r.mu.Unlock()

	var err error
	if gate != nil {
		err = gate(ctx, dest, items)
	}

	r.mu.Lock()
	r.batches[dest] = append(r.batches[dest], slices.Clone(items))
	r.order = append(r.order, dest)
	r.perDest[dest]--
	r.inFlight--
	r.mu.Unlock()
	return err
}

func (r *recorder[T]) get(dest string) [][]T {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.batches[dest])
}

func (r *recorder[T]) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.order)
}

// holdFirst makes the recorder block its first flush until release is
// closed, and closes started when that flush begins.
func (r *recorder[T]) holdFirst() (started, release chan struct{}) {
	started, release = make(chan struct{}), make(chan struct{})
	var first atomic.Bool
	r.gate = func(context.Context, string, []T) error {
		if first.CompareAndSwap(false, true) {
			close(started)
			<-release
		}
		return nil
	}
	return started, release
}

func mustNew[T any](t *testing.T, flush batcher.FlushFunc[T], opts ...batcher.Option) *batcher.Batcher[T] {
	t.Helper()
	b, err := batcher.New(flush, opts...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return b
}

func mustAdd[T any](t *testing.T, b *batcher.Batcher[T], dest string, item T, size int) *batcher.Ticket {
	t.Helper()
	tk, err := b.Add(context.Background(), dest, item, size)
	if err != nil {
		t.Fatalf("Add(%q, %v): %v", dest, item, err)
	}
	return tk
}

func mustClose[T any](t *testing.T, b *batcher.Batcher[T]) {
	t.Helper()
	if err := b.Close(context.Background()); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

// checkNoLeak fails the test if goroutines started after it was called are
// still running when the test ends. Like goleak, it retries for a while,
// since a goroutine may be between its last statement and its exit.
func checkNoLeak(t *testing.T) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		var now int
		for range 500 {
			if now = runtime.NumGoroutine(); now <= before {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		buf := make([]byte, 1<<20)
		t.Errorf("%d goroutines before, %d after:\n%s", before, now, buf[:runtime.Stack(buf, true)])
	})
}

func TestNewOptions(t *testing.T) {
	noop := func(context.Context, string, []int) error { return nil }
	tests := []struct {
		name    string
		flush   batcher.FlushFunc[int]
		opts    []batcher.Option
		wantErr error
	}{
		{name: "defaults", flush: noop},
		{name: "all set", flush: noop, opts: []batcher.Option{
			batcher.WithMaxBatchItems(10), batcher.WithMaxBatchBytes(1000),
			batcher.WithLinger(batcher.MaxLinger), batcher.WithMaxInFlight(2),
			batcher.WithMaxBufferedItems(100), batcher.WithMaxBufferedBytes(10000),
			batcher.WithFlushTimeout(time.Second),
		}},
		{name: "nil flush", wantErr: batcher.ErrInvalidOption},
		{name: "zero batch items", flush: noop, opts: []batcher.Option{batcher.WithMaxBatchItems(0)}, wantErr: batcher.ErrInvalidOption},
		{name: "zero batch bytes", flush: noop, opts: []batcher.Option{batcher.WithMaxBatchBytes(0)}, wantErr: batcher.ErrInvalidOption},
		{name: "negative linger", flush: noop, opts: []batcher.Option{batcher.WithLinger(-1)}, wantErr: batcher.ErrInvalidOption},
		{name: "linger over 10ms", flush: noop, opts: []batcher.Option{batcher.WithLinger(batcher.MaxLinger + 1)}, wantErr: batcher.ErrInvalidOption},
		{name: "zero in flight", flush: noop, opts: []batcher.Option{batcher.WithMaxInFlight(0)}, wantErr: batcher.ErrInvalidOption},
		{name: "zero buffered items", flush: noop, opts: []batcher.Option{batcher.WithMaxBufferedItems(0)}, wantErr: batcher.ErrInvalidOption},
		{name: "zero buffered bytes", flush: noop, opts: []batcher.Option{batcher.WithMaxBufferedBytes(0)}, wantErr: batcher.ErrInvalidOption},
		{name: "zero flush timeout", flush: noop, opts: []batcher.Option{batcher.WithFlushTimeout(0)}, wantErr: batcher.ErrInvalidOption},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := batcher.New(tt.flush, tt.opts...)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("New: error %v, want %v", err, tt.wantErr)
			}
			if err == nil {
				mustClose(t, b)
			}
		})
	}
}

type seqItem struct{ g, dest, seq int }

// TestConcurrentAdders has many goroutines add to many destinations and
// checks that every item is flushed exactly once, in order per adder and
// destination, within the batch and concurrency limits.
func TestConcurrentAdders(t *testing.T) {
	const (
		adders = 8
		dests  = 16
		each   = 150 // items per adder and destination
	)
	tests := []struct {
		name        string
		opts        []batcher.Option
		maxItems    int
		maxInFlight int
	}{
		{name: "defaults", maxItems: batcher.DefaultMaxBatchItems, maxInFlight: batcher.DefaultMaxInFlight()},
		{name: "small batches", opts: []batcher.Option{batcher.WithMaxBatchItems(3)}, maxItems: 3, maxInFlight: batcher.DefaultMaxInFlight()},
		{name: "small buffer", opts: []batcher.Option{batcher.WithMaxBufferedItems(10), batcher.WithMaxBatchItems(4)}, maxItems: 4, maxInFlight: batcher.DefaultMaxInFlight()},
		{name: "byte limits", opts: []batcher.Option{batcher.WithMaxBatchBytes(100), batcher.WithMaxBufferedBytes(300)}, maxItems: 10, maxInFlight: batcher.DefaultMaxInFlight()},
		{name: "one in flight", opts: []batcher.Option{batcher.WithMaxInFlight(1), batcher.WithMaxBatchItems(7)}, maxItems: 7, maxInFlight: 1},
		{name: "linger", opts: []batcher.Option{batcher.WithLinger(time.Millisecond), batcher.WithMaxInFlight(3)}, maxItems: batcher.DefaultMaxBatchItems, maxInFlight: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkNoLeak(t)
			rec := newRecorder[seqItem]()
			var yield atomic.Int64
			rec.gate = func(context.Context, string, []seqItem) error {
				if yield.Add(1)%3 == 0 {
					runtime.Gosched() // let batches grow now and then
				}
				return nil
			}
			b := mustNew(t, rec.flush, tt.opts...)

			var (
				wg      sync.WaitGroup
				tmu     sync.Mutex
				tickets = map[*batcher.Ticket]bool{}
			)
			for g := range adders {
				wg.Go(func() {
					mine := map[*batcher.Ticket]bool{}
					for i := range each * dests {
						d := (i + g) % dests
						tk, err := b.Add(context.Background(), fmt.Sprint("dest-", d), seqItem{g, d, i / dests}, 10)
						if err != nil {
							t.Errorf("Add: %v", err)
							return
						}
						mine[tk] = true
					}
					tmu.Lock()
					for tk := range mine {
						tickets[tk] = true
					}
					tmu.Unlock()
				})
			}
			wg.Wait()
			if err := b.Flush(context.Background()); err != nil {
				t.Fatalf("Flush: %v", err)
			}
			for tk := range tickets {
				select {
				case <-tk.Done():
				default:
					t.Fatal("a Ticket is still pending after Flush")
				}
				if err := tk.Err(); err != nil {
					t.Fatalf("Ticket error: %v", err)
				}
			}

			total, batches := 0, 0
			for d := range dests {
				next := make([]int, adders)
				for _, bt := range rec.get(fmt.Sprint("dest-", d)) {
					batches++
					if len(bt) == 0 || len(bt) > tt.maxItems {
						t.Errorf("dest %d: batch of %d items, want 1 to %d", d, len(bt), tt.maxItems)
					}
					for _, it := range bt {
						total++
						if it.dest != d {
							t.Fatalf("item %+v flushed to dest %d", it, d)
						}
						if it.seq != next[it.g] {
							t.Fatalf("dest %d adder %d: got seq %d, want %d", d, it.g, it.seq, next[it.g])
						}
						next[it.g]++
					}
				}
				for g, n := range next {
					if n != each {
						t.Errorf("dest %d adder %d: %d items flushed, want %d", d, g, n, each)
					}
				}
			}
			if want := adders * dests * each; total != want {
				t.Errorf("flushed %d items, want %d", total, want)
			}
			rec.mu.Lock()
			if rec.overlap {
				t.Error("a destination had two batches in flight")
			}
			if rec.maxFlight > tt.maxInFlight {
				t.Errorf("%d flushes at once, want at most %d", rec.maxFlight, tt.maxInFlight)
			}
			rec.mu.Unlock()

			s := b.Stats()
			want := uint64(adders * dests * each)
			if s.ItemsAdded != want || s.ItemsFlushed != want || s.BytesAdded != 10*want || s.BytesFlushed != 10*want {
				t.Errorf("Stats %+v: want %d items added and flushed", s, want)
			}
			if s.BatchesFlushed != uint64(batches) {
				t.Errorf("Stats.BatchesFlushed = %d, recorded %d", s.BatchesFlushed, batches)
			}
			if s.BufferedItems != 0 || s.BufferedBytes != 0 || s.InFlightBatches != 0 || s.BlockedAdds != 0 {
				t.Errorf("Stats %+v: want nothing buffered after Flush", s)
			}
			if s.FlushErrors != 0 || s.ItemsFailed != 0 || s.ItemsAborted != 0 {
				t.Errorf("Stats %+v: want no failures", s)
			}
			mustClose(t, b)
		})
	}
}

// TestLoneItemFlushesAtOnce checks that, without a linger, an item to an
// idle destination is flushed before the fake clock moves at all; and that
// with a linger, it waits exactly that long.
func TestLoneItemFlushesAtOnce(t *testing.T) {
	for _, linger := range []time.Duration{0, time.Millisecond, batcher.MaxLinger} {
		t.Run(fmt.Sprint("linger=", linger), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				start := time.Now()
				flushed := make(chan time.Duration, 1)
				b := mustNew(t, func(_ context.Context, _ string, items []string) error {
					flushed <- time.Since(start)
					return nil
				}, batcher.WithLinger(linger))
				tk := mustAdd(t, b, "alice", "hello", 5)
				synctest.Wait()
				if linger > 0 {
					select {
					case <-flushed:
						t.Fatal("flushed before the linger")
					default:
					}
				}
				if got := <-flushed; got != linger {
					t.Errorf("flushed after %v, want %v", got, linger)
				}
				if err := tk.Wait(context.Background()); err != nil {
					t.Errorf("Wait: %v", err)
				}
				// Idle again: the next lone item lingers just as long.
				start = time.Now()
				mustAdd(t, b, "alice", "again", 5)
				if got := <-flushed; got != linger {
					t.Errorf("second item flushed after %v, want %v", got, linger)
				}
				mustClose(t, b)
			})
		})
	}
}

// TestLingerCutShort checks that a full batch or a Flush does not wait for
// the linger.
func TestLingerCutShort(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		rec := newRecorder[int]()
		var at []time.Duration
		rec.gate = func(context.Context, string, []int) error {
			at = append(at, time.Since(start)) // flushes of one destination do not overlap
			return nil
		}
		b := mustNew(t, rec.flush, batcher.WithLinger(batcher.MaxLinger), batcher.WithMaxBatchItems(3))
		for i := range 4 {
			mustAdd(t, b, "d", i, 1)
		}
		synctest.Wait()
		if err := b.Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
		if got, want := rec.get("d"), [][]int{{0, 1, 2}, {3}}; !equalBatches(got, want) {
			t.Errorf("batches %v, want %v", got, want)
		}
		if want := []time.Duration{0, 0}; !slices.Equal(at, want) {
			t.Errorf("flushed at %v, want %v", at, want)
		}
		mustClose(t, b)
	})
}

func equalBatches[T comparable](a, b [][]T) bool {
	return slices.EqualFunc(a, b, func(x, y []T) bool { return slices.Equal(x, y) })
}

// TestBatchesFormWhileInFlight holds the first flush and checks how the
// items added meanwhile are cut into the next batches.
func TestBatchesFormWhileInFlight(t *testing.T) {
	tests := []struct {
		name  string
		opts  []batcher.Option
		sizes []int // of the items added while the first one (size 1) is in flight
		want  [][]int
	}{
		{
			name:  "one batch",
			sizes: []int{1, 1, 1, 1, 1},
			want:  [][]int{{0}, {1, 2, 3, 4, 5}},
		},
		{
			name:  "max items",
			opts:  []batcher.Option{batcher.WithMaxBatchItems(3)},
			sizes: []int{1, 1, 1, 1, 1, 1, 1, 1, 1},
			want:  [][]int{{0}, {1, 2, 3}, {4, 5, 6}, {7, 8, 9}},
		},
		{
			name:  "max bytes",
			opts:  []batcher.Option{batcher.WithMaxBatchBytes(10)},
			sizes: []int{4, 4, 4, 6, 10, 1},
			want:  [][]int{{0}, {1, 2}, {3, 4}, {5}, {6}},
		},
		{
			name:  "oversized item goes alone",
			opts:  []batcher.Option{batcher.WithMaxBatchBytes(10)},
			sizes: []int{3, 3, 50, 3, 3},
			want:  [][]int{{0}, {1, 2}, {3}, {4, 5}},
		},
		{
			name:  "oversized item first",
			opts:  []batcher.Option{batcher.WithMaxBatchBytes(10)},
			sizes: []int{11, 1},
			want:  [][]int{{0}, {1}, {2}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkNoLeak(t)
			rec := newRecorder[int]()
			started, release := rec.holdFirst()
			b := mustNew(t, rec.flush, tt.opts...)
			first := mustAdd(t, b, "d", 0, 1)
			<-started // the lone item went out without waiting for more
			tickets := []*batcher.Ticket{first}
			for i, size := range tt.sizes {
				tickets = append(tickets, mustAdd(t, b, "d", i+1, size))
			}
			close(release)
			if err := b.Flush(context.Background()); err != nil {
				t.Fatal(err)
			}
			got := rec.get("d")
			if !equalBatches(got, tt.want) {
				t.Fatalf("batches %v, want %v", got, tt.want)
			}
			// Items share a Ticket exactly when they share a batch.
			for _, bt := range tt.want {
				for _, i := range bt {
					if tickets[i] != tickets[bt[0]] {
						t.Errorf("items %d and %d share a batch but not a Ticket", bt[0], i)
					}
				}
			}
			for i := 1; i < len(tt.want); i++ {
				if tickets[tt.want[i][0]] == tickets[tt.want[i-1][0]] {
					t.Errorf("batches %d and %d share a Ticket", i-1, i)
				}
			}
			if s := b.Stats(); s.BatchesFlushed != uint64(len(tt.want)) || s.ItemsFlushed != uint64(len(tickets)) {
				t.Errorf("Stats %+v, want %d batches of %d items", s, len(tt.want), len(tickets))
			}
			mustClose(t, b)
		})
	}
}

// TestParallelDestinations checks that a stuck destination does not hold
// up the others.
func TestParallelDestinations(t *testing.T) {
	rec := newRecorder[int]()
	stuck := make(chan struct{})
	rec.gate = func(_ context.Context, dest string, _ []int) error {
		if dest == "slow" {
			<-stuck
		}
		return nil
	}
	b := mustNew(t, rec.flush, batcher.WithMaxInFlight(2))
	mustAdd(t, b, "slow", 0, 1)
	for i := range 10 {
		if err := mustAdd(t, b, fmt.Sprint("fast", i%3), i, 1).Wait(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	close(stuck)
	mustClose(t, b)
	if rec.count() < 4 {
		t.Errorf("%d batches, want at least 4", rec.count())
	}
}

func TestBackpressure(t *testing.T) {
	tests := []struct {
		name string
		opts []batcher.Option
		size int
	}{
		{name: "items", opts: []batcher.Option{batcher.WithMaxBufferedItems(2)}, size: 1},
		{name: "bytes", opts: []batcher.Option{batcher.WithMaxBufferedBytes(100)}, size: 50},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				rec := newRecorder[int]()
				started, release := rec.holdFirst()
				b := mustNew(t, rec.flush, tt.opts...)
				mustAdd(t, b, "d", 0, tt.size)
				<-started
				mustAdd(t, b, "d", 1, tt.size) // the buffer is full now

				// An Add whose context ends while it waits.
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				defer cancel()
				start := time.Now()
				_, err := b.Add(ctx, "d", 2, tt.size)
				if !errors.Is(err, batcher.ErrBackpressure) || !errors.Is(err, context.DeadlineExceeded) {
					t.Fatalf("Add: %v, want ErrBackpressure and DeadlineExceeded", err)
				}
				if waited := time.Since(start); waited != time.Second {
					t.Errorf("Add waited %v, want its context's 1s", waited)
				}
				// One whose context has already ended does not wait.
				_, err = b.Add(ctx, "d", 2, tt.size)
				if !errors.Is(err, batcher.ErrBackpressure) || !errors.Is(err, context.DeadlineExceeded) {
					t.Fatalf("Add: %v, want ErrBackpressure and DeadlineExceeded", err)
				}
				cctx, ccancel := context.WithCancel(context.Background())
				ccancel()
				if _, err := b.Add(cctx, "d", 2, tt.size); !errors.Is(err, batcher.ErrBackpressure) || !errors.Is(err, context.Canceled) {
					t.Fatalf("Add: %v, want ErrBackpressure and Canceled", err)
				}

				// An Add that waits until the flush frees space.
				added := make(chan error)
				go func() {
					_, err := b.Add(context.Background(), "e", 3, tt.size)
					added <- err
				}()
				synctest.Wait()
				if s := b.Stats(); s.BlockedAdds != 1 || s.BufferedItems != 2 {
					t.Errorf("Stats %+v, want 1 blocked Add and 2 items buffered", s)
				}
				close(release)
				if err := <-added; err != nil {
					t.Fatalf("blocked Add: %v", err)
				}
				if err := b.Flush(context.Background()); err != nil {
					t.Fatal(err)
				}
				s := b.Stats()
				if s.BackpressureWaits != 2 || s.BackpressureErrors != 3 || s.ItemsAdded != 3 || s.BlockedAdds != 0 {
					t.Errorf("Stats %+v, want 2 waits, 3 errors, 3 items", s)
				}
				mustClose(t, b)
				if got := append(rec.get("d"), rec.get("e")...); !equalBatches(got, [][]int{{0}, {1}, {3}}) {
					t.Errorf("batches %v", got)
				}
			})
		})
	}
}

// TestBackpressureOrder checks that waiting Adds get space first come first
// served, and that an item bigger than the whole buffer still gets in.
func TestBackpressureOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder[int]()
		started, release := rec.holdFirst()
		b := mustNew(t, rec.flush, batcher.WithMaxBufferedBytes(10))
		mustAdd(t, b, "d", 0, 10)
		<-started
		var wg sync.WaitGroup
		for i, size := range []int{100, 1, 1} { // the big one first
			wg.Go(func() { mustAdd(t, b, "d", i+1, size) })
			synctest.Wait()
		}
		close(release)
		wg.Wait()
		if err := b.Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
		// Items 2 and 3 fit only once item 1 has gone, so 1 went first.
		got := slices.Concat(rec.get("d")...)
		if len(got) != 4 || got[1] != 1 || !slices.Contains(got[2:], 2) || !slices.Contains(got[2:], 3) {
			t.Errorf("items flushed in order %v, want 0, 1, then 2 and 3", got)
		}
		mustClose(t, b)
	})
}

// TestBackpressureGiveUp checks that a waiting Add that gives up leaves
// the queue without holding up those behind it.
func TestBackpressureGiveUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder[int]()
		started, release := rec.holdFirst()
		b := mustNew(t, rec.flush, batcher.WithMaxBufferedItems(1))
		mustAdd(t, b, "d", 0, 1)
		<-started
		results := make([]error, 3)
		var wg sync.WaitGroup
		for i := range 3 {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			wg.Go(func() {
				_, results[i] = b.Add(ctx, "d", i+1, 1)
			})
			synctest.Wait()
			if i == 1 {
				cancel() // the middle one gives up
				synctest.Wait()
			}
		}
		if s := b.Stats(); s.BlockedAdds != 2 || s.BackpressureErrors != 1 {
			t.Errorf("Stats %+v, want 2 blocked Adds and 1 error", s)
		}
		close(release)
		wg.Wait()
		if !errors.Is(results[1], batcher.ErrBackpressure) || !errors.Is(results[1], context.Canceled) {
			t.Errorf("middle Add: %v, want ErrBackpressure and Canceled", results[1])
		}
		if results[0] != nil || results[2] != nil {
			t.Errorf("other Adds: %v, %v", results[0], results[2])
		}
		mustClose(t, b)
		if got := slices.Concat(rec.get("d")...); !slices.Equal(got, []int{0, 1, 3}) {
			t.Errorf("items flushed %v, want [0 1 3]", got)
		}
	})
}

func TestFlushError(t *testing.T) {
	checkNoLeak(t)
	boom := errors.New("boom")
	rec := newRecorder[int]()
	started, release := make(chan struct{}), make(chan struct{})
	var calls atomic.Int64
	rec.gate = func(_ context.Context, _ string, items []int) error {
		switch calls.Add(1) {
		case 1:
			close(started)
			<-release
		case 2:
			return boom
		}
		return nil
	}
	b := mustNew(t, rec.flush)
	t0 := mustAdd(t, b, "d", 0, 1)
	<-started
	var failed []*batcher.Ticket
	for i := 1; i <= 3; i++ {
		failed = append(failed, mustAdd(t, b, "d", i, 1))
	}
	close(release)
	if err := b.Flush(context.Background()); !errors.Is(err, boom) {
		t.Fatalf("Flush: %v, want boom", err)
	}
	if err := t0.Err(); err != nil {
		t.Errorf("first batch: %v", err)
	}
	for _, tk := range failed {
		if err := tk.Wait(context.Background()); !errors.Is(err, boom) {
			t.Errorf("Ticket: %v, want boom", err)
		}
	}
	// The destination goes on with its next batch.
	if err := mustAdd(t, b, "d", 4, 1).Wait(context.Background()); err != nil {
		t.Errorf("next batch: %v", err)
	}
	if got := rec.get("d"); !equalBatches(got, [][]int{{0}, {1, 2, 3}, {4}}) {
		t.Errorf("batches %v", got)
	}
	s := b.Stats()
	if s.FlushErrors != 1 || s.ItemsFailed != 3 || s.BatchesFlushed != 3 {
		t.Errorf("Stats %+v, want 1 flush error of 3 items in 3 batches", s)
	}
	mustClose(t, b)
}

// TestFlushContext checks that Flush returns when its context ends and the
// items are delivered later all the same.
func TestFlushContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder[int]()
		started, release := rec.holdFirst()
		b := mustNew(t, rec.flush)
		tk := mustAdd(t, b, "d", 0, 1)
		<-started
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if err := b.Flush(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Flush: %v, want DeadlineExceeded", err)
		}
		if err := tk.Wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Wait: %v, want DeadlineExceeded", err)
		}
		if tk.Err() != nil {
			t.Fatal("Err before Done: want nil")
		}
		close(release)
		if err := tk.Wait(context.Background()); err != nil {
			t.Fatalf("Wait: %v", err)
		}
		mustClose(t, b)
	})
}

func TestClose(t *testing.T) {
	checkNoLeak(t)
	rec := newRecorder[int]()
	b := mustNew(t, rec.flush, batcher.WithLinger(batcher.MaxLinger), batcher.WithMaxBatchItems(7))
	var tickets []*batcher.Ticket
	for i := range 100 {
		tickets = append(tickets, mustAdd(t, b, fmt.Sprint("d", i%5), i, 1))
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if err := b.Close(context.Background()); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
	}
	wg.Wait()
	for i, tk := range tickets {
		select {
		case <-tk.Done():
		default:
			t.Fatalf("item %d: Ticket pending after Close", i)
		}
		if err := tk.Err(); err != nil {
			t.Errorf("item %d: %v", i, err)
		}
	}
	if s := b.Stats(); s.ItemsFlushed != 100 || s.BufferedItems != 0 {
		t.Errorf("Stats %+v, want 100 items flushed", s)
	}
	if _, err := b.Add(context.Background(), "d0", 1, 1); !errors.Is(err, batcher.ErrClosed) {
		t.Errorf("Add after Close: %v, want ErrClosed", err)
	}
	if err := b.Close(context.Background()); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := b.Flush(context.Background()); err != nil {
		t.Errorf("Flush after Close: %v", err)
	}
}

// TestCloseSkipsLinger checks that Close flushes lingering destinations
// without waiting for their linger.
func TestCloseSkipsLinger(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		rec := newRecorder[int]()
		b := mustNew(t, rec.flush, batcher.WithLinger(batcher.MaxLinger))
		tk := mustAdd(t, b, "d", 0, 1)
		mustClose(t, b)
		if err := tk.Err(); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d != 0 {
			t.Errorf("Close took %v, want no wait", d)
		}
	})
}

// TestCloseFailsBlockedAdds checks that Close wakes the Adds waiting for
// buffer space with ErrClosed.
func TestCloseFailsBlockedAdds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder[int]()
		started, release := rec.holdFirst()
		b := mustNew(t, rec.flush, batcher.WithMaxBufferedItems(1))
		mustAdd(t, b, "d", 0, 1)
		<-started
		added := make(chan error)
		go func() {
			_, err := b.Add(context.Background(), "d", 1, 1)
			added <- err
		}()
		synctest.Wait()
		closed := make(chan error)
		go func() { closed <- b.Close(context.Background()) }()
		if err := <-added; !errors.Is(err, batcher.ErrClosed) {
			t.Errorf("blocked Add: %v, want ErrClosed", err)
		}
		close(release)
		if err := <-closed; err != nil {
			t.Errorf("Close: %v", err)
		}
	})
}

// TestCloseGivesUp runs Close with a FlushFunc that never returns on its
// own, and checks that every Ticket completes when Close's context ends.
func TestCloseGivesUp(t *testing.T) {
	for _, obeysCtx := range []bool{false, true} {
		t.Run(fmt.Sprint("obeys ctx=", obeysCtx), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				stuck := make(chan struct{})
				var cancelled atomic.Int64
				b := mustNew(t, func(ctx context.Context, _ string, _ []int) error {
					if obeysCtx {
						<-ctx.Done()
						cancelled.Add(1)
						return ctx.Err()
					}
					<-stuck
					return nil
				}, batcher.WithMaxInFlight(2), batcher.WithMaxBatchItems(2))
				var tickets []*batcher.Ticket
				for i := range 20 {
					tickets = append(tickets, mustAdd(t, b, fmt.Sprint("d", i%4), i, 1))
				}
				synctest.Wait()
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				defer cancel()
				err := b.Close(ctx)
				if !errors.Is(err, batcher.ErrClosed) || !errors.Is(err, context.DeadlineExceeded) {
					t.Fatalf("Close: %v, want ErrClosed and DeadlineExceeded", err)
				}
				for i, tk := range tickets {
					select {
					case <-tk.Done():
					default:
						t.Fatalf("item %d: Ticket pending after Close", i)
					}
					if err := tk.Err(); !errors.Is(err, batcher.ErrClosed) || !errors.Is(err, context.DeadlineExceeded) {
						t.Errorf("item %d: %v, want ErrClosed and DeadlineExceeded", i, err)
					}
				}
				if _, err := b.Add(context.Background(), "d0", 1, 1); !errors.Is(err, batcher.ErrClosed) {
					t.Errorf("Add after Close: %v, want ErrClosed", err)
				}
				close(stuck)
				// A second Close waits for the flush goroutines and
				// reports the same outcome.
				if err2 := b.Close(context.Background()); !errors.Is(err2, batcher.ErrClosed) {
					t.Errorf("second Close: %v, want ErrClosed", err2)
				}
				if obeysCtx && cancelled.Load() != 2 {
					t.Errorf("%d FlushFunc contexts cancelled, want 2", cancelled.Load())
				}
				s := b.Stats()
				if s.ItemsAdded != s.ItemsFlushed+s.ItemsAborted || s.BufferedItems != 0 || s.InFlightBatches != 0 {
					t.Errorf("Stats %+v: items do not add up", s)
				}
				if s.ItemsAdded != 20 || s.ItemsFlushed > 4 || s.BatchesFlushed != 2 {
					t.Errorf("Stats %+v: want 20 items, 2 batches (in flight when Close gave up) of at most 2 flushed", s)
				}
			})
		})
	}
}

func TestFlushTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		b := mustNew(t, func(ctx context.Context, _ string, _ []int) error {
			<-ctx.Done()
			if d := time.Since(start); d != 3*time.Second {
				t.Errorf("FlushFunc context ended after %v, want 3s", d)
			}
			return ctx.Err()
		}, batcher.WithFlushTimeout(3*time.Second))
		if err := mustAdd(t, b, "d", 1, 1).Wait(context.Background()); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Wait: %v, want DeadlineExceeded", err)
		}
		if err := b.Close(context.Background()); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
}

func TestAddInvalidSize(t *testing.T) {
	b := mustNew(t, func(context.Context, string, []int) error { return nil })
	defer mustClose(t, b)
	if _, err := b.Add(context.Background(), "d", 1, -1); !errors.Is(err, batcher.ErrInvalidSize) {
		t.Errorf("Add: %v, want ErrInvalidSize", err)
	}
}

// TestManyDestinations checks that the state kept for idle destinations is
// bounded.
func TestManyDestinations(t *testing.T) {
	b := mustNew(t, func(context.Context, string, []int) error { return nil })
	defer mustClose(t, b)
	for i := range 10_000 {
		if err := mustAdd(t, b, fmt.Sprint("agent-", i), i, 1).Wait(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if s := b.Stats(); s.Destinations > 4096+1 || s.ItemsFlushed != 10_000 {
		t.Errorf("Stats %+v, want at most 4097 destinations", s)
	}
}
