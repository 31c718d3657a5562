package agent

import (
	"io"
	"log/slog"
)

// NewLogger returns the agent's text logger at the given level (debug, info, warn, error).
func NewLogger(w io.Writer, level string) *slog.Logger {
	l, _ := NewLogging(w, "text", level)
	return l
}

// NewLogging returns the agent's logger in format "text" (logfmt) or "json", and the level
// it logs at, which Agent.Reload changes on SIGHUP (Agent.SetReload hands it over).
func NewLogging(w io.Writer, format, level string) (*slog.Logger, *slog.LevelVar) {
	lv := new(slog.LevelVar)
	lv.Set(parseLevel(level))
	opts := &slog.HandlerOptions{Level: lv}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts)), lv
	}
	return slog.New(slog.NewTextHandler(w, opts)), lv
}

// parseLevel maps a validated log_level to its slog level (info when unknown).
func parseLevel(level string) slog.Level {
	switch level {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}
