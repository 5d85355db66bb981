package a2anats_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/a2abus/a2abus/agentbus"
	"github.com/a2abus/a2abus/agentbus/a2anats"
	"github.com/a2abus/a2abus/agentbus/a2anats/a2anatstest"
	"github.com/a2abus/a2abus/embedded/embeddedtest"
	"github.com/a2aproject/a2a-go/v2/a2a"
	"github.com/a2aproject/a2a-go/v2/a2asrv/push"
	"github.com/nats-io/nats.go/jetstream"
)

// TestPushConfigStore: the push config store keeps a task's configs in KV
// as the SDK's ConfigStore promises (an ID given when none is, replace by
// ID, list in order, get, idempotent delete, delete all), and another
// process's store reads them.
func TestPushConfigStore(t *testing.T) {
	srv := embeddedtest.RunServer(t)
	ctx := testCtx(t, time.Minute)
	open := func() *a2anats.PushConfigStore {
		tasks, err := a2anats.NewTaskStore(ctx, a2anatstest.ConnectBus(t, srv), "worker", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return tasks.PushConfigs()
	}
	store, other := open(), open()
	task := a2a.NewTaskID()

	if got, err := store.List(ctx, task); err != nil || got == nil || len(got) != 0 {
		t.Fatalf("List of a task without configs: %v, %v; want an empty list", got, err)
	}
	a, err := store.Save(ctx, task, &a2a.PushConfig{ID: "a", URL: "https://hooks.example/a", Token: "tok",
		Auth: &a2a.PushAuthInfo{Scheme: "Bearer", Credentials: "secret"}})
	if err != nil || a.ID != "a" {
		t.Fatalf("Save a: %+v, %v", a, err)
	}
	b, err := store.Save(ctx, task, &a2a.PushConfig{URL: "http://127.0.0.1:9/b"})
	if err != nil || b.ID == "" {
		t.Fatalf("Save without an ID: %+v, %v; want one given", b, err)
	}
	if _, err := store.Save(ctx, task, &a2a.PushConfig{ID: "a", URL: "https://hooks.example/a2"}); err != nil {
		t.Fatal(err)
	}
	got, err := other.List(ctx, task)
	if err != nil || len(got) != 2 || got[0].ID != "a" || got[0].URL != "https://hooks.example/a2" || got[0].Auth != nil || got[1].ID != b.ID {
		t.Fatalf("List from another process: %+v, %v; want a (replaced) then %s", got, err, b.ID)
	}
	if c, err := other.Get(ctx, task, b.ID); err != nil || c.URL != "http://127.0.0.1:9/b" {
		t.Fatalf("Get %s: %+v, %v", b.ID, c, err)
	}
	if _, err := other.Get(ctx, task, "nope"); !errors.Is(err, push.ErrPushConfigNotFound) {
		t.Fatalf("Get of a config that is not there: %v, want push.ErrPushConfigNotFound", err)
	}
	if err := other.Delete(ctx, task, "a"); err != nil {
		t.Fatal(err)
	}
	for range 2 { // idempotent
		if err := store.Delete(ctx, task, "a"); err != nil {
			t.Fatalf("Delete of a deleted config: %v", err)
		}
	}
	if got, err := store.List(ctx, task); err != nil || len(got) != 1 || got[0].ID != b.ID {
		t.Fatalf("List after deleting a: %+v, %v", got, err)
	}
	if err := store.Delete(ctx, task, b.ID); err != nil { // the last one: the key goes
		t.Fatal(err)
	}
	if got, err := store.List(ctx, task); err != nil || len(got) != 0 {
		t.Fatalf("List after deleting all one by one: %+v, %v", got, err)
	}
	if _, err := store.Save(ctx, task, &a2a.PushConfig{ID: "c", URL: "https://hooks.example/c"}); err != nil {
		t.Fatalf("Save after the key was deleted: %v", err)
	}
	if err := other.DeleteAll(ctx, task); err != nil {
		t.Fatal(err)
	}
	if got, err := store.List(ctx, task); err != nil || len(got) != 0 {
		t.Fatalf("List after DeleteAll: %+v, %v", got, err)
	}
	if err := store.DeleteAll(ctx, task); err != nil {
		t.Fatalf("DeleteAll of nothing: %v", err)
	}

	// Bounded: MaxPushConfigs per task.
	for i := range a2anats.MaxPushConfigs {
		if _, err := store.Save(ctx, task, &a2a.PushConfig{ID: fmt.Sprint(i), URL: "https://hooks.example/"}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := store.Save(ctx, task, &a2a.PushConfig{ID: "one too many", URL: "https://hooks.example/"}); !errors.Is(err, a2a.ErrInvalidParams) {
		t.Fatalf("Save past %d configs: %v, want ErrInvalidParams", a2anats.MaxPushConfigs, err)
	}
}

// TestPushConfigValidation: a config that cannot be sent to is refused
// when it is saved, with an invalid params error saying why, and nothing
// is stored.
func TestPushConfigValidation(t *testing.T) {
	ctx := testCtx(t, time.Minute)
	tasks, err := a2anats.NewTaskStore(ctx, a2anatstest.ConnectBus(t, embeddedtest.RunServer(t)), "worker", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	store := tasks.PushConfigs()
	task := a2a.NewTaskID()
	for _, tc := range []struct {
		name string
		cfg  *a2a.PushConfig
		want string
	}{
		{"nil", nil, "no push config"},
		{"no url", &a2a.PushConfig{}, "want an absolute http or https URL"},
		{"relative", &a2a.PushConfig{URL: "/hook"}, "want an absolute http or https URL"},
		{"not http", &a2a.PushConfig{URL: "ftp://example.com/hook"}, "want an absolute http or https URL"},
		{"no host", &a2a.PushConfig{URL: "http:///hook"}, "want an absolute http or https URL"},
		{"unparsable", &a2a.PushConfig{URL: "http://[::1"}, "push config url"},
		{"huge url", &a2a.PushConfig{URL: "https://example.com/" + strings.Repeat("a", 9000)}, "want at most"},
		{"scheme with a space", &a2a.PushConfig{URL: "https://example.com", Auth: &a2a.PushAuthInfo{Scheme: "Bear er", Credentials: "x"}}, "authentication scheme"},
		{"no scheme", &a2a.PushConfig{URL: "https://example.com", Auth: &a2a.PushAuthInfo{Credentials: "x"}}, "authentication scheme"},
		{"credentials with a newline", &a2a.PushConfig{URL: "https://example.com", Auth: &a2a.PushAuthInfo{Scheme: "Bearer", Credentials: "x\r\nX-Evil: 1"}}, "control characters"},
		{"token with a newline", &a2a.PushConfig{URL: "https://example.com", Token: "a\nb"}, "control characters"},
		{"id not UTF-8", &a2a.PushConfig{URL: "https://example.com", ID: "\xff"}, "UTF-8"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := store.Save(ctx, task, tc.cfg)
			if !errors.Is(err, a2a.ErrInvalidParams) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Save(%+v): %v; want ErrInvalidParams saying %q", tc.cfg, err, tc.want)
			}
		})
	}
	if _, err := store.Save(ctx, "not.a.task", &a2a.PushConfig{URL: "https://example.com"}); !errors.Is(err, a2a.ErrInvalidParams) {
		t.Fatalf("Save for a task ID a key cannot hold: %v", err)
	}
	if got, err := store.List(ctx, task); err != nil || len(got) != 0 {
		t.Fatalf("configs stored after refusals: %+v, %v", got, err)
	}
}

// TestPushConfigStoreConcurrentSaves: configs saved at once for one task
// by several processes are all kept (a compare-and-set on the task's key,
// read again on conflict), on one server and on an R3 cluster.
func TestPushConfigStoreConcurrentSaves(t *testing.T) {
	for _, tc := range []struct {
		name     string
		replicas int
	}{{"R1", 1}, {"R3", 3}} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testCtx(t, 2*time.Minute)
			var stores []*a2anats.PushConfigStore
			for _, bus := range testBuses(t, ctx, tc.replicas, 4) {
				tasks, err := a2anats.NewTaskStore(ctx, bus, "worker", time.Hour)
				if err != nil {
					t.Fatal(err)
				}
				stores = append(stores, tasks.PushConfigs())
			}
			task := a2a.NewTaskID()
			var wg sync.WaitGroup
			errs := make(chan error, a2anats.MaxPushConfigs)
			for i := range a2anats.MaxPushConfigs {
				wg.Go(func() {
					_, err := stores[i%len(stores)].Save(ctx, task, &a2a.PushConfig{ID: fmt.Sprint(i), URL: "https://hooks.example/"})
					errs <- err
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Fatal(err)
				}
			}
			got, err := stores[0].List(ctx, task)
			if err != nil || len(got) != a2anats.MaxPushConfigs {
				t.Fatalf("%d configs kept of %d saved at once (%v)", len(got), a2anats.MaxPushConfigs, err)
			}
		})
	}
}

// testBuses connects n buses: to one server (replicas 1), or to the servers
// of a 3-node cluster in turn, with the streams on 3 replicas.
func testBuses(t *testing.T, ctx context.Context, replicas, n int) []*agentbus.Bus {
	t.Helper()
	var buses []*agentbus.Bus
	if replicas == 1 {
		srv := embeddedtest.RunServer(t)
		for range n {
			buses = append(buses, a2anatstest.ConnectBus(t, srv))
		}
		return buses
	}
	c := embeddedtest.Cluster(t, replicas)
	nc := c.Connect()
	embeddedtest.WaitPlacement(t, nc, replicas)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if err := agentbus.EnsureStreams(ctx, js, agentbus.StreamConfig{Replicas: replicas}); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		buses = append(buses, a2anatstest.ConnectBus(t, c.Server(i%c.Size())))
	}
	return buses
}
