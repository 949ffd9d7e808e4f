package fakeengine

import (
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
)

// TestMain registers the fake as the "fake-llama-server" command, exactly as
// other packages' tests do, and puts it on PATH for the process tests.
func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){"fake-llama-server": Main})
}

func TestProcessEndsLikeLlamaServer(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     []string
		drive   func(t *testing.T, p *process)
		want    string // describe() of the wait status
		wantLog []string
	}{
		{
			name:    "missing model is killed by SIGABRT",
			args:    []string{"-m", "/nonexistent/model.gguf", "--port", "0"},
			want:    "killed by aborted",
			wantLog: []string{"failed to load model '/nonexistent/model.gguf'", "main: exiting due to model loading error"},
		},
		{
			name: "model that is not GGUF is killed by SIGABRT after loading",
			args: []string{"-m", "NOTGGUF", "--port", "0"},
			env:  []string{"FAKE_LOAD_DELAY=1ms"},
			want: "killed by aborted",
			wantLog: []string{
				"gguf_init_from_file_impl: invalid magic characters",
				"main: exiting due to model loading error",
			},
		},
		{
			name: "SIGTERM during load kills by SIGTERM",
			args: []string{"-m", tinyModel, "--port", "0"},
			env:  []string{"FAKE_HANG_LOAD=1"},
			drive: func(t *testing.T, p *process) {
				p.waitLog("the model never finishes loading")
				p.signal(syscall.SIGTERM)
			},
			want: "killed by terminated",
		},
		{
			name: "SIGTERM when idle exits 0",
			args: []string{"-m", tinyModel, "--port", "0"},
			drive: func(t *testing.T, p *process) {
				p.waitLog("starting the main loop")
				p.signal(syscall.SIGTERM)
			},
			want:    "exit status 0",
			wantLog: []string{"cleaning up before exit..."},
		},
		{
			name: "SIGINT when idle exits 0",
			args: []string{"-m", tinyModel, "--port", "0"},
			drive: func(t *testing.T, p *process) {
				p.waitLog("starting the main loop")
				p.signal(syscall.SIGINT)
			},
			want:    "exit status 0",
			wantLog: []string{"cleaning up before exit..."},
		},
		{
			name: "second SIGTERM with a request in flight exits 1",
			args: []string{"-m", tinyModel, "--port", "0"},
			env:  []string{"FAKE_INFLIGHT=1", "FAKE_REQUEST_DELAY=1h"},
			drive: func(t *testing.T, p *process) {
				p.waitLog("starting the main loop")
				p.signal(syscall.SIGTERM)
				p.waitLog("cleaning up before exit...")
				p.signal(syscall.SIGTERM)
			},
			want:    "exit status 1",
			wantLog: []string{"Received second interrupt, terminating immediately."},
		},
		{
			name: "ignored SIGTERM leaves it serving until SIGKILL",
			args: []string{"-m", tinyModel, "--port", "0"},
			env:  []string{"FAKE_IGNORE_SIGTERM=1"},
			drive: func(t *testing.T, p *process) {
				p.listen()
				p.waitLog("starting the main loop")
				p.signal(syscall.SIGTERM)
				p.waitLog("ignoring terminated")
				resp, err := http.Get(p.url + "/health")
				if err != nil {
					t.Fatalf("GET /health after an ignored SIGTERM: %v", err)
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					t.Errorf("GET /health after an ignored SIGTERM = %d, want 200", resp.StatusCode)
				}
				p.signal(syscall.SIGKILL)
			},
			want: "killed by killed",
		},
		{
			name: "crash after ready exits with FAKE_EXIT_CODE",
			args: []string{"-m", tinyModel, "--port", "0"},
			env:  []string{"FAKE_CRASH_AFTER=0s", "FAKE_EXIT_CODE=5"},
			want: "exit status 5",
			wantLog: []string{
				"starting the main loop",
				"fake: fatal: crashing as FAKE_CRASH_AFTER=0s asks, exit status 5",
			},
		},
	}
	notGGUF := filepath.Join(t.TempDir(), "model.bin")
	if err := os.WriteFile(notGGUF, []byte("this is not a model"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := make([]string, len(tc.args))
			for i, a := range tc.args {
				args[i] = strings.ReplaceAll(a, "NOTGGUF", notGGUF)
			}
			p := startProcess(t, args, append([]string{"FAKE_LOAD_DELAY=0s"}, tc.env...)...)
			if tc.drive != nil {
				tc.drive(t, p)
			}
			if got := describe(p.wait()); got != tc.want {
				t.Errorf("fake-llama-server ended with %s, want %s; log:\n%s", got, tc.want, p.log.String())
			}
			for _, l := range tc.wantLog {
				if !strings.Contains(p.log.String(), l) {
					t.Errorf("log lacks %q; log:\n%s", l, p.log.String())
				}
			}
		})
	}
}

func TestProcessAbortLeavesNoCoreDump(t *testing.T) {
	// Let the child dump core as far as limits go, so only the fake's own
	// precaution can keep the core file away.
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_CORE, &lim); err != nil {
		t.Fatal(err)
	}
	raised := lim
	raised.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_CORE, &raised); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Setrlimit(syscall.RLIMIT_CORE, &lim) })

	dir := t.TempDir()
	p := startProcessIn(t, dir, []string{"-m", "/nonexistent/model.gguf", "--port", "0"})
	ws := p.wait()
	if !ws.Signaled() || ws.Signal() != syscall.SIGABRT {
		t.Fatalf("ended with %s, want killed by SIGABRT", describe(ws))
	}
	if ws.CoreDump() {
		t.Error("the abort dumped core; tests must not leave core files behind")
	}
	if left, _ := os.ReadDir(dir); len(left) > 0 {
		t.Errorf("the abort left %v in its working directory", left)
	}
}

func TestProcessWritesPIDFileBeforeSayingItListens(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "engine.pid")
	p := startProcess(t, []string{"-m", tinyModel, "--port", "0"}, "FAKE_PID_FILE="+pidFile)
	p.listen()
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatalf("reading FAKE_PID_FILE once listening: %v", err)
	}
	if got, want := strings.TrimSpace(string(b)), strconv.Itoa(p.cmd.Process.Pid); got != want {
		t.Errorf("FAKE_PID_FILE holds %q, want the child's pid %q", got, want)
	}
}
