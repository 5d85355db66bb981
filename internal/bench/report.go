package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
)

// WriteThroughput prints res as a table, or with asJSON as one JSON object
// on the last line.
func WriteThroughput(w io.Writer, res ThroughputResult, asJSON bool) error {
	if asJSON {
		return json.NewEncoder(w).Encode(res)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "party\tsenders\tmsgs\terrors\tseconds\tmsgs/s\tstored ok\tbatches\tavg batch\t\n")
	for _, r := range res.Runs {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%.3f\t%.0f\t%v\t%d\t%.1f\t\n",
			r.Party, r.Senders, r.Msgs, r.Errors, r.Seconds, r.MsgsPerS, r.StoredOK, r.Batches, r.AvgBatch)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "\n%d B messages to %d destinations, best of each party:\n"+
		"  bus     %12.0f msgs/s\n  raw JS  %12.0f msgs/s   bus/raw JS = %.2f\n  core    %12.0f msgs/s   bus/core   = %.2f\n",
		res.MsgSize, res.Destinations, res.BusMsgsPerS, res.RawJSMsgsPerS, res.RatioVsRawJS, res.CoreMsgsPerS, res.RatioVsCore)
	if err == nil && res.TraceSampling > 0 {
		_, err = fmt.Fprintf(w, "  bus traced (sampling %g) %12.0f msgs/s   traced/bus = %.3f   (%d B of spans exported)\n",
			res.TraceSampling, res.BusTracedMsgsPerS, res.RatioTracedVsBus, res.TraceExportBytes)
	}
	return err
}

// WriteLatency prints res as a table, or with asJSON as one JSON object
// on the last line.
func WriteLatency(w io.Writer, res LatencyResult, asJSON bool) error {
	if asJSON {
		return json.NewEncoder(w).Encode(res)
	}
	_, err := fmt.Fprintf(w, "round trips of %d B, %d sequential requests each:\n"+
		"                 p50 µs    p99 µs   p50 vs core   p50 vs raw JS\n"+
		"  core NATS    %8.1f  %8.1f\n"+
		"  raw JS       %8.1f  %8.1f   %.2f\n"+
		"  bus direct   %8.1f  %8.1f   %.2f\n"+
		"  bus durable  %8.1f  %8.1f   %.2f          %.2f\n",
		res.MsgSize, res.Requests, res.CoreP50us, res.CoreP99us,
		res.RawJSP50us, res.RawJSP99us, ratio(res.RawJSP50us, res.CoreP50us),
		res.DirectP50us, res.DirectP99us, res.DirectVsCore,
		res.DurableP50us, res.DurableP99us, res.DurableVsCore, res.DurableVsRawJS)
	return err
}

// WriteE2E prints res as a few lines, or with asJSON as one JSON object on
// the last line.
func WriteE2E(w io.Writer, res E2EResult, asJSON bool) error {
	if asJSON {
		return json.NewEncoder(w).Encode(res)
	}
	_, err := fmt.Fprintf(w, "send → handler → ack, %d messages of %d B to %d destinations:\n"+
		"  bus     %12.0f msgs/s\n  raw JS  %12.0f msgs/s   bus/raw JS = %.2f\n",
		res.Msgs, res.MsgSize, res.Destinations, res.BusMsgsPerS, res.RawJSMsgsPerS, res.RatioVsRawJS)
	return err
}
