// Command scalerd is the a2abus scaler daemon: it watches the bus's
// JetStream backlog and its consumers' CPU and sets the consumer count every
// agentd follows ("scalerd --nats URL"), and it runs the scaling simulator
// ("scalerd sim"). See package github.com/a2abus/a2abus/internal/scalerd.
//
// SIGINT or SIGTERM stops the daemon cleanly: it resigns its leadership so
// that a standby takes over at once, and exits 0.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/a2abus/a2abus/internal/scalerd"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := scalerd.Main(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.LookupEnv)
	stop()
	os.Exit(code)
}
