package main

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/llorch/llorch/internal/fakeengine"
	"github.com/llorch/llorch/internal/supervisor"
	"github.com/llorch/llorch/internal/testgguf"
)

// TestMain puts this program and the fake llama-server on PATH as copies
// of the test binary.
func TestMain(m *testing.M) {
	if _, ok := os.LookupEnv("GORACE"); !ok {
		_ = os.Setenv("GORACE", "atexit_sleep_ms=0")
	}
	testscript.Main(m, map[string]func(){
		supervisor.ProgramName: main,
		"fake-llama-server":    fakeengine.Main,
	})
}

// The slim program supervises a replica as `llorch supervise` does: the
// launcher's health gate passes, the handoff file appears, and a stop
// ends the engine and the supervisor.
func TestSupervisesAReplica(t *testing.T) {
	exe, err := exec.LookPath(supervisor.ProgramName)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	dir, err := os.MkdirTemp("", "sv") // unix socket paths are short
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	model := testgguf.File(t, testgguf.Small(), "tiny.gguf")
	spec := supervisor.Spec{
		Addr: "pool.chat/r0", PoolID: "chat", ReplicaID: "r0",
		Binary: "fake-llama-server", Host: "127.0.0.1", Port: port, ModelPath: model,
		Args:        []string{"-m", model, "--host", "127.0.0.1", "--port", strconv.Itoa(port)},
		Health:      supervisor.HealthPolicy{Interval: 10 * time.Millisecond, StartTimeout: 10 * time.Second},
		Restart:     supervisor.RestartPolicy{Policy: "always"},
		StopGrace:   2 * time.Second,
		RunDir:      dir,
		HandoffPath: filepath.Join(dir, "chat-r0.json"),
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	c, st, err := (&supervisor.ExecLauncher{Exe: exe, Args: []string{"supervise"}}).Launch(ctx, spec)
	if err != nil {
		logs, _ := filepath.Glob(filepath.Join(dir, "*.log"))
		for _, l := range logs {
			b, _ := os.ReadFile(l)
			t.Logf("%s:\n%s", l, b)
		}
		t.Fatal(err)
	}
	if st.State != supervisor.Ready {
		t.Fatalf("state %s", st.State)
	}
	if _, err := os.Stat(spec.HandoffPath); err != nil {
		t.Fatalf("no handoff file: %v", err)
	}
	cmdline, _ := os.ReadFile("/proc/" + strconv.Itoa(st.SupervisorPID) + "/cmdline")
	if !strings.Contains(string(cmdline), supervisor.ProgramName+"\x00supervise\x00") {
		t.Fatalf("supervisor command line %q", cmdline)
	}
	if err := c.Stop(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if supervisor.Alive(st.PID) || supervisor.Alive(st.SupervisorPID) {
		t.Fatal("engine or supervisor alive after Stop")
	}
}

func TestUsage(t *testing.T) {
	exe, err := exec.LookPath(supervisor.ProgramName)
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(exe).CombinedOutput()
	if err == nil || strings.TrimSpace(string(out)) != "Usage: llorch-supervisor supervise RUNDIR (started by llorch apply; not meant to be run by hand)" {
		t.Fatalf("%v: %s", err, out)
	}
}
