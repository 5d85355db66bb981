package a2anats_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/a2abus/a2abus/agentbus"
	"github.com/a2abus/a2abus/agentbus/a2anats"
	"github.com/a2abus/a2abus/agentbus/a2anats/a2anatstest"
	"github.com/a2abus/a2abus/embedded/embeddedtest"
	"github.com/a2aproject/a2a-go/v2/a2a"
	"github.com/a2aproject/a2a-go/v2/a2asrv/taskstore"
	"github.com/nats-io/nats.go/jetstream"
)

// TestTaskStoreConcurrentUpdates: of updates racing from one version,
// exactly one lands and the others get ErrConcurrentModification, on one
// server and on an R3 cluster (whose KV reports the conflict differently).
func TestTaskStoreConcurrentUpdates(t *testing.T) {
	for _, tc := range []struct {
		name     string
		replicas int
	}{{"R1", 1}, {"R3", 3}} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testCtx(t, time.Minute)
			var bus *agentbus.Bus
			if tc.replicas == 1 {
				bus = a2anatstest.ConnectBus(t, embeddedtest.RunServer(t))
			} else {
				c := embeddedtest.Cluster(t, 3)
				nc := c.Connect()
				embeddedtest.WaitPlacement(t, nc, 3)
				js, err := jetstream.New(nc)
				if err != nil {
					t.Fatal(err)
				}
				if err := agentbus.EnsureStreams(ctx, js, agentbus.StreamConfig{Replicas: 3}); err != nil {
					t.Fatal(err)
				}
				var cerr error
				bus, cerr = agentbus.Connect(ctx, agentbus.WithURL(c.ClientURLs()), agentbus.WithLogger(embeddedtest.Logger(t)))
				if cerr != nil {
					t.Fatal(cerr)
				}
				t.Cleanup(func() { _ = bus.Close(context.Background()) })
			}
			store, err := a2anats.NewTaskStore(ctx, bus, "worker", time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			task := &a2a.Task{ID: a2a.NewTaskID(), ContextID: "c", Status: a2a.TaskStatus{State: a2a.TaskStateSubmitted}}
			v, err := store.Create(ctx, task)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := store.Create(ctx, task); !errors.Is(err, taskstore.ErrTaskAlreadyExists) {
				t.Fatalf("second create: %v", err)
			}
			for round := range 5 {
				var wg sync.WaitGroup
				var mu sync.Mutex
				landed, conflicts := 0, 0
				var next taskstore.TaskVersion
				for range 8 {
					wg.Add(1)
					go func() {
						defer wg.Done()
						upd := *task
						upd.Status.State = a2a.TaskStateWorking
						nv, err := store.Update(ctx, &taskstore.UpdateRequest{Task: &upd, PrevVersion: v})
						mu.Lock()
						defer mu.Unlock()
						switch {
						case err == nil:
							landed++
							next = nv
						case errors.Is(err, taskstore.ErrConcurrentModification):
							conflicts++
						default:
							t.Errorf("round %d: update: %v, want nil or ErrConcurrentModification", round, err)
						}
					}()
				}
				wg.Wait()
				if landed != 1 || conflicts != 7 {
					t.Fatalf("round %d: %d updates landed and %d conflicted, want 1 and 7", round, landed, conflicts)
				}
				got, err := store.Get(ctx, task.ID)
				if err != nil || got.Version != next || got.Task.Status.State != a2a.TaskStateWorking {
					t.Fatalf("round %d: stored %+v, %v; want version %d", round, got, err, next)
				}
				v = next
			}
		})
	}
}

// TestTaskStoreReadsItsWrites (issue 15): on an R3 cluster, a task read
// right after it was created or updated is the one written, at the version
// written, however many replicas answer direct gets: the store reads from
// the stream leader, so a2asrv's compare-and-set never fails on a stale
// read and a new task is never "not found".
func TestTaskStoreReadsItsWrites(t *testing.T) {
	ctx := testCtx(t, 2*time.Minute)
	c := embeddedtest.Cluster(t, 3)
	nc := c.Connect()
	embeddedtest.WaitPlacement(t, nc, 3)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if err := agentbus.EnsureStreams(ctx, js, agentbus.StreamConfig{Replicas: 3}); err != nil {
		t.Fatal(err)
	}
	// The store's bus is connected to a server that is not the tasks
	// bucket's leader: its replica answers the direct gets.
	first := a2anatstest.ConnectBus(t, c.Server(0))
	if _, err := a2anats.NewTaskStore(ctx, first, "worker", time.Hour); err != nil {
		t.Fatal(err)
	}
	follower := (c.WaitStreamLeader("KV_"+a2anats.TasksBucket) + 1) % c.Size()
	bus := a2anatstest.ConnectBus(t, c.Server(follower))
	store, err := a2anats.NewTaskStore(ctx, bus, "worker", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	const tasks = 300
	stale := 0
	for i := range tasks {
		task := &a2a.Task{ID: a2a.NewTaskID(), ContextID: "c", Status: a2a.TaskStatus{State: a2a.TaskStateSubmitted}}
		v, err := store.Create(ctx, task)
		if err != nil {
			t.Fatal(err)
		}
		got, err := store.Get(ctx, task.ID)
		if err != nil || got.Version != v {
			stale++
			t.Logf("task %d: read after create: %+v, %v; want version %d", i, got, err, v)
			continue
		}
		upd := *task
		upd.Status.State = a2a.TaskStateWorking
		nv, err := store.Update(ctx, &taskstore.UpdateRequest{Task: &upd, PrevVersion: v})
		if err != nil {
			stale++
			t.Logf("task %d: update from the version just read: %v", i, err)
			continue
		}
		upd.Status.State = a2a.TaskStateCompleted
		if _, err := store.Update(ctx, &taskstore.UpdateRequest{Task: &upd, PrevVersion: nv}); err != nil {
			stale++
			t.Logf("task %d: second update: %v", i, err)
		}
	}
	if stale > 0 {
		t.Fatalf("%d of %d tasks read stale right after a write on R3", stale, tasks)
	}
}

// TestListNoMatchIsEmpty: a listing that matches nothing is "tasks": []
// in JSON, not null (the A2A TCK's CORE-LIST tests over HTTP+JSON).
func TestListNoMatchIsEmpty(t *testing.T) {
	ctx := testCtx(t, 30*time.Second)
	store, err := a2anats.NewTaskStore(ctx, a2anatstest.ConnectBus(t, embeddedtest.RunServer(t)), "lister", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := store.List(ctx, &a2a.ListTasksRequest{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(resp)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"tasks":[]`) {
		t.Fatalf("empty listing %s, want \"tasks\":[]", b)
	}
}
