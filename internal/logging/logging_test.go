package logging

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
)

func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// logAll writes one line at every level.
func logAll(l hclog.Logger) {
	l.Trace("at trace")
	l.Debug("at debug")
	l.Info("at info")
	l.Warn("at warn")
	l.Error("at error")
}

func TestLevelFromLLORCH_LOG(t *testing.T) {
	all := []string{"at trace", "at debug", "at info", "at warn", "at error"}
	tests := []struct {
		name  string
		value string
		shown []string
	}{
		{name: "unset writes nothing", value: "", shown: nil},
		{name: "off writes nothing", value: "off", shown: nil},
		{name: "trace writes everything", value: "trace", shown: all},
		{name: "debug", value: "debug", shown: all[1:]},
		{name: "info", value: "info", shown: all[2:]},
		{name: "warn", value: "warn", shown: all[3:]},
		{name: "error", value: "error", shown: all[4:]},
		{name: "upper case like TF_LOG", value: "DEBUG", shown: all[1:]},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			logAll(New(&buf, envOf(map[string]string{EnvLevel: tc.value})))
			out := buf.String()
			for _, line := range all {
				want := false
				for _, s := range tc.shown {
					want = want || s == line
				}
				if got := strings.Contains(out, line); got != want {
					t.Errorf("%q shown = %v, want %v; output:\n%s", line, got, want, out)
				}
			}
			if tc.shown == nil && out != "" {
				t.Errorf("output %q, want nothing", out)
			}
		})
	}
}

func TestUnknownLevelLogsAtTraceAndSaysSo(t *testing.T) {
	var buf bytes.Buffer
	logAll(New(&buf, envOf(map[string]string{EnvLevel: "verbose"})))
	out := buf.String()
	first, _, _ := strings.Cut(out, "\n")
	want := `LLORCH_LOG="verbose" is not a log level (use trace, debug, info, warn, error or off); logging at trace`
	if !strings.Contains(first, "[WARN]") || !strings.Contains(first, want) {
		t.Errorf("first line %q, want a warning containing %q", first, want)
	}
	if !strings.Contains(out, "at trace") {
		t.Errorf("trace line missing:\n%s", out)
	}
}

func TestLLORCH_LOG_PATHSendsTheLogToAFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "llorch.log")
	if err := os.WriteFile(path, []byte("earlier run\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	New(&buf, envOf(map[string]string{EnvLevel: "info", EnvPath: path})).Info("to the file")

	if buf.Len() != 0 {
		t.Errorf("wrote %q to w, want nothing there", buf.String())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(data), "earlier run\n") || !strings.Contains(string(data), "llorch: to the file") {
		t.Errorf("log file holds %q, want the earlier run kept and the new line appended", data)
	}
}

func TestLLORCH_LOG_PATHWithoutALevelOpensNothing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "llorch.log")
	var buf bytes.Buffer
	New(&buf, envOf(map[string]string{EnvPath: path})).Error("dropped")
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("log file exists (stat error %v); logging is off", err)
	}
	if buf.Len() != 0 {
		t.Errorf("wrote %q, want nothing", buf.String())
	}
}

func TestUnopenableLogPathFallsBackAndSaysWhy(t *testing.T) {
	path := filepath.Join(t.TempDir(), "missing-dir", "llorch.log")
	var buf bytes.Buffer
	New(&buf, envOf(map[string]string{EnvLevel: "info", EnvPath: path})).Info("still logged")
	out := buf.String()
	if !strings.Contains(out, "cannot open LLORCH_LOG_PATH; logging here instead") || !strings.Contains(out, "no such file or directory") {
		t.Errorf("output does not explain the fallback:\n%s", out)
	}
	if !strings.Contains(out, "still logged") {
		t.Errorf("the log line did not reach w:\n%s", out)
	}
}

func TestParseLevel(t *testing.T) {
	tests := []struct {
		in   string
		want hclog.Level
		ok   bool
	}{
		{"", hclog.Off, true},
		{" Warn ", hclog.Warn, true},
		{"off", hclog.Off, true},
		{"warning", hclog.NoLevel, false},
	}
	for _, tc := range tests {
		got, ok := ParseLevel(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("ParseLevel(%q) = %v, %v; want %v, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}
