package scaler

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
)

// Trace is a load trace: Rates[i] messages arrive in second i.
type Trace struct {
	Name  string
	Rates []float64
}

// Limits of ParseTrace.
const (
	// MaxTraceSeconds is the longest trace: one week.
	MaxTraceSeconds = 7 * 24 * 3600
	// MaxTraceLine is the longest line, in bytes.
	MaxTraceLine = 1024
	// MaxTraceRate is the highest arrival rate, in messages per second.
	MaxTraceRate = 1e9
)

// ParseTrace reads a CSV trace of "seconds,arrivals_per_second" rows. Seconds
// are whole, start anywhere from 0 and increase strictly; a row's rate holds
// until the next row's second, and the last row's for one second. Seconds
// before the first row have no arrivals. A first line that is not numeric
// is taken as a header; blank lines, lines starting with '#' and spaces
// around fields are ignored; "\r\n" line ends are fine. A bad row gives an
// error wrapping ErrBadTrace (or ErrTraceTooLarge) that names its line.
func ParseTrace(name string, r io.Reader) (Trace, error) {
	tr := Trace{Name: name}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), MaxTraceLine)
	line, rows := 0, 0
	prev := -1
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" || text[0] == '#' {
			continue
		}
		sec, rate, err := parseRow(text)
		if err != nil {
			if rows == 0 && !errors.Is(err, ErrTraceTooLarge) && isHeader(text) {
				rows = -1 // a header; the next row is the first
				continue
			}
			return Trace{}, fmt.Errorf("%s line %d: %w", name, line, err)
		}
		if rows < 0 {
			rows = 0
		}
		rows++
		if sec <= prev {
			return Trace{}, fmt.Errorf("%s line %d: %w: seconds %d not after %d", name, line, ErrBadTrace, sec, prev)
		}
		for s := prev + 1; s < sec; s++ { // hold the previous rate until sec
			v := 0.0
			if prev >= 0 {
				v = tr.Rates[prev]
			}
			tr.Rates = append(tr.Rates, v)
		}
		tr.Rates = append(tr.Rates, rate)
		prev = sec
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return Trace{}, fmt.Errorf("%s line %d: %w: line over %d bytes", name, line+1, ErrTraceTooLarge, MaxTraceLine)
		}
		return Trace{}, fmt.Errorf("%s: %w", name, err)
	}
	if len(tr.Rates) == 0 {
		return Trace{}, fmt.Errorf("%s: %w: no rows", name, ErrBadTrace)
	}
	return tr, nil
}

func parseRow(text string) (sec int, rate float64, err error) {
	a, b, ok := strings.Cut(text, ",")
	if !ok {
		return 0, 0, fmt.Errorf("%w: want seconds,arrivals_per_second", ErrBadTrace)
	}
	a, b = strings.TrimSpace(a), strings.TrimSpace(b)
	if strings.Contains(b, ",") {
		return 0, 0, fmt.Errorf("%w: want 2 fields, got %d", ErrBadTrace, strings.Count(text, ",")+1)
	}
	s, err := strconv.ParseFloat(a, 64)
	switch {
	case err != nil:
		return 0, 0, fmt.Errorf("%w: seconds %q: not a number", ErrBadTrace, a)
	case s < 0 || math.IsNaN(s) || s != math.Trunc(s):
		return 0, 0, fmt.Errorf("%w: seconds %q: want a whole number >= 0", ErrBadTrace, a)
	case s >= MaxTraceSeconds:
		return 0, 0, fmt.Errorf("%w: seconds %s: over %d", ErrTraceTooLarge, a, MaxTraceSeconds)
	}
	v, err := strconv.ParseFloat(b, 64)
	switch {
	case err != nil && !errors.Is(err, strconv.ErrRange):
		return 0, 0, fmt.Errorf("%w: arrivals_per_second %q: not a number", ErrBadTrace, b)
	case v < 0 || math.IsNaN(v):
		return 0, 0, fmt.Errorf("%w: arrivals_per_second %q: want >= 0", ErrBadTrace, b)
	case v > MaxTraceRate:
		return 0, 0, fmt.Errorf("%w: arrivals_per_second %s: over %g", ErrTraceTooLarge, b, float64(MaxTraceRate))
	}
	return int(s), v, nil
}

// isHeader reports whether a line that failed to parse looks like a header:
// its first field is not a number.
func isHeader(text string) bool {
	a, _, _ := strings.Cut(text, ",")
	_, err := strconv.ParseFloat(strings.TrimSpace(a), 64)
	return err != nil
}

// WriteTrace writes tr as CSV that ParseTrace reads back, with a header.
func WriteTrace(w io.Writer, tr Trace) error {
	var b bytes.Buffer
	b.WriteString("seconds,arrivals_per_second\n")
	for i, r := range tr.Rates {
		b.WriteString(strconv.Itoa(i))
		b.WriteByte(',')
		b.WriteString(strconv.FormatFloat(r, 'g', -1, 64))
		b.WriteByte('\n')
	}
	_, err := w.Write(b.Bytes())
	return err
}

// TraceSpec describes a generated trace. Every shape runs from Base to Peak
// messages per second; Noise multiplies each second's rate by 1 + Noise × a
// standard normal variate drawn from a generator seeded with Seed, so a spec
// always gives the same trace.
type TraceSpec struct {
	Name string
	// Shape is one of "step", "ramp", "spike", "diurnal", "noisy-flat" and
	// "sawtooth".
	Shape      string
	Seconds    int
	Base, Peak float64
	// Period is the spike interval, the diurnal period or the sawtooth
	// period, in seconds.
	Period int
	// Width is the length of a spike in seconds (default 60).
	Width int
	Noise float64
	Seed  uint64
}

// Shapes lists the TraceSpec shapes.
var Shapes = []string{"step", "ramp", "spike", "diurnal", "noisy-flat", "sawtooth"}

// Generate returns the trace spec describes.
func (spec TraceSpec) Generate() (Trace, error) {
	if spec.Seconds <= 0 || spec.Seconds > MaxTraceSeconds {
		return Trace{}, fmt.Errorf("%w: Seconds %d: want 1..%d", ErrInvalidConfig, spec.Seconds, MaxTraceSeconds)
	}
	if spec.Base < 0 || spec.Peak < 0 || spec.Noise < 0 {
		return Trace{}, fmt.Errorf("%w: Base, Peak and Noise must be >= 0", ErrInvalidConfig)
	}
	period := float64(spec.Period)
	if period <= 0 {
		period = float64(spec.Seconds)
	}
	width := spec.Width
	if width <= 0 {
		width = 60
	}
	T := float64(spec.Seconds)
	lerp := func(a, b, f float64) float64 { return a + (b-a)*f }
	var shape func(t float64) float64
	switch spec.Shape {
	case "step": // up at 1/6, down at 2/3
		shape = func(t float64) float64 {
			if t >= T/6 && t < 2*T/3 {
				return spec.Peak
			}
			return spec.Base
		}
	case "ramp": // up from 1/6 to 1/2, down to 5/6
		shape = func(t float64) float64 {
			switch {
			case t < T/6 || t >= 5*T/6:
				return spec.Base
			case t < T/2:
				return lerp(spec.Base, spec.Peak, (t-T/6)/(T/3))
			default:
				return lerp(spec.Peak, spec.Base, (t-T/2)/(T/3))
			}
		}
	case "spike": // Width seconds at Peak every Period, the first at Period/2
		shape = func(t float64) float64 {
			if math.Mod(t+period/2, period) < float64(width) && t >= period/2 {
				return spec.Peak
			}
			return spec.Base
		}
	case "diurnal":
		shape = func(t float64) float64 {
			return lerp(spec.Base, spec.Peak, (1-math.Cos(2*math.Pi*t/period))/2)
		}
	case "noisy-flat":
		shape = func(float64) float64 { return spec.Base }
	case "sawtooth":
		shape = func(t float64) float64 {
			return lerp(spec.Base, spec.Peak, math.Mod(t, period)/period)
		}
	default:
		return Trace{}, fmt.Errorf("%w: shape %q (want one of %s)", ErrUnknownTrace, spec.Shape, strings.Join(Shapes, ", "))
	}
	rng := rand.New(rand.NewPCG(spec.Seed, 0x5ca1e))
	tr := Trace{Name: spec.Name, Rates: make([]float64, spec.Seconds)}
	if tr.Name == "" {
		tr.Name = spec.Shape
	}
	for i := range tr.Rates {
		tr.Rates[i] = math.Max(0, shape(float64(i))*(1+spec.Noise*rng.NormFloat64()))
	}
	return tr, nil
}

// BuiltinSpecs returns the specs of the built-in traces, for a pool of
// consumers of 100 msgs/s each (50 of them carry 5000 msgs/s).
func BuiltinSpecs() []TraceSpec {
	return []TraceSpec{
		{Name: "step", Shape: "step", Seconds: 3600, Base: 400, Peak: 2000, Noise: 0.05, Seed: 1},
		{Name: "ramp", Shape: "ramp", Seconds: 3600, Base: 300, Peak: 3000, Noise: 0.05, Seed: 2},
		{Name: "spike", Shape: "spike", Seconds: 3600, Base: 500, Peak: 2500, Period: 900, Width: 60, Noise: 0.05, Seed: 3},
		{Name: "diurnal", Shape: "diurnal", Seconds: 7200, Base: 300, Peak: 3000, Period: 3600, Noise: 0.10, Seed: 4},
		{Name: "noisy-flat", Shape: "noisy-flat", Seconds: 3600, Base: 1000, Noise: 0.20, Seed: 5},
		{Name: "sawtooth", Shape: "sawtooth", Seconds: 3600, Base: 400, Peak: 2400, Period: 600, Noise: 0.05, Seed: 6},
	}
}

// BuiltinTraces returns the built-in traces.
func BuiltinTraces() []Trace {
	specs := BuiltinSpecs()
	out := make([]Trace, 0, len(specs))
	for _, s := range specs {
		tr, err := s.Generate()
		if err != nil {
			panic(err) // the specs above are valid
		}
		out = append(out, tr)
	}
	return out
}
