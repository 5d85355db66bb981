// Package batcher collects items per destination into batches and hands
// each batch to a flush function, with bounded memory and no loss.
//
// It knows nothing of NATS or the codec: the bus plugs in a FlushFunc that
// encodes a batch into one frame and publishes it.
//
//	b, err := batcher.New(func(ctx context.Context, dest string, items []*codec.Envelope) error {
//		return publish(ctx, dest, items) // retries until ctx ends
//	}, batcher.WithMaxBatchItems(500))
//	if err != nil {
//		return err
//	}
//	defer b.Close(context.Background())
//	t, err := b.Add(ctx, "a2a.in.g7.alice", env, size)
//	if err != nil {
//		return err // ErrBackpressure: the buffer stayed full until ctx ended
//	}
//	return t.Wait(ctx) // nil once the batch holding env is stored
//
// Batching is adaptive. A lone item to an idle destination (one with no
// batch in flight) is flushed at once, so batching costs no latency at low
// load; items that arrive while a destination's batch is in flight form its
// next batch, which goes out the moment the first completes. A batch is also
// cut when it reaches WithMaxBatchItems items or WithMaxBatchBytes bytes.
// WithLinger makes idle destinations wait a little (at most MaxLinger) for
// bigger batches. Destinations flush in parallel, up to WithMaxInFlight at a
// time, but each has at most one batch in flight, so the items one goroutine
// adds for one destination are delivered in order.
//
// Memory is bounded: when the items or bytes buffered (waiting or in flight)
// would exceed WithMaxBufferedItems or WithMaxBufferedBytes, Add waits for
// space until its context ends, then returns ErrBackpressure. Every item
// accepted is accounted for: its Ticket completes with nil once delivered,
// with the FlushFunc's error, or with ErrClosed if Close's context ends
// first.
//
// A Batcher runs a fixed set of goroutines, stopped by Close: WithMaxInFlight
// flush goroutines, and one short-lived timer callback per lingering
// destination. Add costs one short critical section, no allocation per item
// in steady state (one Ticket per batch) and no channel operation unless it
// has to wait for space.
//
// All exported functions and methods are safe for concurrent use. The
// FlushFunc is called concurrently for different destinations, never for
// the same destination.
package batcher
