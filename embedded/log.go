package embedded

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
)

// slogAdapter implements the NATS server's Logger on log/slog. The server
// reports start-up failures (a port in use, an unwritable store) through
// Fatalf without returning them, so the adapter keeps the first one for
// Start to return.
type slogAdapter struct {
	l *slog.Logger

	mu    sync.Mutex
	fatal error
	// fatalc is closed when the first fatal error is recorded.
	fatalc chan struct{}
}

func newSlogAdapter(l *slog.Logger) *slogAdapter {
	if l == nil {
		l = slog.New(slog.DiscardHandler)
	}
	return &slogAdapter{l: l, fatalc: make(chan struct{})}
}

func (a *slogAdapter) debugEnabled() bool {
	return a.l.Enabled(context.Background(), slog.LevelDebug)
}

func (a *slogAdapter) Noticef(format string, v ...any) { a.l.Info(fmt.Sprintf(format, v...)) }
func (a *slogAdapter) Warnf(format string, v ...any)   { a.l.Warn(fmt.Sprintf(format, v...)) }
func (a *slogAdapter) Errorf(format string, v ...any)  { a.l.Error(fmt.Sprintf(format, v...)) }
func (a *slogAdapter) Debugf(format string, v ...any)  { a.l.Debug(fmt.Sprintf(format, v...)) }
func (a *slogAdapter) Tracef(format string, v ...any) {
	a.l.Debug(fmt.Sprintf(format, v...), "trace", true)
}

// Fatalf logs at Error and records the error; unlike the server's own
// logger it does not exit the process.
func (a *slogAdapter) Fatalf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	a.l.Error(msg, "fatal", true)
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.fatal == nil {
		a.fatal = fmt.Errorf("embedded: %s", msg)
		close(a.fatalc)
	}
}

func (a *slogAdapter) fatalErr() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.fatal
}
