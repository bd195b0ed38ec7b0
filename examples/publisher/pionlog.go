package publisher

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/pion/logging"
)

// pionLogs sends pion's logs to a *slog.Logger: its errors as warnings, the
// rest at debug level (pion warns about harmless things, like packets that
// arrive after a close).
type pionLogs struct{ log *slog.Logger }

func (f pionLogs) NewLogger(scope string) logging.LeveledLogger {
	return pionLogger{log: f.log.With("pion", scope)}
}

type pionLogger struct{ log *slog.Logger }

func (l pionLogger) emit(level slog.Level, msg string) {
	l.log.Log(context.Background(), level, msg)
}

func (l pionLogger) emitf(level slog.Level, format string, a []any) {
	if l.log.Enabled(context.Background(), level) {
		l.log.Log(context.Background(), level, fmt.Sprintf(format, a...))
	}
}

func (l pionLogger) Trace(string)                   {}
func (l pionLogger) Tracef(string, ...any)          {}
func (l pionLogger) Debug(msg string)               { l.emit(slog.LevelDebug, msg) }
func (l pionLogger) Debugf(format string, a ...any) { l.emitf(slog.LevelDebug, format, a) }
func (l pionLogger) Info(msg string)                { l.emit(slog.LevelDebug, msg) }
func (l pionLogger) Infof(format string, a ...any)  { l.emitf(slog.LevelDebug, format, a) }
func (l pionLogger) Warn(msg string)                { l.emit(slog.LevelDebug, msg) }
func (l pionLogger) Warnf(format string, a ...any)  { l.emitf(slog.LevelDebug, format, a) }
func (l pionLogger) Error(msg string)               { l.emit(slog.LevelWarn, msg) }
func (l pionLogger) Errorf(format string, a ...any) { l.emitf(slog.LevelWarn, format, a) }
