package telemetry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// The variables Setup reads itself; the exporters, the sampler
// (OTEL_TRACES_SAMPLER, OTEL_TRACES_SAMPLER_ARG), the batch span
// processor (OTEL_BSP_*) and the resource (OTEL_SERVICE_NAME,
// OTEL_RESOURCE_ATTRIBUTES) read theirs through the SDK.
const (
	EnvSDKDisabled      = "OTEL_SDK_DISABLED"
	EnvTracesExporter   = "OTEL_TRACES_EXPORTER"
	EnvEndpoint         = "OTEL_EXPORTER_OTLP_ENDPOINT"
	EnvTracesEndpoint   = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
	EnvProtocol         = "OTEL_EXPORTER_OTLP_PROTOCOL"
	EnvTracesProtocol   = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
	defaultOTLPProtocol = "http/protobuf"
)

// ErrBadSetting wraps the error of an OTEL_* variable Setup cannot use.
var ErrBadSetting = errors.New("telemetry: bad setting")

// Setup returns the TracerProvider the process environment's OTEL_*
// variables ask for, and the function that flushes its spans and stops it.
//
// Spans are exported when OTEL_TRACES_EXPORTER names an exporter (otlp,
// console: to console, one JSON object per span; none: none), or, when it
// is unset, when OTEL_EXPORTER_OTLP_ENDPOINT or
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set (then over OTLP); never when
// OTEL_SDK_DISABLED is true. OTLP goes over HTTP (http/protobuf, the
// default) or gRPC (grpc) as OTEL_EXPORTER_OTLP_TRACES_PROTOCOL or
// OTEL_EXPORTER_OTLP_PROTOCOL say. service is service.name unless
// OTEL_SERVICE_NAME (or OTEL_RESOURCE_ATTRIBUTES) names another.
//
// With nothing to export Setup returns a nil provider: tracing is off.
// Export failures are logged to log.
func Setup(ctx context.Context, service string, console io.Writer, log *slog.Logger) (trace.TracerProvider, func(context.Context) error, error) {
	none := func(context.Context) error { return nil }
	if strings.EqualFold(env(EnvSDKDisabled), "true") {
		return nil, none, nil
	}
	var names []string
	for _, n := range strings.Split(env(EnvTracesExporter), ",") {
		if n = strings.ToLower(strings.TrimSpace(n)); n != "" && n != "none" {
			names = append(names, n)
		}
	}
	if env(EnvTracesExporter) == "" && (env(EnvEndpoint) != "" || env(EnvTracesEndpoint) != "") {
		names = []string{"otlp"}
	}
	if len(names) == 0 {
		return nil, none, nil
	}
	var opts []sdktrace.TracerProviderOption
	for _, n := range names {
		exp, err := exporter(ctx, n, console)
		if err != nil {
			return nil, none, err
		}
		opts = append(opts, sdktrace.WithBatcher(exp))
	}
	res, err := resource.New(ctx,
		resource.WithAttributes(semconv.ServiceName(service)),
		resource.WithFromEnv(), // OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES win
		resource.WithTelemetrySDK(),
		resource.WithHost(),
		resource.WithProcessPID())
	if err != nil {
		return nil, none, fmt.Errorf("%w: OTEL_RESOURCE_ATTRIBUTES: %w", ErrBadSetting, err)
	}
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		log.Warn("OpenTelemetry: spans not exported", "err", err)
	}))
	tp := sdktrace.NewTracerProvider(append(opts, sdktrace.WithResource(res))...)
	log.Info("tracing on", "exporters", strings.Join(names, ","), "service", serviceName(res))
	return tp, tp.Shutdown, nil
}

// exporter makes the exporter name names.
func exporter(ctx context.Context, name string, console io.Writer) (sdktrace.SpanExporter, error) {
	switch name {
	case "otlp":
		proto := env(EnvTracesProtocol)
		if proto == "" {
			proto = env(EnvProtocol)
		}
		if proto == "" {
			proto = defaultOTLPProtocol
		}
		switch proto {
		case "http/protobuf":
			return otlptracehttp.New(ctx)
		case "grpc":
			return otlptracegrpc.New(ctx)
		}
		return nil, fmt.Errorf("%w: %s=%q: want grpc or http/protobuf", ErrBadSetting, EnvProtocol, proto)
	case "console":
		return stdouttrace.New(stdouttrace.WithWriter(console))
	}
	return nil, fmt.Errorf("%w: %s=%q: unknown exporter %q (want otlp, console or none)", ErrBadSetting, EnvTracesExporter, env(EnvTracesExporter), name)
}

func env(name string) string {
	v, _ := os.LookupEnv(name)
	return strings.TrimSpace(v)
}

func serviceName(res *resource.Resource) string {
	v, _ := res.Set().Value(semconv.ServiceNameKey)
	return v.AsString()
}
