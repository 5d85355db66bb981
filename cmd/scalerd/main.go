// Command scalerd is the a2abus scaler daemon. For now it runs the scaling
// simulator, "scalerd sim". See package
// github.com/a2abus/a2abus/internal/scalerd.
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
