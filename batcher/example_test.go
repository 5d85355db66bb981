package batcher_test

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/a2abus/a2abus/batcher"
)

func Example() {
	var (
		mu        sync.Mutex
		delivered = map[string][]string{}
	)
	// The FlushFunc: the bus encodes the batch into one frame and publishes
	// it; here we only record it.
	flush := func(ctx context.Context, dest string, items []string) error {
		mu.Lock()
		defer mu.Unlock()
		delivered[dest] = append(delivered[dest], items...)
		return nil
	}
	b, err := batcher.New(flush, batcher.WithMaxBatchItems(100))
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx := context.Background()
	var tickets []*batcher.Ticket
	for _, m := range []struct{ to, text string }{
		{"alice", "hello"}, {"bob", "hi"}, {"alice", "how are you?"},
	} {
		t, err := b.Add(ctx, m.to, m.text, len(m.text))
		if err != nil {
			fmt.Println(err)
			return
		}
		tickets = append(tickets, t)
	}
	for _, t := range tickets {
		if err := t.Wait(ctx); err != nil { // nil once the item's batch is delivered
			fmt.Println(err)
		}
	}
	if err := b.Close(ctx); err != nil {
		fmt.Println(err)
	}
	fmt.Println("alice:", strings.Join(delivered["alice"], " | "))
	fmt.Println("bob:", strings.Join(delivered["bob"], " | "))
	fmt.Println("items:", b.Stats().ItemsFlushed)
	// Output:
	// alice: hello | how are you?
	// bob: hi
	// items: 3
}

func ExampleBatcher_Add_closed() {
	b, _ := batcher.New(func(context.Context, string, []int) error { return nil })
	_ = b.Close(context.Background())
	_, err := b.Add(context.Background(), "alice", 1, 8)
	fmt.Println(err)
	// Output:
	// batcher: closed
}
