package faults

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/a2abus/a2abus/internal/lazyfs"
)

// PowerLoss cuts the power of the nodes idx (every node when idx is
// empty) at once, as a power failure does, in an order that lets nothing
// a node does after the cut be seen:
//
//  1. their proxies, client and route, both ways, drop every connection
//     and refuse new ones: nothing a node sends from now on reaches a
//     client or a peer (what a client received was sent before);
//  2. their stores' filesystems freeze: nothing a node writes or syncs
//     from now on reaches the disk;
//  3. their servers stop, whatever they still try to write failing;
//  4. their stores drop what they had not synced (lazyfs.FS.PowerLoss,
//     with opts).
//
// It returns what each store dropped, in idx's order, and needs
// WithLazyStores. PowerOn starts the nodes again.
func (c *Cluster) PowerLoss(ctx context.Context, idx []int, opts ...lazyfs.LossOption) ([]lazyfs.Report, error) {
	if len(idx) == 0 {
		for i := range c.nodes {
			idx = append(idx, i)
		}
	}
	for _, i := range idx {
		if c.nodes[i].lazy == nil {
			return nil, fmt.Errorf("faults: node %s has no lazy store (WithLazyStores)", c.nodes[i].name)
		}
		if !c.Running(i) {
			return nil, fmt.Errorf("faults: node %s is not running", c.nodes[i].name)
		}
	}
	for _, i := range idx {
		c.clients[i].Cut()
		c.Isolate(i)
	}
	for _, i := range idx {
		c.nodes[i].lazy.Freeze()
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for _, i := range idx {
		wg.Go(func() {
			// A stop's own errors are the frozen store's doing.
			_ = c.Stop(ctx, i)
		})
	}
	wg.Wait()
	reps := make([]lazyfs.Report, len(idx))
	for k, i := range idx {
		wg.Go(func() {
			rep, err := c.nodes[i].lazy.PowerLoss(opts...)
			mu.Lock()
			defer mu.Unlock()
			reps[k] = rep
			if err != nil {
				errs = append(errs, fmt.Errorf("faults: node %s: %w", c.nodes[i].name, err))
			}
		})
	}
	wg.Wait()
	return reps, errors.Join(errs...)
}

// PowerOn starts the nodes idx (every stopped node when idx is empty)
// again on what their stores kept: their routes are restored and they
// start (with Restart's waits); their client proxies stay cut until
// RestoreClient, so that the store can be looked at first (DirectURLs).
func (c *Cluster) PowerOn(ctx context.Context, idx ...int) error {
	if len(idx) == 0 {
		for i := range c.nodes {
			if !c.Running(i) {
				idx = append(idx, i)
			}
		}
	}
	for _, i := range idx {
		c.Heal(i)
	}
	return c.Restart(ctx, idx...)
}

// RestoreClient lets clients connect to node i again (see PowerLoss).
func (c *Cluster) RestoreClient(i int) { c.clients[i].Restore() }

// SyncStores makes everything the nodes' lazy stores hold durable, as the
// operating system's write-back would have long since on a cluster set up
// before the run.
func (c *Cluster) SyncStores() error {
	var errs []error
	for _, nd := range c.nodes {
		if nd.lazy != nil {
			errs = append(errs, nd.lazy.Sync())
		}
	}
	return errors.Join(errs...)
}

// StorePending returns what each node's lazy store would drop now.
func (c *Cluster) StorePending() []lazyfs.Pending {
	out := make([]lazyfs.Pending, len(c.nodes))
	for i, nd := range c.nodes {
		if nd.lazy != nil {
			out[i] = nd.lazy.Pending()
		}
	}
	return out
}
