package agentd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/a2abus/a2abus/internal/codeccmd"
	"github.com/a2abus/a2abus/internal/sysinfo"
	"github.com/a2abus/a2abus/internal/telemetry"
)

// Exit codes of Main.
const (
	exitOK    = 0
	exitError = 1 // the command failed at run time
	exitUsage = 2 // bad flags, environment or config file
)

// Main runs the agentd command line with args (without the program name)
// and returns the process exit code. ctx ends on SIGINT or SIGTERM; the
// daemon then shuts down cleanly and Main returns 0. Errors are written to
// stderr as one line.
func Main(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, lookupEnv func(string) (string, bool)) int {
	cmd := "run"
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "run":
		return runCmd(ctx, args, stdout, stderr, lookupEnv)
	case "codec":
		return codeccmd.Run(ctx, args, stdin, stdout, stderr)
	case "send":
		return sendCmd(ctx, args, stdout, stderr)
	case "bench":
		return benchCmd(ctx, args, stdout, stderr)
	case "doctor":
		return doctorCmd(args, stdout, stderr)
	case "permissions":
		return permissionsCmd(args, stdout, stderr)
	case "help":
		usage(stdout)
		return exitOK
	default:
		fmt.Fprintf(stderr, "agentd: unknown command %q (see agentd --help)\n", cmd)
		return exitUsage
	}
}

func runCmd(ctx context.Context, args []string, stdout, stderr io.Writer, lookupEnv func(string) (string, bool)) int {
	cfg, rest, err := loadConfig(args, lookupEnv)
	switch {
	case errors.Is(err, errHelp):
		usage(stdout)
		return exitOK
	case err != nil:
		fmt.Fprintf(stderr, "agentd: %v (see agentd --help)\n", err)
		return exitUsage
	case len(rest) > 0:
		fmt.Fprintf(stderr, "agentd: unexpected argument %q (see agentd --help)\n", rest[0])
		return exitUsage
	}
	log := newLogger(cfg, stderr)
	tp, stopTracing, err := telemetry.Setup(ctx, "agentd", stderr, log)
	if err != nil {
		fmt.Fprintf(stderr, "agentd: %v\n", err)
		return exitUsage
	}
	defer flushTracing(stopTracing, log)
	if err := bindCPUs(cfg, log); err != nil {
		fmt.Fprintf(stderr, "agentd: %v\n", err)
		return exitError
	}
	var opts []DaemonOption
	if tp != nil {
		opts = append(opts, WithTracerProvider(tp))
	}
	if err := run(ctx, cfg, log, opts...); err != nil {
		fmt.Fprintf(stderr, "agentd: %v\n", err)
		return exitError
	}
	return exitOK
}

// flushTracing exports the spans still buffered and stops the tracer
// provider, within tracingFlush.
func flushTracing(stop func(context.Context) error, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), tracingFlush)
	defer cancel()
	if err := stop(ctx); err != nil {
		log.Warn("spans not exported at exit", "err", err)
	}
}

// tracingFlush bounds the export of the last spans at exit (a collector
// on the same host or network takes them in milliseconds; an unreachable
// one must not hold up the exit).
const tracingFlush = time.Second

// bindCPUs binds the process to --cpus or to the CPUs of --numa-node, if
// either is set; where the platform cannot, it warns and goes on.
func bindCPUs(cfg Config, log *slog.Logger) error {
	var cpus []int
	var err error
	switch {
	case cfg.CPUs != "":
		cpus, err = sysinfo.ParseCPUList(cfg.CPUs)
	case cfg.NUMANode >= 0:
		cpus, err = sysinfo.NUMANodeCPUs(cfg.NUMANode)
		if err != nil {
			err = fmt.Errorf("--numa-node %d: %w", cfg.NUMANode, err)
		}
	default:
		return nil
	}
	if err != nil {
		return err
	}
	if _, err := sysinfo.BindCPUs(cpus); errors.Is(err, sysinfo.ErrAffinityUnsupported) {
		log.Warn("CPU binding is not supported here; running unbound", "cpus", cpus)
		return nil
	} else if err != nil {
		return err
	}
	log.Info("bound to CPUs", "cpus", cpus)
	return nil
}

// run starts a daemon and keeps it until ctx ends or it fails, then shuts
// it down.
func run(ctx context.Context, cfg Config, log *slog.Logger, opts ...DaemonOption) error {
	d := NewDaemon(cfg, log, opts...)
	if err := d.Start(ctx); err != nil {
		if ctx.Err() != nil {
			return nil // interrupted during start-up: not a failure
		}
		return err
	}
	var serveErr error
	select {
	case <-ctx.Done():
		log.Info("shutting down", "cause", context.Cause(ctx))
	case serveErr = <-d.Err():
		serveErr = fmt.Errorf("http: %w", serveErr)
	}
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout())
	defer cancel()
	if err := d.Shutdown(sctx); err != nil {
		return errors.Join(serveErr, fmt.Errorf("shutdown: %w", err))
	}
	if serveErr == nil {
		log.Info("stopped")
	}
	return serveErr
}
