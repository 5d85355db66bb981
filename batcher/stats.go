package batcher

// Stats is a snapshot of a Batcher's gauges and counters, for metrics. All
// fields are read at one instant, so at any snapshot
//
//	ItemsAdded == ItemsFlushed + ItemsAborted + BufferedItems
//
// and ItemsFlushed / BatchesFlushed is the mean batch size.
type Stats struct {
	// Gauges.

	// Destinations is the number of destinations the Batcher holds state
	// for: those with items buffered or in flight, plus up to 4096 idle
	// ones kept for reuse.
	Destinations int
	// BufferedItems and BufferedBytes count the items accepted and not yet
	// completed, waiting or in flight.
	BufferedItems int
	BufferedBytes int64
	// InFlightBatches is the number of FlushFunc calls running.
	InFlightBatches int
	// BlockedAdds is the number of Add calls waiting for buffer space.
	BlockedAdds int

	// Counters, since New.

	// ItemsAdded counts the items Add accepted.
	ItemsAdded uint64
	// BytesAdded sums their sizes.
	BytesAdded uint64
	// BatchesFlushed counts the FlushFunc calls that returned, with or
	// without an error.
	BatchesFlushed uint64
	// ItemsFlushed sums the sizes (in items) of those batches.
	ItemsFlushed uint64
	// BytesFlushed sums their sizes in bytes.
	BytesFlushed uint64
	// FlushErrors counts the FlushFunc calls that returned an error.
	FlushErrors uint64
	// ItemsFailed counts the items in the batches of FlushErrors.
	ItemsFailed uint64
	// ItemsAborted counts the items Close failed with ErrClosed, without a
	// FlushFunc call, because its context ended first.
	ItemsAborted uint64
	// BackpressureWaits counts the Add calls that had to wait for buffer
	// space.
	BackpressureWaits uint64
	// BackpressureErrors counts the Add calls that gave up waiting and
	// returned ErrBackpressure.
	BackpressureErrors uint64
}
