// Package telemetry sets up the daemons' OpenTelemetry tracing from the
// standard OTEL_* environment variables, the way the OpenTelemetry SDKs
// configure themselves: agentd and scalerd export spans over OTLP when the
// variables ask for it, and make none otherwise.
//
//	tp, shutdown, err := telemetry.Setup(ctx, "agentd", os.Stderr, log)
//	if err != nil {
//		return err // a bad OTEL_* setting
//	}
//	defer shutdown(context.Background()) // flushes what is buffered
//	// tp is nil when tracing is off
//
// Setup is safe for concurrent use; it sets OpenTelemetry's global error
// handler (export failures are logged) when tracing is on.
package telemetry
