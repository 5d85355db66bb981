package scaler

import (
	"math"
	"time"
)

// Forecaster predicts a rate (messages per second) from irregularly spaced
// observations with Holt's double exponential smoothing: a smoothed level
// and a smoothed trend (change per second). It also tracks how noisy the
// trend is, so that a forecast comes with a confidence: a trend that is
// small next to its own noise is not trusted.
//
// A Forecaster is not safe for concurrent use; a Policy guards its own.
type Forecaster struct {
	alpha, beta float64

	n            int
	last         time.Time
	level, trend float64 // trend in units per second
	trendVar     float64 // smoothed variance of the one-step trend estimates
	resVar       float64 // smoothed variance of the one-step forecast errors
	weight       float64 // total weight of the variance averages, for bias correction
}

// Forecast is a prediction with its inputs.
type Forecast struct {
	// Level is the smoothed current rate, Trend its smoothed change per
	// second.
	Level, Trend float64
	// Value is the predicted rate at the requested horizon: Level + Trend ×
	// horizon, never below zero.
	Value float64
	// Confidence in the trend, 0..1: t²/(t²+4), where t is the trend divided
	// by its standard error. 0.5 means the trend stands two standard errors
	// from zero; pure noise stays well below.
	Confidence float64
	// Noise is the standard deviation of the one-step forecast errors.
	Noise float64
}

// forecasterWarmup is the number of observations before a Forecaster gives a
// confidence above zero.
const forecasterWarmup = 6

// NewForecaster returns a Forecaster with level smoothing alpha and trend
// smoothing beta, both in (0, 1].
func NewForecaster(alpha, beta float64) *Forecaster {
	return &Forecaster{alpha: alpha, beta: beta}
}

// Observe adds the value x seen at time t. Observations at or before the
// previous one are ignored.
func (f *Forecaster) Observe(t time.Time, x float64) {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return
	}
	switch {
	case f.n == 0:
		f.level, f.last, f.n = x, t, 1
		return
	case !t.After(f.last):
		return
	}
	dt := t.Sub(f.last).Seconds()
	pred := f.level + f.trend*dt
	err := x - pred
	level := f.alpha*x + (1-f.alpha)*pred
	inst := (level - f.level) / dt
	if f.n == 1 {
		f.trend = inst
	} else {
		d := inst - f.trend
		f.trendVar = (1-f.beta)*f.trendVar + f.beta*d*d
		f.resVar = (1-f.beta)*f.resVar + f.beta*err*err
		f.weight = (1-f.beta)*f.weight + f.beta
		f.trend = f.beta*inst + (1-f.beta)*f.trend
	}
	f.level, f.last = level, t
	f.n++
}

// Forecast predicts the value h after the last observation.
func (f *Forecaster) Forecast(h time.Duration) Forecast {
	// The variance averages start at zero; dividing by their total weight
	// removes that bias, so that early forecasts are not overconfident.
	trendVar, resVar := f.trendVar, f.resVar
	if f.weight > 0 {
		trendVar, resVar = trendVar/f.weight, resVar/f.weight
	}
	fc := Forecast{Level: f.level, Trend: f.trend, Noise: math.Sqrt(resVar)}
	fc.Value = math.Max(0, f.level+f.trend*h.Seconds())
	if f.n >= forecasterWarmup {
		// The trend is an exponentially weighted mean of the one-step
		// estimates; its standard error is theirs times sqrt(β/(2−β)).
		se := math.Sqrt(trendVar * f.beta / (2 - f.beta))
		switch {
		case se > 0:
			t := f.trend / se
			fc.Confidence = t * t / (t*t + 4)
		case f.trend != 0:
			fc.Confidence = 1
		}
	}
	return fc
}
