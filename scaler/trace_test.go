package scaler

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestParseTrace(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []float64
		wantErr error
		errText string
	}{
		{name: "rows", in: "0,10\n1,20\n2,30\n", want: []float64{10, 20, 30}},
		{name: "header, blanks, comments, spaces, CRLF", in: "# a trace\n\nseconds, arrivals_per_second\r\n 0 , 5 \r\n\r\n1,6.5\r\n", want: []float64{5, 6.5}},
		{name: "gaps hold the rate", in: "0,10\n3,40\n", want: []float64{10, 10, 10, 40}},
		{name: "late start has no arrivals", in: "2,7\n", want: []float64{0, 0, 7}},
		{name: "whole seconds as floats", in: "0.0,1\n1e0,2\n", want: []float64{1, 2}},
		{name: "empty", in: "", wantErr: ErrBadTrace, errText: "no rows"},
		{name: "header only", in: "seconds,arrivals_per_second\n", wantErr: ErrBadTrace, errText: "no rows"},
		{name: "second header", in: "seconds,rate\n0,1\nseconds,rate\n", wantErr: ErrBadTrace, errText: "line 3"},
		{name: "one field", in: "0,1\n1\n", wantErr: ErrBadTrace, errText: "line 2: scaler: bad trace: want seconds,arrivals_per_second"},
		{name: "three fields", in: "0,1,2\n", wantErr: ErrBadTrace, errText: "line 1: scaler: bad trace: want 2 fields, got 3"},
		{name: "bad rate", in: "0,1\n1,lots\n", wantErr: ErrBadTrace, errText: `line 2: scaler: bad trace: arrivals_per_second "lots": not a number`},
		{name: "negative rate", in: "0,-1\n", wantErr: ErrBadTrace, errText: "line 1: scaler: bad trace: arrivals_per_second \"-1\": want >= 0"},
		{name: "NaN rate", in: "0,NaN\n", wantErr: ErrBadTrace, errText: "want >= 0"},
		{name: "rate too large", in: "0,1e12\n", wantErr: ErrTraceTooLarge, errText: "line 1"},
		{name: "infinite rate", in: "0,1e400\n", wantErr: ErrTraceTooLarge, errText: "line 1"},
		{name: "negative seconds", in: "-1,1\n", wantErr: ErrBadTrace, errText: "want a whole number >= 0"},
		{name: "fractional seconds", in: "0,1\n0.5,1\n", wantErr: ErrBadTrace, errText: "line 2"},
		{name: "seconds not increasing", in: "0,1\n5,1\n5,2\n", wantErr: ErrBadTrace, errText: "line 3: scaler: bad trace: seconds 5 not after 5"},
		{name: "seconds going back", in: "0,1\n5,1\n\n3,2\n", wantErr: ErrBadTrace, errText: "line 4"},
		{name: "too long", in: "0,1\n604800,1\n", wantErr: ErrTraceTooLarge, errText: "line 2"},
		{name: "line too long", in: "0,1\n1," + strings.Repeat("1", MaxTraceLine) + "\n", wantErr: ErrTraceTooLarge, errText: "line 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr, err := ParseTrace("t.csv", strings.NewReader(tt.in))
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("ParseTrace() error %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				if !strings.Contains(err.Error(), tt.errText) || !strings.HasPrefix(err.Error(), "t.csv") {
					t.Errorf("error %q, want it to start with the name and contain %q", err, tt.errText)
				}
				return
			}
			if tr.Name != "t.csv" || !slices.Equal(tr.Rates, tt.want) {
				t.Errorf("ParseTrace() = %q %v, want %v", tr.Name, tr.Rates, tt.want)
			}
		})
	}
}

func TestWriteTraceRoundTrip(t *testing.T) {
	for _, tr := range BuiltinTraces() {
		var b bytes.Buffer
		if err := WriteTrace(&b, tr); err != nil {
			t.Fatal(err)
		}
		got, err := ParseTrace(tr.Name, &b)
		if err != nil {
			t.Fatalf("%s: %v", tr.Name, err)
		}
		if !slices.Equal(got.Rates, tr.Rates) {
			t.Errorf("%s: round trip changed the rates", tr.Name)
		}
	}
}

func TestGenerate(t *testing.T) {
	for _, shape := range Shapes {
		spec := TraceSpec{Shape: shape, Seconds: 1200, Base: 100, Peak: 500, Period: 300, Noise: 0.1, Seed: 9}
		a, err := spec.Generate()
		if err != nil {
			t.Fatalf("%s: %v", shape, err)
		}
		b, _ := spec.Generate()
		if a.Name != shape || len(a.Rates) != 1200 || !slices.Equal(a.Rates, b.Rates) {
			t.Errorf("%s: name %q, %d seconds, reproducible %v", shape, a.Name, len(a.Rates), slices.Equal(a.Rates, b.Rates))
		}
		spec.Seed = 10
		if c, _ := spec.Generate(); slices.Equal(a.Rates, c.Rates) {
			t.Errorf("%s: another seed gave the same trace", shape)
		}
		for i, r := range a.Rates {
			if r < 0 {
				t.Fatalf("%s: negative rate %v at %d", shape, r, i)
			}
		}
	}
	if _, err := (TraceSpec{Shape: "zigzag", Seconds: 10}).Generate(); !errors.Is(err, ErrUnknownTrace) {
		t.Errorf("unknown shape: %v", err)
	}
	if _, err := (TraceSpec{Shape: "step", Seconds: 0}).Generate(); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("zero seconds: %v", err)
	}
	if _, err := (TraceSpec{Shape: "step", Seconds: 10, Base: -1}).Generate(); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("negative base: %v", err)
	}
	names := map[string]bool{}
	for _, tr := range BuiltinTraces() {
		names[tr.Name] = true
	}
	for _, want := range []string{"step", "ramp", "spike", "diurnal", "noisy-flat", "sawtooth"} {
		if !names[want] {
			t.Errorf("no built-in trace %q", want)
		}
	}
}

func FuzzParseTrace(f *testing.F) {
	for _, s := range []string{
		"0,10\n1,20\n", "seconds,arrivals_per_second\r\n0,1\r\n", "# c\n\n5,1.5e3\n", "0,1\n0,1\n",
		"0,1,2\n", "x\n", "0,NaN\n", "1e5,1\n3,4\n", "-0,0\n", "0,1e308\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		tr, err := ParseTrace("fuzz", bytes.NewReader(in))
		if err != nil {
			if !errors.Is(err, ErrBadTrace) && !errors.Is(err, ErrTraceTooLarge) {
				t.Fatalf("error wraps no sentinel: %v", err)
			}
			return
		}
		if len(tr.Rates) == 0 || len(tr.Rates) > MaxTraceSeconds {
			t.Fatalf("%d seconds", len(tr.Rates))
		}
		for _, r := range tr.Rates {
			if !(r >= 0 && r <= MaxTraceRate) {
				t.Fatalf("rate %v", r)
			}
		}
		// What parses writes back and parses to the same rates.
		var b bytes.Buffer
		if err := WriteTrace(&b, tr); err != nil {
			t.Fatal(err)
		}
		again, err := ParseTrace("fuzz", &b)
		if err != nil || !slices.Equal(again.Rates, tr.Rates) {
			t.Fatalf("round trip: %v", err)
		}
	})
}

func BenchmarkParseTrace(b *testing.B) {
	var buf bytes.Buffer
	if err := WriteTrace(&buf, BuiltinTraces()[3]); err != nil {
		b.Fatal(err)
	}
	in := buf.Bytes()
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseTrace("diurnal", bytes.NewReader(in)); err != nil {
			b.Fatal(err)
		}
	}
}
