// Package scaler decides how many consumers the bus should run: it reads
// signals (JetStream backlog, arrival and drain rates, consumer CPU),
// forecasts the arrival rate with Holt's double exponential smoothing, and
// applies a scaling policy. It is pure logic, driven by the times it is
// given: nothing in it reads the wall clock or talks to a server, so it is
// tested, and compared against a KEDA/HPA-style baseline, in a simulator.
//
// The policy scales up when CPU is above 70%, the waiting backlog above 1000
// messages or the load forecast five minutes ahead more than 50% above what
// the pool carries at its 60% CPU target (the forecast counts only when its
// trend is confident). A step goes straight to the size the expected load
// needs, plus what drains the backlog, as the HPA's ceil(current × metric /
// target) does. It scales down only when CPU, backlog and forecast all
// agree, no lower than the largest size recommended in the stabilization
// window, so noise does not make it flap. Every Decision says why, in a
// sentence (Reason) and in one word from a fixed set (Trigger: cpu,
// backlog, forecast, drained, low-load, bounds, no-consumers, none), which
// can label a metric.
//
// A Sampler reads the signals from a BacklogSource and a ConsumerSource. A
// BacklogSource that is also a StreamSource counts the messages finished
// in the stream's own units, and the Sampler takes the handled rate from
// it: a2abus stores batches of A2A messages, and arrivals in batches must
// not be set against a capacity learned in messages.
//
// Example:
//
//	p, err := scaler.New(scaler.DefaultConfig())
//	if err != nil { ... }
//	sampler := scaler.NewSampler(backlogSource, consumerSource, time.Now)
//	for range ticker.C {
//		snap, err := sampler.Sample(ctx)
//		if err != nil { ... }
//		d := p.Decide(snap)
//		log.Print(d.Reason) // "backlog 5400 > 1000: 3 → 6 consumers"
//		if d.To != d.From { apply(d.To) }
//	}
//
// Two choices differ from the first design. The backlog thresholds look at
// the messages waiting (NumPending), not those in flight (NumAckPending):
// in-flight messages grow with load and handler time, and more consumers
// would not finish them sooner, so counting them made a pool of slow
// handlers scale up forever. And "predicted growth" is the forecast load
// against the pool's capacity at the target CPU, not against today's load,
// so that a flat load on an oversized pool reads as negative growth and the
// pool can shrink; the design's -20% scale-down rule would otherwise never
// fire on flat load.
//
// Simulate replays a Trace (built in, generated from a TraceSpec, or read by
// ParseTrace from "seconds,arrivals_per_second" CSV) against a modelled
// consumer pool, and Compare runs the Policy and the KEDA baseline side by
// side: same pool, same start, same decision interval (15 s, the HPA's
// sync period), same bounds. The baseline is KEDA's nats-jetstream scaler
// (lag = NumPending + NumAckPending) under the HPA's defaults: 10%
// tolerance, a 300 s scale-down stabilization window, scale-up limited to
// doubling or +4 per period. Its lagThreshold is set so that it aims at the
// same CPU as the Policy (see KEDAConfig.LagThreshold): the comparison is of
// how the two move, not of where they settle. backlog_seconds counts the
// messages waiting, since the in-flight part is the same under any policy.
//
// Concurrency: Policy, KEDA and Sampler are safe for concurrent use (a
// Policy should still see snapshots in time order); a Forecaster is not.
// All functions are safe to call concurrently.
package scaler
