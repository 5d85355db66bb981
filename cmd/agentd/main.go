// Command agentd is the a2abus per-host daemon. See package
// github.com/a2abus/a2abus/internal/agentd and the README.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/a2abus/a2abus/internal/agentd"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := agentd.Main(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.LookupEnv)
	stop()
	os.Exit(code)
}
