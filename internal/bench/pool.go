package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/a2abus/a2abus/agentbus"
	"github.com/a2abus/a2abus/codec"
	"github.com/nats-io/nats.go/jetstream"
)

// PoolConfig is the pool scenario: one busy agent whose envelopes belong
// to many conversations, served by a pool of 1, 2, 4 ... members, each
// running at most Workers handlers at once, each handler taking Handler.
type PoolConfig struct {
	Conversations int           // default 64
	PerConv       int           // envelopes per conversation and run; default 60
	Handler       time.Duration // default 20 ms
	Workers       int           // handlers at once per member; default 4
	Members       []int         // default 1, 2, 4
	Partitions    int           // the pool's; default agentbus.DefaultPartitions
}

func (c *PoolConfig) defaults() {
	if c.Conversations == 0 {
		c.Conversations = 64
	}
	if c.PerConv == 0 {
		c.PerConv = 60
	}
	if c.Handler == 0 {
		c.Handler = 20 * time.Millisecond
	}
	if c.Workers == 0 {
		c.Workers = 4
	}
	if len(c.Members) == 0 {
		c.Members = []int{1, 2, 4}
	}
	if c.Partitions == 0 {
		c.Partitions = agentbus.DefaultPartitions
	}
}

// Validate reports a setting out of range.
func (c PoolConfig) Validate() error {
	c.defaults()
	if c.Conversations < 1 || c.PerConv < 1 || c.Workers < 1 || c.Handler < 0 {
		return errors.New("bench pool: conversations, envelopes per conversation and workers must be positive")
	}
	for _, m := range c.Members {
		if m < 1 || m > 64 {
			return fmt.Errorf("bench pool: %d members: want 1..64", m)
		}
	}
	return nil
}

// PoolRun is one member count's run.
type PoolRun struct {
	Members     int     `json:"members"`
	Envelopes   int     `json:"envelopes"`
	Seconds     float64 `json:"seconds"`
	HandledPerS float64 `json:"handled_per_s"`
	// Ideal is what the members' handler slots allow: members × workers /
	// handler time.
	IdealPerS float64 `json:"ideal_per_s"`
	// Speedup is HandledPerS over the first run's.
	Speedup float64 `json:"speedup"`
	// OrderViolations counts envelopes handled before an earlier one of
	// their conversation: 0, or the bus broke its promise.
	OrderViolations int `json:"order_violations"`
	// ByMember is how many envelopes each member handled.
	ByMember []int `json:"by_member"`
}

// PoolResult is the pool scenario's outcome.
type PoolResult struct {
	Conversations int       `json:"conversations"`
	HandlerMs     float64   `json:"handler_ms"`
	Workers       int       `json:"workers"`
	Partitions    int       `json:"partitions"`
	Runs          []PoolRun `json:"runs"`
}

// Pool runs the pool scenario: for each member count, a backlog of
// Conversations × PerConv envelopes to one agent is stored first, then the
// pool's members start and the clock runs until the last envelope is
// handled. Every conversation's envelopes are checked to be handled in the
// order they were sent.
func Pool(ctx context.Context, env Env, c PoolConfig) (PoolResult, error) {
	c.defaults()
	if err := c.Validate(); err != nil {
		return PoolResult{}, err
	}
	res := PoolResult{Conversations: c.Conversations, HandlerMs: float64(c.Handler) / float64(time.Millisecond),
		Workers: c.Workers, Partitions: c.Partitions}
	for i, n := range c.Members {
		run, err := poolRun(ctx, env, c, n, i)
		if err != nil {
			return res, err
		}
		if len(res.Runs) > 0 {
			run.Speedup = ratio(run.HandledPerS, res.Runs[0].HandledPerS)
		} else {
			run.Speedup = 1
		}
		env.progress("pool: %d members: %.0f handled/s (%.2f× one member, ideal %.0f/s), %d order violations",
			n, run.HandledPerS, run.Speedup, run.IdealPerS, run.OrderViolations)
		res.Runs = append(res.Runs, run)
	}
	return res, nil
}

func poolRun(ctx context.Context, env Env, c PoolConfig, members, runNo int) (PoolRun, error) {
	const agent = "bench-busy"
	pool := benchPool(fmt.Sprintf("bench-pool-%d", runNo), c.Partitions)
	total := c.Conversations * c.PerConv
	run := PoolRun{Members: members, Envelopes: total, ByMember: make([]int, members),
		IdealPerS: float64(members*c.Workers) / c.Handler.Seconds()}

	snc, err := env.connect("bench-pool-sender")
	if err != nil {
		return run, err
	}
	defer snc.Close()
	js, _ := jetstream.New(snc)
	sender, err := agentbus.Connect(ctx, env.logger(), agentbus.WithConn(snc), agentbus.WithEnsureStreams(agentbus.StreamConfig{}))
	if err != nil {
		return run, err
	}
	defer func() { _ = sender.Close(context.Background()) }()
	if _, err := sender.Declare(ctx, poolConfig(pool), agent); err != nil {
		return run, err
	}
	defer deletePool(js, pool, []string{agent})

	var (
		mu       sync.Mutex
		next     = map[string]int{} // conversation → next sequence due
		handled  atomic.Int64
		done     = make(chan struct{})
		doneOnce sync.Once
		byMember = make([]atomic.Int64, members)
		gate     = make(chan struct{}) // closed when the backlog is stored
	)
	var (
		buses  []*agentbus.Bus
		served []chan error
	)
	sctx, stop := context.WithCancel(ctx)
	defer func() {
		stop()
		for _, ch := range served {
			<-ch
		}
		for _, b := range buses {
			_ = b.Close(context.Background())
		}
	}()
	for m := range members {
		nc, err := env.connect(fmt.Sprintf("bench-pool-member-%d", m))
		if err != nil {
			return run, err
		}
		b, err := agentbus.Connect(ctx, env.logger(), agentbus.WithConn(nc))
		if err != nil {
			nc.Close()
			return run, err
		}
		buses = append(buses, b)
		_ = b.Handle(agent, func(ctx context.Context, e *codec.Envelope) error {
			select {
			case <-gate:
			case <-ctx.Done():
				return ctx.Err()
			}
			select {
			case <-time.After(c.Handler):
			case <-ctx.Done():
				return ctx.Err()
			}
			conv := e.Headers.Get(agentbus.HeaderContextID)
			seq, _ := strconv.Atoi(e.Kind)
			mu.Lock()
			switch want := next[conv]; {
			case seq == want:
				next[conv] = seq + 1
			case seq > want:
				run.OrderViolations++
			}
			mu.Unlock()
			byMember[m].Add(1)
			if handled.Add(1) == int64(total) {
				doneOnce.Do(func() { close(done) })
			}
			return nil
		})
		ch := make(chan error, 1)
		served = append(served, ch)
		go func() {
			ch <- b.Serve(sctx, serveIn(pool, agentbus.ServeWorkers(c.Workers),
				agentbus.ServeMemberID(fmt.Sprintf("m%d", m)), agentbus.ServeMemberTTL(2*time.Second))...)
		}()
	}
	// The members share the partitions before the backlog is stored, so
	// that each pulls only its own from the start.
	if err := waitForPool(ctx, sender, pool.Name(), members, c.Partitions); err != nil {
		return run, err
	}
	// The backlog; handlers wait for all of it to be stored.
	for seq := range c.PerConv {
		for conv := range c.Conversations {
			e := &codec.Envelope{From: "bench", To: agent, Kind: strconv.Itoa(seq)}
			e.Headers.Set(agentbus.HeaderContextID, "conv-"+strconv.Itoa(conv))
			if _, err := sender.SendAsync(ctx, e); err != nil {
				return run, err
			}
		}
	}
	if err := sender.Flush(ctx); err != nil {
		return run, err
	}

	start := time.Now()
	close(gate)
	select {
	case <-done:
	case <-ctx.Done():
		return run, ctx.Err()
	case <-time.After(10 * time.Minute):
		return run, fmt.Errorf("bench pool: %d members: only %d of %d envelopes handled", members, handled.Load(), total)
	}
	elapsed := time.Since(start)
	run.Seconds = elapsed.Seconds()
	run.HandledPerS = rate(total, elapsed)
	for m := range byMember {
		run.ByMember[m] = int(byMember[m].Load())
	}
	mu.Lock()
	for conv := range c.Conversations {
		if next["conv-"+strconv.Itoa(conv)] != c.PerConv {
			run.OrderViolations++
		}
	}
	mu.Unlock()
	return run, nil
}

// WritePool prints res as a table, or with asJSON as one JSON object on
// the last line.
func WritePool(w io.Writer, res PoolResult, asJSON bool) error {
	if asJSON {
		return json.NewEncoder(w).Encode(res)
	}
	fmt.Fprintf(w, "one agent, %d conversations, %.0f ms handlers, %d handlers at once per member, %d partitions:\n",
		res.Conversations, res.HandlerMs, res.Workers, res.Partitions)
	fmt.Fprintf(w, "  members  handled/s   vs 1 member   ideal/s   order violations   per member\n")
	for _, r := range res.Runs {
		fmt.Fprintf(w, "  %7d  %9.0f   %11.2f  %8.0f   %16d   %v\n", r.Members, r.HandledPerS, r.Speedup, r.IdealPerS, r.OrderViolations, r.ByMember)
	}
	return nil
}

// waitForPool waits until pool's members are all live and pull every
// partition between them, each at most its fair share rounded up.
func waitForPool(ctx context.Context, bus *agentbus.Bus, pool string, members, partitions int) error {
	share := (partitions + members - 1) / members
	deadline := time.Now().Add(time.Minute)
	for {
		ms, err := bus.Members(ctx)
		if err != nil {
			return err
		}
		n, sum, fair := 0, 0, true
		for _, m := range ms {
			if m.Pool == pool {
				n++
				sum += m.Partitions
				fair = fair && m.Partitions <= share+share/10+1
			}
		}
		if n == members && sum == partitions && fair {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("bench pool: %d members of %d pull %d of %d partitions after a minute", n, members, sum, partitions)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
