package scalerd

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
)

func run(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = Main(context.Background(), args, strings.NewReader(""), &out, &errOut, func(string) (string, bool) { return "", false })
	return code, out.String(), errOut.String()
}

// jsonLines parses stdout as one JSON object per line.
func jsonLines(t *testing.T, stdout string) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(stdout))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		out = append(out, m)
	}
	return out
}

func TestSimJSON(t *testing.T) {
	code, stdout, stderr := run(t, "sim", "--json")
	if code != exitOK || stderr != "" {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	lines := jsonLines(t, stdout)
	wantTraces := []string{"step", "ramp", "spike", "diurnal", "noisy-flat", "sawtooth"}
	if len(lines) != 2*len(wantTraces) {
		t.Fatalf("%d lines, want %d", len(lines), 2*len(wantTraces))
	}
	for i, m := range lines {
		for _, f := range []string{"trace", "policy", "peak_backlog", "backlog_seconds", "consumer_seconds", "scale_events", "reversals"} {
			if _, ok := m[f]; !ok {
				t.Errorf("line %d has no %q: %v", i, f, m)
			}
		}
		wantPolicy := []string{"a2abus", "keda"}[i%2]
		if m["trace"] != wantTraces[i/2] || m["policy"] != wantPolicy {
			t.Errorf("line %d: trace %v policy %v, want %s %s", i, m["trace"], m["policy"], wantTraces[i/2], wantPolicy)
		}
		if cs, _ := m["consumer_seconds"].(float64); cs <= 0 {
			t.Errorf("line %d: consumer_seconds %v", i, m["consumer_seconds"])
		}
	}
}

func TestSimTable(t *testing.T) {
	code, stdout, stderr := run(t, "sim")
	if code != exitOK || stderr != "" {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	for _, want := range []string{"backlog·s a2abus", "consumer·s a2abus", "ratio", "keda lagThreshold 6", "noisy-flat", "sawtooth"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("table has no %q:\n%s", want, stdout)
		}
	}
}

func TestSimTraceFiles(t *testing.T) {
	code, stdout, stderr := run(t, "sim", "--json", "--trace", "testdata/flash-crowd.csv", "--trace=testdata/steps.csv", "--lag-threshold", "10")
	if code != exitOK || stderr != "" {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	lines := jsonLines(t, stdout)
	if len(lines) != 4 {
		t.Fatalf("%d lines, want 4", len(lines))
	}
	for i, want := range []string{"flash-crowd.csv", "flash-crowd.csv", "steps.csv", "steps.csv"} {
		if lines[i]["trace"] != want {
			t.Errorf("line %d: trace %v, want %s", i, lines[i]["trace"], want)
		}
	}
	if s := lines[2]["seconds"]; s != float64(1801) {
		t.Errorf("steps.csv: %v seconds, want 1801", s)
	}
	// The table names the file too.
	if code, stdout, _ := run(t, "sim", "--trace", "testdata/steps.csv"); code != exitOK || !strings.Contains(stdout, "steps.csv") {
		t.Errorf("table: exit %d\n%s", code, stdout)
	}
}

func TestSimTraceFileErrors(t *testing.T) {
	tests := []struct {
		name string
		file string
		want string
	}{
		{name: "bad row", file: "testdata/bad.csv", want: `bad.csv line 3: scaler: bad trace: arrivals_per_second "lots": not a number`},
		{name: "missing", file: "testdata/nope.csv", want: "--trace: open testdata/nope.csv"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := run(t, "sim", "--trace", tt.file)
			if code != exitError || stdout != "" || !strings.Contains(stderr, tt.want) || strings.Count(stderr, "\n") != 1 {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit 1 and one line with %q", code, stdout, stderr, tt.want)
			}
		})
	}
}

func TestSimBadFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{name: "unknown flag", args: []string{"--bogus"}, want: "-bogus"},
		{name: "bad number", args: []string{"--lag-threshold", "many"}, want: "-lag-threshold"},
		{name: "zero threshold", args: []string{"--lag-threshold", "0"}, want: "--lag-threshold 0"},
		{name: "zero capacity", args: []string{"--capacity=0"}, want: "--capacity 0"},
		{name: "fractional interval", args: []string{"--interval", "1500ms"}, want: "--interval 1.5s"},
		{name: "negative start-up", args: []string{"--startup-delay", "-1s"}, want: "--startup-delay -1s"},
		{name: "negative handler time", args: []string{"--handler-time", "-1ms"}, want: "--handler-time -1ms"},
		{name: "empty trace", args: []string{"--trace", ""}, want: "-trace"},
		{name: "missing value", args: []string{"--trace"}, want: "-trace"},
		{name: "argument", args: []string{"steps.csv"}, want: `unexpected argument "steps.csv"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := run(t, append([]string{"sim"}, tt.args...)...)
			if code != exitUsage || stdout != "" || !strings.Contains(stderr, tt.want) || strings.Count(stderr, "\n") != 1 {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit 2 and one line with %q", code, stdout, stderr, tt.want)
			}
		})
	}
}

func TestUsage(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		wantCode int
		inStdout bool
		want     string
	}{
		{name: "unknown command", args: []string{"bogus"}, wantCode: exitUsage, want: `unknown command "bogus"`},
		{name: "help", args: []string{"help"}, wantCode: exitOK, inStdout: true, want: "scalerd sim [--json] [--trace FILE ...]"},
		{name: "--help", args: []string{"--help"}, wantCode: exitOK, inStdout: true, want: "-max-consumers"},
		{name: "run --help", args: []string{"run", "--help"}, wantCode: exitOK, inStdout: true, want: "-dry-run"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := run(t, tt.args...)
			text := stderr
			if tt.inStdout {
				text = stdout
			}
			if code != tt.wantCode || !strings.Contains(text, tt.want) || !strings.Contains(text, "scalerd [flags]") {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit %d and %q", code, stdout, stderr, tt.wantCode, tt.want)
			}
		})
	}
	if code, stdout, _ := run(t, "sim", "--help"); code != exitOK || !strings.Contains(stdout, "-lag-threshold") {
		t.Errorf("sim --help: exit %d\n%s", code, stdout)
	}
}
