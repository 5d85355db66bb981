package scaler

import (
	"errors"
	"fmt"
)

// Sentinel errors. Errors returned by this package wrap one of them, so test
// with errors.Is.
var (
	// ErrInvalidConfig reports a Config, KEDAConfig or Model field out of
	// range; the error text names the field.
	ErrInvalidConfig = errors.New("scaler: invalid config")

	// ErrBadTrace reports a load trace that cannot be parsed: a malformed
	// row, a negative or non-finite value, or seconds that do not increase.
	// The error text names the line.
	ErrBadTrace = errors.New("scaler: bad trace")

	// ErrTraceTooLarge reports a trace over MaxTraceSeconds seconds, a line
	// over MaxTraceLine bytes or a rate over MaxTraceRate.
	ErrTraceTooLarge = errors.New("scaler: trace too large")

	// ErrUnknownTrace reports a built-in trace name that does not exist.
	ErrUnknownTrace = errors.New("scaler: unknown trace")
)

// ConfigError is the error of a Config field out of range: Field is the
// field's name, Value its value and Want the range it must be in. It wraps
// ErrInvalidConfig, and lets a command line name its own flag for the field.
type ConfigError struct {
	Field string
	Value any
	Want  string
}

func (e *ConfigError) Error() string {
	return fmt.Sprintf("%v: %s %v: %s", ErrInvalidConfig, e.Field, e.Value, e.Want)
}

// Unwrap returns ErrInvalidConfig.
func (e *ConfigError) Unwrap() error { return ErrInvalidConfig }
