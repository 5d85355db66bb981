package batcher_test

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/a2abus/a2abus/batcher"
)

const (
	benchDests   = 64
	benchItem    = 256  // bytes per item
	benchPerGoro = 1024 // items each goroutine adds per benchmark op
)

var benchNames = func() []string {
	names := make([]string, benchDests)
	for i := range names {
		names[i] = fmt.Sprintf("a2a.in.g%d.agent-%d", i%7, i)
	}
	return names
}()

// anchorNsPerItem holds the anchor's figure per goroutine count, for the
// batcher sub-benchmark that runs right after it to print the ratio.
var anchorNsPerItem sync.Map

// BenchmarkAdd measures Add throughput with a no-op FlushFunc, for 1 and 4
// goroutines each adding 256-byte items round-robin to 64 destinations,
// beside its anchor: the same items appended to per-destination slices
// under one mutex, the least any batcher must do. The batcher's ratio to it
// is reported as x-anchor. One op is 1024 items per
// goroutine; items/s, ns/item and allocs/item are per item.
//
//	go test -run '^$' -bench BenchmarkAdd -benchmem ./batcher/
func BenchmarkAdd(b *testing.B) {
	payload := make([]byte, benchItem)
	for _, goroutines := range []int{1, 4} {
		b.Run(fmt.Sprintf("goroutines=%d/anchor", goroutines), func(b *testing.B) {
			var (
				mu     sync.Mutex
				slices [benchDests][][]byte
			)
			add := func(d int) {
				mu.Lock()
				s := append(slices[d], payload)
				if len(s) == batcher.DefaultMaxBatchItems {
					s = s[:0]
				}
				slices[d] = s
				mu.Unlock()
			}
			ns := runAddBench(b, goroutines, add)
			anchorNsPerItem.Store(goroutines, ns)
		})
		// The same with the destination looked up by name, as any batcher
		// keyed by destination must: not the floor, but it shows how much
		// of the gap the lookup is.
		b.Run(fmt.Sprintf("goroutines=%d/anchor+map", goroutines), func(b *testing.B) {
			var (
				mu     sync.Mutex
				slices = map[string]*[][]byte{}
			)
			for _, name := range benchNames {
				slices[name] = new([][]byte)
			}
			add := func(d int) {
				mu.Lock()
				p := slices[benchNames[d]]
				*p = append(*p, payload)
				if len(*p) == batcher.DefaultMaxBatchItems {
					*p = (*p)[:0]
				}
				mu.Unlock()
			}
			runAddBench(b, goroutines, add)
		})
		b.Run(fmt.Sprintf("goroutines=%d/batcher", goroutines), func(b *testing.B) {
			bt, err := batcher.New(func(context.Context, string, [][]byte) error { return nil })
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			add := func(d int) {
				if _, err := bt.Add(ctx, benchNames[d], payload, benchItem); err != nil {
					b.Error(err)
				}
			}
			ns := runAddBench(b, goroutines, add)
			if err := bt.Close(ctx); err != nil {
				b.Fatal(err)
			}
			s := bt.Stats()
			if s.BatchesFlushed > 0 {
				b.ReportMetric(float64(s.ItemsFlushed)/float64(s.BatchesFlushed), "items/batch")
			}
			if anchor, ok := anchorNsPerItem.Load(goroutines); ok {
				ratio := ns / anchor.(float64)
				b.ReportMetric(ratio, "x-anchor")
				b.Logf("goroutines=%d: batcher %.1f ns/item, anchor %.1f ns/item: %.2fx", goroutines, ns, anchor.(float64), ratio)
			}
		})
	}
}

// runAddBench runs add for benchPerGoro items on each of goroutines
// goroutines per op, reports the per-item figures and returns ns/item.
func runAddBench(b *testing.B, goroutines int, add func(dest int)) float64 {
	b.ReportAllocs()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	b.ResetTimer()
	for b.Loop() {
		if goroutines == 1 {
			for i := range benchPerGoro {
				add(i % benchDests)
			}
			continue
		}
		var wg sync.WaitGroup
		for g := range goroutines {
			wg.Go(func() {
				for i := range benchPerGoro {
					add((i + g*benchDests/goroutines) % benchDests)
				}
			})
		}
		wg.Wait()
	}
	b.StopTimer()
	runtime.ReadMemStats(&after)
	items := float64(b.N * goroutines * benchPerGoro)
	ns := float64(b.Elapsed().Nanoseconds()) / items
	b.ReportMetric(ns, "ns/item")
	b.ReportMetric(1e9/ns, "items/s")
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/items, "allocs/item")
	return ns
}

// BenchmarkAddSlowFlush is BenchmarkAdd's 4-goroutine case with a FlushFunc
// that takes 100µs, like a publish waiting for its acknowledgement: batches
// grow to absorb the latency (see items/batch), and Add blocks once the
// buffer is full, so items/s is what 8 flushes in flight can deliver.
func BenchmarkAddSlowFlush(b *testing.B) {
	payload := make([]byte, benchItem)
	bt, err := batcher.New(func(context.Context, string, [][]byte) error {
		time.Sleep(100 * time.Microsecond)
		return nil
	}, batcher.WithMaxInFlight(8), batcher.WithMaxBufferedItems(16_384))
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	runAddBench(b, 4, func(d int) {
		if _, err := bt.Add(ctx, benchNames[d], payload, benchItem); err != nil {
			b.Error(err)
		}
	})
	if err := bt.Close(ctx); err != nil {
		b.Fatal(err)
	}
	if s := bt.Stats(); s.BatchesFlushed > 0 {
		b.ReportMetric(float64(s.ItemsFlushed)/float64(s.BatchesFlushed), "items/batch")
	}
}
