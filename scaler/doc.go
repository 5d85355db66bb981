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
// window, so noise does not make it flap. Every Decision says why.
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
// Simulate replays a Trace (built in, generated from a TraceSpec, or read by
// ParseTrace from "seconds,arrivals_per_second" CSV) against a modelled
// consumer pool, and Compare runs the Policy and the KEDA baseline side by
// side.
//
// Concurrency: Policy, KEDA and Sampler are safe for concurrent use (a
// Policy should still see snapshots in time order); a Forecaster is not.
// All functions are safe to call concurrently.
package scaler
