package scalerd

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/a2abus/a2abus/internal/telemetry"
	"github.com/a2abus/a2abus/internal/tracing"
)

// Exit codes of Main.
const (
	exitOK    = 0
	exitError = 1 // the command failed at run time
	exitUsage = 2 // bad command, flags or arguments
)

const usageText = `Usage:
  scalerd [flags]
      Run the scaler daemon: every --interval it reads each pool's backlog
      (JetStream consumer info of its partitions) and its consumers (the
      members bucket), decides each pool's consumer count with the a2abus
      scaling policy and, while it leads, writes it as the pool's scale
      target, which the pool's agentds follow; pools that have not
      reported (no partition consumers, no members) are left alone. Two or
      more scalerds elect one leader; the others decide too, report and
      stand by. Serves /metrics, /healthz, /readyz, /scale and
      /scale/{pool} (for KEDA's metrics-api scaler) on --http. Every
      flag is also a SCALERD_* environment variable (--dry-run is
      SCALERD_DRY_RUN); a flag given wins. See "scalerd --help" for the flags.

  scalerd sim [--json] [--trace FILE ...] [flags]
      Replay load traces against a simulated consumer pool under the a2abus
      scaling policy and a KEDA/HPA-style baseline, and print what each cost:
      peak backlog, backlog·seconds, consumer·seconds, scale events and
      reversals. Without --trace the built-in traces run (step, ramp, spike,
      diurnal, noisy-flat, sawtooth). See "scalerd sim --help" for the flags.
`

// Main runs the scalerd command line with args (without the program name)
// and returns the process exit code: 0 after a clean stop (ctx ended), 1
// when the daemon cannot run, 2 for a bad command, flag or setting, with
// one line on stderr naming it. The daemon reads its environment through
// lookupEnv; stdin is unused.
func Main(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, lookupEnv func(string) (string, bool)) int {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return daemonCmd(ctx, args, stdout, stderr, lookupEnv)
	}
	switch cmd, rest := args[0], args[1:]; cmd {
	case "sim":
		return simCmd(ctx, rest, stdout, stderr)
	case "run":
		return daemonCmd(ctx, rest, stdout, stderr, lookupEnv)
	case "help":
		fmt.Fprint(stdout, usageText)
		return exitOK
	default:
		fmt.Fprintf(stderr, "scalerd: unknown command %q (want sim, or flags to run the daemon)\n\n%s", cmd, usageText)
		return exitUsage
	}
}

// daemonCmd runs the daemon until ctx ends.
func daemonCmd(ctx context.Context, args []string, stdout, stderr io.Writer, lookupEnv func(string) (string, bool)) int {
	cfg, err := loadConfig(args, lookupEnv)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, usageText+"\nDaemon flags:\n")
		fs := flagSet(&cfg)
		fs.SetOutput(stdout)
		fs.PrintDefaults()
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "scalerd: %v\n", err)
		return exitUsage
	}
	log := newLogger(stderr, cfg.LogLevel, cfg.LogFormat)
	tp, stopTracing, err := telemetry.Setup(ctx, "scalerd", stderr, log)
	if err != nil {
		fmt.Fprintf(stderr, "scalerd: %v\n", err)
		return exitUsage
	}
	defer func() {
		fctx, cancel := context.WithTimeout(context.Background(), tracingFlush)
		defer cancel()
		if err := stopTracing(fctx); err != nil {
			log.Warn("spans not exported at exit", "err", err)
		}
	}()
	var opts []Option
	if tp != nil {
		opts = append(opts, WithTracerProvider(tp))
	}
	d, err := NewDaemon(cfg, log, opts...)
	if err != nil {
		fmt.Fprintf(stderr, "scalerd: %v\n", err)
		return exitUsage
	}
	if err := d.Start(ctx); err != nil {
		fmt.Fprintf(stderr, "scalerd: %v\n", err)
		return exitError
	}
	code := exitOK
	select {
	case <-ctx.Done():
		log.Info("stopping", "cause", context.Cause(ctx))
	case err := <-d.Err():
		log.Error("HTTP server stopped", "err", err)
		code = exitError
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := d.Shutdown(sctx); err != nil {
		log.Error("shutdown", "err", err)
		code = exitError
	}
	return code
}

// shutdownTimeout bounds a clean stop, within the 5 s operators expect;
// tracingFlush bounds the export of the last spans after it.
const (
	shutdownTimeout = 4 * time.Second
	tracingFlush    = time.Second
)

// newLogger logs to w at level in format (both validated).
func newLogger(w io.Writer, level, format string) *slog.Logger {
	var lv slog.Level
	_ = lv.UnmarshalText([]byte(level))
	opts := &slog.HandlerOptions{Level: lv}
	var h slog.Handler = slog.NewTextHandler(w, opts)
	if format == "json" {
		h = slog.NewJSONHandler(w, opts)
	}
	return slog.New(tracing.LogHandler(h))
}
