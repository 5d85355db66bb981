package faults

import (
	"context"
	"log/slog"
	"strings"
)

// expectedNoise are parts of log messages that the injected faults
// cause by design: servers failing to reach a cut or stopped peer, or
// writing to a connection a proxy cut.
var expectedNoise = []string{
	"Error trying to connect to route",
	"Error flushing",
}

// QuietLogger returns l without the messages the injected faults cause by
// design, so that what remains in a run's log is news.
func QuietLogger(l *slog.Logger) *slog.Logger {
	return slog.New(quietHandler{l.Handler()})
}

type quietHandler struct{ slog.Handler }

func (h quietHandler) Handle(ctx context.Context, r slog.Record) error {
	for _, p := range expectedNoise {
		if strings.Contains(r.Message, p) {
			return nil
		}
	}
	return h.Handler.Handle(ctx, r)
}

func (h quietHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return quietHandler{h.Handler.WithAttrs(as)}
}

func (h quietHandler) WithGroup(name string) slog.Handler {
	return quietHandler{h.Handler.WithGroup(name)}
}
