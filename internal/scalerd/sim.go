package scalerd

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/a2abus/a2abus/scaler"
)

// traceFiles is a repeatable --trace flag.
type traceFiles []string

func (t *traceFiles) String() string { return strings.Join(*t, ",") }

func (t *traceFiles) Set(v string) error {
	if v == "" {
		return errors.New("empty file name")
	}
	*t = append(*t, v)
	return nil
}

// simCmd runs "scalerd sim [flags]".
func simCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("scalerd sim", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	asJSON := fs.Bool("json", false, "print one JSON object per trace and policy")
	var files traceFiles
	fs.Var(&files, "trace", "replay the CSV `FILE` of seconds,arrivals_per_second rows (repeatable; default: the built-in traces)")
	model := scaler.DefaultModel()
	kcfg := scaler.DefaultKEDAConfig()
	fs.Float64Var(&model.Capacity, "capacity", model.Capacity, "messages per second one consumer handles")
	fs.DurationVar(&model.StartupDelay, "startup-delay", model.StartupDelay, "time from a scale-up until the new consumers pull (whole seconds)")
	fs.DurationVar(&model.HandlerTime, "handler-time", model.HandlerTime, "time a handler holds a message before it acks")
	fs.DurationVar(&model.Interval, "interval", model.Interval, "time between decisions, for both policies (whole seconds)")
	fs.Float64Var(&kcfg.LagThreshold, "lag-threshold", kcfg.LagThreshold, "the baseline's KEDA lagThreshold")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stdout, "Usage: scalerd sim [--json] [--trace FILE ...] [flags]")
			fs.SetOutput(stdout)
			fs.PrintDefaults()
			return exitOK
		}
		fmt.Fprintf(stderr, "scalerd: sim: %v\n", err)
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "scalerd: sim: unexpected argument %q (traces go in --trace)\n", fs.Arg(0))
		return exitUsage
	}
	if err := checkFlags(model, kcfg); err != nil {
		fmt.Fprintf(stderr, "scalerd: sim: %v\n", err)
		return exitUsage
	}

	traces := scaler.BuiltinTraces()
	if len(files) > 0 {
		traces = traces[:0]
		for _, name := range files {
			tr, err := readTrace(name)
			if err != nil {
				fmt.Fprintf(stderr, "scalerd: sim: %v\n", err)
				return exitError
			}
			traces = append(traces, tr)
		}
	}
	cfg := scaler.DefaultConfig()
	var results []scaler.Result
	for _, tr := range traces {
		if err := ctx.Err(); err != nil {
			fmt.Fprintf(stderr, "scalerd: sim: %v\n", context.Cause(ctx))
			return exitError
		}
		res, err := scaler.Compare([]scaler.Trace{tr}, cfg, kcfg, model)
		if err != nil {
			fmt.Fprintf(stderr, "scalerd: sim: %v\n", err)
			return exitError
		}
		results = append(results, res...)
	}
	var err error
	if *asJSON {
		err = writeJSON(stdout, results)
	} else {
		err = writeTable(stdout, results, model, kcfg)
	}
	if err != nil {
		fmt.Fprintf(stderr, "scalerd: sim: %v\n", err)
		return exitError
	}
	return exitOK
}

// checkFlags reports a model or baseline setting out of range by its flag.
func checkFlags(m scaler.Model, k scaler.KEDAConfig) error {
	whole := func(d time.Duration) bool { return d%time.Second == 0 }
	switch {
	case !(m.Capacity > 0) || math.IsInf(m.Capacity, 0):
		return fmt.Errorf("--capacity %v: want a number > 0", m.Capacity)
	case m.StartupDelay < 0 || !whole(m.StartupDelay):
		return fmt.Errorf("--startup-delay %v: want whole seconds >= 0", m.StartupDelay)
	case m.HandlerTime < 0:
		return fmt.Errorf("--handler-time %v: want >= 0", m.HandlerTime)
	case m.Interval < time.Second || !whole(m.Interval):
		return fmt.Errorf("--interval %v: want whole seconds >= 1s", m.Interval)
	case !(k.LagThreshold > 0) || math.IsInf(k.LagThreshold, 0):
		return fmt.Errorf("--lag-threshold %v: want a number > 0", k.LagThreshold)
	}
	return nil
}

// readTrace parses the CSV trace in the file name; the trace is named after
// the file's base name.
func readTrace(name string) (scaler.Trace, error) {
	f, err := os.Open(name)
	if err != nil {
		return scaler.Trace{}, fmt.Errorf("--trace: %w", err)
	}
	defer f.Close()
	return scaler.ParseTrace(filepath.Base(name), f)
}

func writeJSON(w io.Writer, results []scaler.Result) error {
	enc := json.NewEncoder(w)
	for _, r := range results {
		if err := enc.Encode(r); err != nil {
			return err
		}
	}
	return nil
}

// writeTable prints, per trace, the a2abus policy beside the baseline with
// the ratios of their backlog·seconds and consumer·seconds.
func writeTable(w io.Writer, results []scaler.Result, m scaler.Model, k scaler.KEDAConfig) error {
	fmt.Fprintf(w, "pool: %g msgs/s per consumer, %v per message, %v start-up, a decision every %v; keda lagThreshold %g\n",
		m.Capacity, m.HandlerTime, m.StartupDelay, m.Interval, k.LagThreshold)
	fmt.Fprintln(w, "backlog·s: messages waiting for a consumer, summed over seconds; consumer·s: consumers (starting ones too), summed over seconds;")
	fmt.Fprintf(w, "reversals: changes of scaling direction (in brackets: within %v of the previous step)\n\n", m.ReversalWindow)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "trace\t"+
		"backlog·s a2abus\tkeda\tratio\t"+
		"consumer·s a2abus\tkeda\tratio\t"+
		"peak backlog a2abus\tkeda\t"+
		"scale events a2abus\tkeda\t"+
		"reversals a2abus\tkeda\t")
	for i := 0; i+1 < len(results); i += 2 {
		a, b := results[i], results[i+1]
		fmt.Fprintf(tw, "%s\t%.0f\t%.0f\t%s\t%.0f\t%.0f\t%s\t%.0f\t%.0f\t%d\t%d\t%d (%d)\t%d (%d)\t\n",
			a.Trace,
			a.BacklogSeconds, b.BacklogSeconds, ratio(a.BacklogSeconds, b.BacklogSeconds),
			a.ConsumerSeconds, b.ConsumerSeconds, ratio(a.ConsumerSeconds, b.ConsumerSeconds),
			a.PeakBacklog, b.PeakBacklog,
			a.ScaleEvents, b.ScaleEvents,
			a.Reversals, a.ReversalsInWindow, b.Reversals, b.ReversalsInWindow)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for i := 0; i+1 < len(results); i += 2 {
		if a, b := results[i], results[i+1]; ratio(a.BacklogSeconds, b.BacklogSeconds) == "inf" {
			fmt.Fprintf(w, "%s: the baseline had no backlog; ours, %.0f message·s, is %.3f s of the trace's mean arrivals\n",
				a.Trace, a.BacklogSeconds, a.BacklogSeconds/meanArrivals(a))
		}
	}
	return nil
}

// meanArrivals is the mean arrival rate of the trace behind r.
func meanArrivals(r scaler.Result) float64 {
	if r.Seconds == 0 || r.Arrived == 0 {
		return math.Inf(1)
	}
	return r.Arrived / float64(r.Seconds)
}

// ratio formats ours/theirs; "-" when both are (about) zero.
func ratio(ours, theirs float64) string {
	switch {
	case ours < 0.5 && theirs < 0.5:
		return "-"
	case theirs < 0.5:
		return "inf"
	}
	return fmt.Sprintf("%.2f", ours/theirs)
}
