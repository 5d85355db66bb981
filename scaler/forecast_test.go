package scaler

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func at(sec int) time.Time { return t0.Add(time.Duration(sec) * time.Second) }

func TestForecastLinearGrowth(t *testing.T) {
	for _, tc := range []struct{ noise, trendTol float64 }{{0, 0.01}, {0.02, 1}} {
		noise := tc.noise
		f := NewForecaster(0.5, 0.2)
		rng := rand.New(rand.NewPCG(1, 2))
		for i := range 40 { // 10 minutes at 15 s, from 1000 at +2/s
			x := 1000 + 2*float64(15*i)
			f.Observe(at(15*i), x*(1+noise*rng.NormFloat64()))
		}
		fc := f.Forecast(5 * time.Minute)
		last := 1000 + 2*float64(15*39)
		if fc.Confidence < 0.9 {
			t.Errorf("noise %v: confidence %.2f on a straight line, want >= 0.9", noise, fc.Confidence)
		}
		if math.Abs(fc.Trend-2) > tc.trendTol {
			t.Errorf("noise %v: trend %.2f/s, want about 2", noise, fc.Trend)
		}
		if want := last + 600; math.Abs(fc.Value-want) > 0.05*want {
			t.Errorf("noise %v: 5-minute forecast %.0f, want about %.0f", noise, fc.Value, want)
		}
		if fc.Value <= fc.Level {
			t.Errorf("noise %v: forecast %.0f not above level %.0f", noise, fc.Value, fc.Level)
		}
	}
}

func TestForecastNoiseHasLowConfidence(t *testing.T) {
	for seed := range uint64(5) {
		f := NewForecaster(0.5, 0.2)
		rng := rand.New(rand.NewPCG(seed, 7))
		confident, n := 0, 0
		var sum float64
		for i := range 400 {
			f.Observe(at(15*i), 1000*(1+0.1*rng.NormFloat64()))
			if i < forecasterWarmup {
				continue
			}
			c := f.Forecast(5 * time.Minute).Confidence
			sum += c
			n++
			if c >= DefaultConfig().MinConfidence {
				confident++
			}
		}
		if mean := sum / float64(n); mean > 0.3 {
			t.Errorf("seed %d: mean confidence %.2f on white noise, want <= 0.3", seed, mean)
		}
		if frac := float64(confident) / float64(n); frac > 0.03 {
			t.Errorf("seed %d: %.1f%% of forecasts confident on white noise, want <= 3%%", seed, 100*frac)
		}
	}
}

func TestForecastEdgeCases(t *testing.T) {
	f := NewForecaster(0.5, 0.2)
	if fc := f.Forecast(time.Minute); fc.Value != 0 || fc.Confidence != 0 {
		t.Errorf("empty forecaster: %+v", fc)
	}
	for i := range 10 {
		f.Observe(at(10*i), 500)
	}
	if fc := f.Forecast(time.Hour); fc.Value != 500 || fc.Confidence != 0 || fc.Trend != 0 {
		t.Errorf("constant series: %+v, want 500 with no trend and no confidence", fc)
	}
	f.Observe(at(200), math.NaN())
	f.Observe(at(200), math.Inf(1))
	f.Observe(at(50), 1e9) // in the past: ignored
	if fc := f.Forecast(0); fc.Value != 500 {
		t.Errorf("after ignored observations: %+v", fc)
	}
	// A falling series is never forecast below zero.
	g := NewForecaster(0.5, 0.2)
	for i := range 10 {
		g.Observe(at(15*i), 1000-float64(100*i))
	}
	if fc := g.Forecast(time.Hour); fc.Value != 0 || fc.Trend >= 0 {
		t.Errorf("falling series: %+v, want value 0 and a negative trend", fc)
	}
}
