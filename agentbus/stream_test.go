package agentbus_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/a2abus/a2abus/agentbus"
	"github.com/a2abus/a2abus/embedded/embeddedtest"
	"github.com/nats-io/nats.go/jetstream"
)

func newJS(t *testing.T) (context.Context, jetstream.JetStream) {
	t.Helper()
	srv := embeddedtest.RunServer(t)
	js, err := jetstream.New(embeddedtest.Connect(t, srv))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx, js
}

func TestEnsureStreamsCreatesWithDefaults(t *testing.T) {
	ctx, js := newJS(t)
	if err := agentbus.EnsureStreams(ctx, js, agentbus.StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	s, err := js.Stream(ctx, agentbus.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	c := s.CachedInfo().Config
	if c.Retention != jetstream.WorkQueuePolicy || c.Discard != jetstream.DiscardNew ||
		c.Storage != jetstream.FileStorage || c.Replicas != 1 ||
		c.MaxBytes != agentbus.DefaultMaxBytes || c.MaxMsgSize != agentbus.DefaultMaxMsgSize ||
		c.Duplicates != agentbus.DefaultDuplicates || len(c.Subjects) != 1 || c.Subjects[0] != "a2a.in.>" {
		t.Errorf("A2A stream config %+v", c)
	}
	d, err := js.Stream(ctx, agentbus.DeadLetterStreamName)
	if err != nil {
		t.Fatal(err)
	}
	if dc := d.CachedInfo().Config; dc.Retention != jetstream.LimitsPolicy || dc.Subjects[0] != "a2a.dlq.>" {
		t.Errorf("dead-letter stream config %+v", dc)
	}

	if _, err := js.Publish(ctx, "a2a.in.pool.p0001.agent", []byte("x")); err != nil {
		t.Fatalf("publish to A2A stream: %v", err)
	}
}

func TestEnsureStreamsIdempotentAndUpdatesLimits(t *testing.T) {
	ctx, js := newJS(t)
	cfg := agentbus.StreamConfig{MaxBytes: 1 << 20}
	for range 2 {
		if err := agentbus.EnsureStreams(ctx, js, cfg); err != nil {
			t.Fatal(err)
		}
	}
	s, err := js.Stream(ctx, agentbus.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	created := s.CachedInfo().Created

	// Without UpdateLimits an existing stream keeps what it has.
	cfg.MaxBytes = 2 << 20
	cfg.MaxAge = time.Hour
	if err := agentbus.EnsureStreams(ctx, js, cfg); err != nil {
		t.Fatal(err)
	}
	if info, err := s.Info(ctx); err != nil || info.Config.MaxBytes != 1<<20 {
		t.Fatalf("limits changed without UpdateLimits: %v %v", info.Config.MaxBytes, err)
	}
	cfg.UpdateLimits = true
	if err := agentbus.EnsureStreams(ctx, js, cfg); err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Config.MaxBytes != 2<<20 || info.Config.MaxAge != time.Hour {
		t.Errorf("limits not updated: max bytes %d, max age %v", info.Config.MaxBytes, info.Config.MaxAge)
	}
	if !info.Created.Equal(created) {
		t.Error("stream was recreated instead of updated")
	}
}

func TestEnsureStreamsFullStreamIsAnError(t *testing.T) {
	ctx, js := newJS(t)
	if err := agentbus.EnsureStreams(ctx, js, agentbus.StreamConfig{MaxBytes: 4096}); err != nil {
		t.Fatal(err)
	}
	payload := make([]byte, 1024)
	var err error
	for i := 0; i < 10 && err == nil; i++ {
		_, err = js.Publish(ctx, "a2a.in.pool.p0001.agent", payload)
	}
	if err == nil {
		t.Fatal("publishing 10 KiB into a 4 KiB stream never failed")
	}
	info, ierr := js.Stream(ctx, agentbus.StreamName)
	if ierr != nil {
		t.Fatal(ierr)
	}
	if info.CachedInfo().State.FirstSeq != 1 {
		t.Errorf("first sequence %d: old messages were discarded", info.CachedInfo().State.FirstSeq)
	}
}

func TestEnsureStreamsConflicts(t *testing.T) {
	tests := []struct {
		name     string
		existing jetstream.StreamConfig
	}{
		{"retention", jetstream.StreamConfig{Name: agentbus.StreamName, Subjects: []string{"a2a.in.>"}, Retention: jetstream.LimitsPolicy, Discard: jetstream.DiscardNew}},
		{"subjects", jetstream.StreamConfig{Name: agentbus.StreamName, Subjects: []string{"a2a.in.x.>"}, Retention: jetstream.WorkQueuePolicy, Discard: jetstream.DiscardNew}},
		{"storage", jetstream.StreamConfig{Name: agentbus.StreamName, Subjects: []string{"a2a.in.>"}, Retention: jetstream.WorkQueuePolicy, Discard: jetstream.DiscardNew, Storage: jetstream.MemoryStorage}},
		{"discard", jetstream.StreamConfig{Name: agentbus.StreamName, Subjects: []string{"a2a.in.>"}, Retention: jetstream.WorkQueuePolicy, Discard: jetstream.DiscardOld}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, js := newJS(t)
			if _, err := js.CreateStream(ctx, tt.existing); err != nil {
				t.Fatal(err)
			}
			err := agentbus.EnsureStreams(ctx, js, agentbus.StreamConfig{})
			if !errors.Is(err, agentbus.ErrStreamConflict) {
				t.Fatalf("error %v, want ErrStreamConflict", err)
			}
			t.Log(err)
		})
	}
}

func TestStreamConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     agentbus.StreamConfig
		wantErr bool
	}{
		{"zero", agentbus.StreamConfig{}, false},
		{"replicas 3", agentbus.StreamConfig{Replicas: 3}, false},
		{"replicas 7", agentbus.StreamConfig{Replicas: 7}, true},
		{"negative bytes", agentbus.StreamConfig{MaxBytes: -1}, true},
		{"negative age", agentbus.StreamConfig{MaxAge: -time.Second}, true},
		{"negative window", agentbus.StreamConfig{Duplicates: -time.Second}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.cfg.Validate(); (err != nil) != tt.wantErr {
				t.Fatalf("Validate() = %v, wantErr %v", err, tt.wantErr)
			}
		})
	}
}
