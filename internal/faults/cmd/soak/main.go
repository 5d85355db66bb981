// Command soak runs the a2abus soak: mixed load with injected faults on a
// 3-node embedded cluster, one report line per interval (heap in use,
// goroutines, sends and handled envelopes), then a drain and the verdict.
// It exits 1 when a verdict fails. See package faults.
//
//	go run ./internal/faults/cmd/soak --duration 10m
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/a2abus/a2abus/internal/faults"
)

func main() {
	ok, err := run()
	switch {
	case err != nil:
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(2)
	case !ok:
		os.Exit(1)
	}
}

func run() (bool, error) {
	var cfg faults.SoakConfig
	flag.DurationVar(&cfg.Duration, "duration", 10*time.Minute, "how long the load runs, before the drain")
	flag.DurationVar(&cfg.Interval, "interval", 20*time.Second, "time between report lines; one fault is injected in each")
	flag.IntVar(&cfg.Publishers, "publishers", 3, "publishing buses")
	flag.StringVar(&cfg.Dir, "dir", "", "store directory of the nodes (default: a temporary one, removed at the end)")
	flag.StringVar(&cfg.HeapProfile, "heapprofile", "", "write a heap profile to this file after the last interval (go tool pprof)")
	verbose := flag.Bool("v", false, "log the servers' and buses' warnings and errors to stderr")
	flag.Parse()
	if *verbose {
		cfg.Log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := faults.Soak(ctx, cfg, os.Stdout)
	if err != nil {
		return false, err
	}
	return res.OK(), nil
}
