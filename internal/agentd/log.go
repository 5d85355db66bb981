package agentd

import (
	"context"
	"io"
	"log/slog"

	"github.com/a2abus/a2abus/internal/tracing"
)

func newLogger(cfg Config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel)) // validated by Config.Validate
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewTextHandler(w, opts)
	if cfg.LogFormat == "json" {
		h = slog.NewJSONHandler(w, opts)
	}
	// A traced call's log lines carry its trace_id and span_id.
	return slog.New(tracing.LogHandler(h))
}

// quieter returns l raised to at least min: the embedded NATS server's
// notices (its start banner among them) show only at --log-level debug.
func quieter(l *slog.Logger, min slog.Level) *slog.Logger {
	return slog.New(minLevelHandler{l.Handler(), min})
}

type minLevelHandler struct {
	slog.Handler
	min slog.Level
}

func (h minLevelHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.Handler.Enabled(ctx, l)
}

func (h minLevelHandler) WithAttrs(a []slog.Attr) slog.Handler {
	return minLevelHandler{h.Handler.WithAttrs(a), h.min}
}

func (h minLevelHandler) WithGroup(name string) slog.Handler {
	return minLevelHandler{h.Handler.WithGroup(name), h.min}
}
