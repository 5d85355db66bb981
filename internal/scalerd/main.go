package scalerd

import (
	"context"
	"fmt"
	"io"
	"strings"
)

// Exit codes of Main.
const (
	exitOK    = 0
	exitError = 1 // the command failed at run time
	exitUsage = 2 // bad command, flags or arguments
)

const usageText = `Usage:
  scalerd sim [--json] [--trace FILE ...] [flags]
      Replay load traces against a simulated consumer pool under the a2abus
      scaling policy and a KEDA/HPA-style baseline, and print what each cost:
      peak backlog, backlog·seconds, consumer·seconds, scale events and
      reversals. Without --trace the built-in traces run (step, ramp, spike,
      diurnal, noisy-flat, sawtooth). See "scalerd sim --help" for the flags.

The scaler daemon itself (scalerd --nats URL) is not built yet.
`

// Main runs the scalerd command line with args (without the program name)
// and returns the process exit code. Errors are written to stderr as one
// line. stdin and lookupEnv are unused for now; they are there so that the
// daemon can come without changing the signature.
func Main(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, lookupEnv func(string) (string, bool)) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, "scalerd: name a command; the daemon is not built yet\n\n"+usageText)
		return exitUsage
	}
	switch cmd, rest := args[0], args[1:]; cmd {
	case "sim":
		return simCmd(ctx, rest, stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usageText)
		return exitOK
	default:
		what := fmt.Sprintf("unknown command %q", cmd)
		if strings.HasPrefix(cmd, "-") {
			what = fmt.Sprintf("flag %s: the daemon is not built yet", cmd)
		}
		fmt.Fprintf(stderr, "scalerd: %s (want sim)\n\n%s", what, usageText)
		return exitUsage
	}
}
