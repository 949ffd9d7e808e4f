package supervisor

import (
	"fmt"
	"strings"
	"testing"

	"github.com/spf13/afero"
)

func TestEngineLogRotatesKeepingTheConfiguredNumberOfFiles(t *testing.T) {
	fs := afero.NewMemMapFs()
	l, err := openEngineLog(fs, "/run/engine.log", 10, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for i := 0; i < 5; i++ {
		if _, err := l.Write([]byte(fmt.Sprintf("line %d\n", i))); err != nil { // 7 bytes each
			t.Fatal(err)
		}
	}
	// Each write would pass 10 bytes on top of the previous one: rotate.
	want := map[string]string{
		"/run/engine.log":   "line 4\n",
		"/run/engine.log.1": "line 3\n",
		"/run/engine.log.2": "line 2\n",
	}
	for path, content := range want {
		b, err := afero.ReadFile(fs, path)
		if err != nil || string(b) != content {
			t.Errorf("%s = %q, %v; want %q", path, b, err, content)
		}
	}
	if ok, _ := afero.Exists(fs, "/run/engine.log.3"); ok {
		t.Error("engine.log.3 exists; only 2 old files should be kept")
	}
}

func TestEngineLogAppendsToAnExistingFile(t *testing.T) {
	fs := afero.NewMemMapFs()
	if err := afero.WriteFile(fs, "/run/engine.log", []byte("old run\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := openEngineLog(fs, "/run/engine.log", 1<<20, 3)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = l.Write([]byte("new run\n"))
	_ = l.Close()
	b, _ := afero.ReadFile(fs, "/run/engine.log")
	if string(b) != "old run\nnew run\n" {
		t.Fatalf("engine.log = %q, want the old content kept", b)
	}
}

func TestEngineLogTail(t *testing.T) {
	tests := []struct {
		name   string
		writes []string
		want   []string
	}{
		{name: "empty", want: []string{}},
		{name: "lines split across writes", writes: []string{"al", "pha\nbe", "ta\r\n"}, want: []string{"alpha", "beta"}},
		{name: "unfinished last line is included", writes: []string{"one\ntw"}, want: []string{"one", "tw"}},
		{name: "probe request lines are left out", writes: []string{
			"main: loading model\n",
			"srv  log_server_r: request: GET /health 127.0.0.1 503\n",
			"srv  log_server_r: request: GET /slots 127.0.0.1 200\n",
			"srv  log_server_r: request: POST /completion 127.0.0.1 200\n",
		}, want: []string{"main: loading model", "srv  log_server_r: request: POST /completion 127.0.0.1 200"}},
		{name: "only the last 20 lines", writes: []string{numbered(25)}, want: strings.Split(strings.TrimSuffix(numbered(25), "\n"), "\n")[5:]},
		{name: "a runaway line is bounded", writes: []string{strings.Repeat("x", 10000) + "\n"}, want: []string{strings.Repeat("x", maxTailLine)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l, err := openEngineLog(afero.NewMemMapFs(), "/engine.log", 1<<20, 1, probeLogLines("/health", LegacyProtocol("/m.gguf"))...)
			if err != nil {
				t.Fatal(err)
			}
			l.MarkStart("--- start ---")
			for _, w := range tc.writes {
				_, _ = l.Write([]byte(w))
			}
			got := l.Tail()
			if strings.Join(got, "|") != strings.Join(tc.want, "|") || len(got) != len(tc.want) {
				t.Fatalf("Tail() = %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestEngineLogMarkStartForgetsThePreviousEngine(t *testing.T) {
	l, _ := openEngineLog(afero.NewMemMapFs(), "/engine.log", 1<<20, 1)
	_, _ = l.Write([]byte("first engine\n"))
	l.MarkStart("--- second ---")
	_, _ = l.Write([]byte("second engine\n"))
	if got := l.Tail(); len(got) != 1 || got[0] != "second engine" {
		t.Fatalf("Tail() = %q, want only the second engine's line", got)
	}
}

func TestWithTail(t *testing.T) {
	if got, want := withTail("engine exited with status 1", []string{"a", "b"}), "engine exited with status 1; last engine log lines:\na\nb"; got != want {
		t.Errorf("withTail = %q, want %q", got, want)
	}
	if got, want := withTail("boom", nil), "boom (the engine wrote nothing to its log)"; got != want {
		t.Errorf("withTail without lines = %q, want %q", got, want)
	}
}

func numbered(n int) string {
	var b strings.Builder
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "line %d\n", i)
	}
	return b.String()
}
