package codeccmd

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func run(t *testing.T, stdin []byte, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = Run(context.Background(), args, bytes.NewReader(stdin), &out, &errOut)
	return out.String(), errOut.String(), code
}

// jsonEqual compares two JSON documents as values (key order ignored,
// numbers compared as written).
func jsonEqual(t *testing.T, a, b string) bool {
	t.Helper()
	var va, vb any
	da := json.NewDecoder(strings.NewReader(a))
	da.UseNumber()
	db := json.NewDecoder(strings.NewReader(b))
	db.UseNumber()
	if err := da.Decode(&va); err != nil {
		t.Fatalf("bad JSON %q: %v", a, err)
	}
	if err := db.Decode(&vb); err != nil {
		t.Fatalf("bad JSON %q: %v", b, err)
	}
	ja, _ := json.Marshal(va)
	jb, _ := json.Marshal(vb)
	return bytes.Equal(ja, jb)
}

func vectors(t *testing.T) []string {
	t.Helper()
	bins, err := filepath.Glob("../../codec/testdata/*/*.bin")
	if err != nil || len(bins) == 0 {
		t.Fatalf("no vectors: %v", err)
	}
	return bins
}

// TestDecodeVectors decodes every Python-made frame, from a file and from
// stdin, to the JSON beside it.
func TestDecodeVectors(t *testing.T) {
	for _, bin := range vectors(t) {
		t.Run(filepath.Base(bin), func(t *testing.T) {
			want, err := os.ReadFile(strings.TrimSuffix(bin, ".bin") + ".json")
			if err != nil {
				t.Fatal(err)
			}
			out, errOut, code := run(t, nil, "decode", bin)
			if code != 0 || errOut != "" {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			if !jsonEqual(t, out, string(want)) {
				t.Fatalf("decode gives\n%.300s\nwant\n%.300s", out, want)
			}
			frame, _ := os.ReadFile(bin)
			out2, _, code := run(t, frame, "decode", "--compact", "-")
			if code != 0 || !jsonEqual(t, out2, out) || strings.Count(out2, "\n") != 1 {
				t.Fatalf("decode from stdin: exit %d", code)
			}
		})
	}
}

// TestEncodeDecodeRoundTrip encodes each vector's JSON with every
// compression and decodes it back to the same JSON. With lz4 (the
// default), frames of the seed vectors are byte-identical to Python's.
func TestEncodeDecodeRoundTrip(t *testing.T) {
	for _, bin := range vectors(t) {
		js, err := os.ReadFile(strings.TrimSuffix(bin, ".bin") + ".json")
		if err != nil {
			t.Fatal(err)
		}
		for _, comp := range []string{"", "auto", "lz4", "s2", "zstd", "none"} {
			t.Run(filepath.Base(bin)+"/"+comp, func(t *testing.T) {
				args := []string{"encode"}
				if comp != "" {
					args = append(args, "--compress", comp)
				}
				frame, errOut, code := run(t, js, append(args, "-")...)
				if code != 0 {
					t.Fatalf("encode exit %d: %s", code, errOut)
				}
				if (comp == "" || comp == "lz4") && strings.Contains(bin, "seed-python") {
					want, _ := os.ReadFile(bin)
					if frame != string(want) {
						t.Fatalf("frame differs from Python's")
					}
				}
				out, errOut, code := run(t, []byte(frame), "decode")
				if code != 0 {
					t.Fatalf("decode exit %d: %s", code, errOut)
				}
				if !jsonEqual(t, out, string(js)) {
					t.Fatalf("round trip gives %.200s", out)
				}
			})
		}
	}
}

func TestExactIntegersAndBytes(t *testing.T) {
	const in = `{"max":18446744073709551615,"min":-9223372036854775808,"f":1.0,"b":{"$bytes":"AP8="}}`
	frame, _, code := run(t, []byte(in), "encode")
	if code != 0 {
		t.Fatal(code)
	}
	out, _, code := run(t, []byte(frame), "decode", "--compact")
	if code != 0 || out != in+"\n" {
		t.Fatalf("got %q (exit %d)", out, code)
	}
}

func TestErrors(t *testing.T) {
	dir := t.TempDir()
	junk := filepath.Join(dir, "junk.bin")
	if err := os.WriteFile(junk, []byte("XYZ\x80"), 0o644); err != nil {
		t.Fatal(err)
	}
	big := append([]byte("RAW\xc4\xff"), make([]byte, 255)...)
	tests := []struct {
		name     string
		args     []string
		stdin    string
		wantCode int
		wantErr  string
	}{
		{"no command", nil, "", 2, "usage"},
		{"unknown command", []string{"frob"}, "", 2, "unknown command"},
		{"bad flag", []string{"decode", "--nope"}, "", 2, "flag provided but not defined"},
		{"two files", []string{"decode", "a", "b"}, "", 2, "want one FILE"},
		{"bad compression", []string{"encode", "--compress", "gzip"}, "{}", 2, "gzip"},
		{"bad max size", []string{"decode", "--max-size", "0"}, "", 2, "max size"},
		{"missing file", []string{"decode", filepath.Join(dir, "nope.bin")}, "", 1, "no such file"},
		{"unknown tag", []string{"decode", junk}, "", 1, "unknown frame tag"},
		{"truncated frame", []string{"decode"}, "LZ4\x04\x22", 1, "corrupt"},
		{"bad msgpack", []string{"decode"}, "RAW\xc1", 1, "corrupt"},
		{"empty input", []string{"decode"}, "", 1, "corrupt"},
		{"too large", []string{"decode", "--max-size", "100"}, string(big), 1, "exceeds max size"},
		{"input too large", []string{"decode", "--max-size", "100"}, string(make([]byte, 2000)), 1, "larger than"},
		{"bad JSON", []string{"encode"}, `{"a":`, 1, "JSON"},
		{"trailing JSON", []string{"encode"}, `{} {}`, 1, "after the top-level value"},
		{"integer out of range", []string{"encode"}, `18446744073709551616`, 1, "outside"},
		{"encoded too large", []string{"encode", "--max-size", "10"}, `"a long string here"`, 1, "max size"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, errOut, code := run(t, []byte(tt.stdin), tt.args...)
			if code != tt.wantCode {
				t.Fatalf("exit %d, want %d (stderr %q)", code, tt.wantCode, errOut)
			}
			if !strings.Contains(errOut, tt.wantErr) {
				t.Fatalf("stderr %q lacks %q", errOut, tt.wantErr)
			}
			if tt.wantCode == 1 && (out != "" || strings.Count(errOut, "\n") != 1) {
				t.Fatalf("want no output and one error line; stdout %q stderr %q", out, errOut)
			}
		})
	}
}

func TestHelp(t *testing.T) {
	out, _, code := run(t, nil, "help")
	if code != 0 || !strings.Contains(out, "agentd codec decode") {
		t.Fatalf("help: exit %d %q", code, out)
	}
	_, errOut, code := run(t, nil, "encode", "-h")
	if code != 0 || !strings.Contains(errOut, "--compress") {
		t.Fatalf("encode -h: exit %d %q", code, errOut)
	}
}

func TestCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var out, errOut bytes.Buffer
	if code := Run(ctx, []string{"decode"}, strings.NewReader("RAW\x80"), &out, &errOut); code != 1 {
		t.Fatalf("exit %d", code)
	}
}

func ExampleRun() {
	ctx := context.Background()
	var frame bytes.Buffer
	Run(ctx, []string{"encode", "--compress", "none"}, strings.NewReader(`{"id":"m-1","n":1}`), &frame, os.Stderr)
	Run(ctx, []string{"decode", "--compact"}, &frame, os.Stdout, os.Stderr)
	// Output: {"id":"m-1","n":1}
}
