package scaler_test

import (
	"fmt"
	"time"

	"github.com/a2abus/a2abus/scaler"
)

func ExamplePolicy_Decide() {
	cfg := scaler.DefaultConfig()
	p, err := scaler.New(cfg)
	if err != nil {
		panic(err)
	}
	// Three consumers, half busy with 150 msgs/s, and 5400 messages waiting.
	d := p.Decide(scaler.Snapshot{
		Time:        time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC),
		Backlog:     5400,
		ArrivalRate: 150,
		HandledRate: 150,
		CPU:         0.5,
		Consumers:   3,
		Ready:       3,
	})
	fmt.Println(d.Reason)
	// Output: backlog 5400 > 1000: 3 → 5 consumers
}

func ExampleCompare() {
	spec := scaler.TraceSpec{Name: "step", Shape: "step", Seconds: 1800, Base: 300, Peak: 1500, Seed: 1}
	tr, err := spec.Generate()
	if err != nil {
		panic(err)
	}
	res, err := scaler.Compare([]scaler.Trace{tr}, scaler.DefaultConfig(), scaler.DefaultKEDAConfig(), scaler.DefaultModel())
	if err != nil {
		panic(err)
	}
	for _, r := range res {
		fmt.Printf("%-6s backlog·s %7.0f  consumer·s %6.0f  scale events %d\n", r.Policy, r.BacklogSeconds, r.ConsumerSeconds, r.ScaleEvents)
	}
	// Output:
	// a2abus backlog·s 1302000  consumer·s  40140  scale events 5
	// keda   backlog·s 2877000  consumer·s  41550  scale events 6
}
