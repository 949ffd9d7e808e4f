package logging

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/hashicorp/go-hclog"
)

const (
	// EnvLevel names the variable that sets the log level.
	EnvLevel = "LLORCH_LOG"
	// EnvPath names the variable that sends the log to a file.
	EnvPath = "LLORCH_LOG_PATH"
)

// levels are the LLORCH_LOG values, most verbose first.
var levels = []struct {
	name  string
	level hclog.Level
}{
	{"trace", hclog.Trace},
	{"debug", hclog.Debug},
	{"info", hclog.Info},
	{"warn", hclog.Warn},
	{"error", hclog.Error},
	{"off", hclog.Off},
}

// ParseLevel returns the level a LLORCH_LOG value names, case-insensitively.
// The empty string is off. ok is false for anything else.
func ParseLevel(s string) (level hclog.Level, ok bool) {
	s = strings.ToLower(strings.TrimSpace(s))
	if s == "" {
		return hclog.Off, true
	}
	for _, l := range levels {
		if l.name == s {
			return l.level, true
		}
	}
	return hclog.NoLevel, false
}

// New returns llorch's logger. It writes to w, or to the file LLORCH_LOG_PATH
// names (appending, created with mode 0600), at the level LLORCH_LOG names.
// With LLORCH_LOG unset or "off" it writes nothing and opens no file.
//
// An unknown level logs at trace, like Terraform, and says so in the first
// line; a log file that cannot be opened falls back to w and says so there.
// env is os.Getenv outside tests.
func New(w io.Writer, env func(string) string) hclog.Logger {
	raw := env(EnvLevel)
	level, ok := ParseLevel(raw)
	if !ok {
		level = hclog.Trace
	}
	if level == hclog.Off {
		return hclog.New(&hclog.LoggerOptions{Name: "llorch", Output: io.Discard, Level: hclog.Off})
	}

	out := w
	var openErr error
	if path := env(EnvPath); path != "" {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			openErr = err
		} else {
			// The file stays open for the life of the process, as the log does.
			out = f
		}
	}

	logger := hclog.New(&hclog.LoggerOptions{Name: "llorch", Output: out, Level: level})
	if !ok {
		logger.Warn(fmt.Sprintf("%s=%q is not a log level (use %s); logging at trace", EnvLevel, raw, levelNames()))
	}
	if openErr != nil {
		logger.Warn(fmt.Sprintf("cannot open %s; logging here instead", EnvPath), "error", openErr)
	}
	return logger
}

func levelNames() string {
	names := make([]string, len(levels))
	for i, l := range levels {
		names[i] = l.name
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}
