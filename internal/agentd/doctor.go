package agentd

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// hostCheck is one kernel or limit setting and the value a2abus recommends.
type hostCheck struct {
	Name string `json:"name"`
	// Field picks a whitespace-separated field of the value (tcp_rmem is
	// "min default max"; the max is what matters), -1 for the whole value.
	Field int `json:"-"`
	// AtLeast is a lower bound, AtMost an upper bound (0: none).
	AtLeast int64  `json:"at_least,omitempty"`
	AtMost  int64  `json:"at_most,omitempty"`
	Fix     string `json:"-"` // the value to set, whole
	Why     string `json:"why"`
}

// hostChecks are what agentd doctor reads, with why each matters to a host
// that carries many connections and a JetStream file store.
var hostChecks = []hostCheck{
	{Name: "net.core.somaxconn", Field: -1, AtLeast: 4096, Fix: "4096", Why: "backlog of connections waiting to be accepted: reconnect storms"},
	{Name: "net.core.rmem_max", Field: -1, AtLeast: 16 << 20, Fix: "16777216", Why: "largest socket receive buffer: routes and batches of up to 16 MiB"},
	{Name: "net.core.wmem_max", Field: -1, AtLeast: 16 << 20, Fix: "16777216", Why: "largest socket send buffer"},
	{Name: "net.ipv4.tcp_rmem", Field: 2, AtLeast: 16 << 20, Fix: "4096 131072 16777216", Why: "TCP receive buffer autotuning bounds (min default max)"},
	{Name: "net.ipv4.tcp_wmem", Field: 2, AtLeast: 16 << 20, Fix: "4096 131072 16777216", Why: "TCP send buffer autotuning bounds (min default max)"},
	{Name: "net.core.netdev_max_backlog", Field: -1, AtLeast: 16384, Fix: "16384", Why: "packets queued when the kernel receives faster than it processes"},
	{Name: "net.ipv4.tcp_max_syn_backlog", Field: -1, AtLeast: 8192, Fix: "8192", Why: "half-open connections kept during a reconnect storm"},
	{Name: "fs.file-max", Field: -1, AtLeast: 1 << 20, Fix: "1048576", Why: "open files on the host: connections and store blocks"},
	{Name: "vm.swappiness", Field: -1, AtMost: 10, Fix: "10", Why: "swapping the server's caches out stalls every client"},
	{Name: "vm.dirty_ratio", Field: -1, AtMost: 20, Fix: "15", Why: "dirty pages before writers block: JetStream writes in bursts"},
}

// openFilesNeeded is the open-file limit agentd's process should have: the
// embedded server's max_connections (65536) and its store's files.
const openFilesNeeded = 65536

// hostReading is a check's outcome.
type hostReading struct {
	hostCheck
	Value  string `json:"value"`  // as read; "" when unreadable
	Status string `json:"status"` // ok, low, high or unknown
	Err    string `json:"error,omitempty"`
}

// readHost reads every check under procSys (normally /proc/sys) and the
// open-file limit that nofile returns.
func readHost(procSys string, nofile func() (soft, hard uint64, err error)) []hostReading {
	out := make([]hostReading, 0, len(hostChecks)+1)
	for _, c := range hostChecks {
		r := hostReading{hostCheck: c, Status: "unknown"}
		raw, err := os.ReadFile(filepath.Join(procSys, strings.ReplaceAll(c.Name, ".", "/")))
		if err != nil {
			r.Err = err.Error()
			out = append(out, r)
			continue
		}
		r.Value = strings.Join(strings.Fields(string(raw)), " ")
		field := r.Value
		if c.Field >= 0 {
			fs := strings.Fields(r.Value)
			if c.Field >= len(fs) {
				r.Err = fmt.Sprintf("want %d fields", c.Field+1)
				out = append(out, r)
				continue
			}
			field = fs[c.Field]
		}
		n, err := strconv.ParseInt(field, 10, 64)
		switch {
		case err != nil:
			r.Err = "not a number"
		case c.AtLeast > 0 && n < c.AtLeast:
			r.Status = "low"
		case c.AtMost > 0 && n > c.AtMost:
			r.Status = "high"
		default:
			r.Status = "ok"
		}
		out = append(out, r)
	}
	r := hostReading{hostCheck: hostCheck{Name: "open files (ulimit -n)", AtLeast: openFilesNeeded,
		Why: "agentd's own limit: every connection and store file is one"}, Status: "unknown"}
	if soft, hard, err := nofile(); err != nil {
		r.Err = err.Error()
	} else {
		r.Value = fmt.Sprintf("%d (hard %d)", soft, hard)
		r.Status = "ok"
		if soft < openFilesNeeded {
			r.Status = "low"
		}
	}
	return append(out, r)
}

func (r hostReading) want() string {
	switch {
	case r.AtLeast > 0:
		return fmt.Sprintf(">= %d", r.AtLeast)
	case r.AtMost > 0:
		return fmt.Sprintf("<= %d", r.AtMost)
	}
	return ""
}

// doctorCmd runs "agentd doctor [--json]": the host's settings beside the
// recommended ones, and the commands that fix those that are off. It only
// reads; it exits 0 whatever it finds.
func doctorCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("agentd doctor", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	asJSON := fs.Bool("json", false, "print the readings as one JSON object")
	if err := fs.Parse(args); err != nil || fs.NArg() > 0 {
		if err == flag.ErrHelp {
			fmt.Fprintln(stdout, "Usage: agentd doctor [--json]")
			return exitOK
		}
		if err == nil {
			err = fmt.Errorf("unexpected argument %q", fs.Arg(0))
		}
		fmt.Fprintf(stderr, "agentd: doctor: %v\n", err)
		return exitUsage
	}
	readings := readHost("/proc/sys", openFileLimit)
	if *asJSON {
		if err := json.NewEncoder(stdout).Encode(map[string]any{"checks": readings}); err != nil {
			fmt.Fprintf(stderr, "agentd: doctor: %v\n", err)
			return exitError
		}
		return exitOK
	}
	writeDoctor(stdout, readings)
	return exitOK
}

func writeDoctor(w io.Writer, readings []hostReading) {
	fmt.Fprintf(w, "%-30s %-24s %-14s %s\n", "setting", "value", "recommended", "status")
	var sysctls []string
	nofileLow := false
	for _, r := range readings {
		value := r.Value
		if r.Err != "" {
			value = "? (" + r.Err + ")"
		}
		fmt.Fprintf(w, "%-30s %-24s %-14s %s\n", r.Name, value, r.want(), r.Status)
		switch {
		case r.Status != "low" && r.Status != "high":
		case r.Fix != "":
			sysctls = append(sysctls, fmt.Sprintf("%s = %s", r.Name, r.Fix))
		default:
			nofileLow = true
		}
	}
	if len(sysctls) == 0 && !nofileLow {
		fmt.Fprintln(w, "\nEvery setting that could be read is as recommended.")
		return
	}
	fmt.Fprintln(w, "\nTo fix, as root:")
	for _, s := range sysctls {
		name, value, _ := strings.Cut(s, " = ")
		fmt.Fprintf(w, "  sysctl -w %s=%q\n", name, value)
	}
	if len(sysctls) > 0 {
		fmt.Fprintln(w, "and to keep them across reboots, put these lines in /etc/sysctl.d/99-a2abus.conf:")
		for _, s := range sysctls {
			fmt.Fprintf(w, "  %s\n", s)
		}
	}
	if nofileLow {
		fmt.Fprintf(w, "Open files: start agentd with `ulimit -n %d` (or LimitNOFILE=%d in its systemd unit,\n"+
			"ulimits: nofile: %d in compose).\n", openFilesNeeded, openFilesNeeded, openFilesNeeded)
	}
}
