package apply_test

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spf13/afero"

	"github.com/llorch/llorch/apply"
	"github.com/llorch/llorch/internal/supervisor"
	"github.com/llorch/llorch/plan"
	"github.com/llorch/llorch/state"
)

// helperEnv makes the test binary sleep instead of running tests (see
// TestMain): a stand-in for an engine, or for an unrelated process.
const helperEnv = "LLORCH_APPLY_TEST_SLEEP"

// startSleeper starts a process in its own process group, as the
// supervisor starts engines, and reaps it when the test ends.
func startSleeper(t *testing.T) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting a stand-in process: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return cmd
}

// killedByApply ends cmd with SIGTERM and reports whether it had already
// been sent SIGKILL: a SIGKILL marks the process for exit when it is sent,
// so the exit status tells which signal came first, with no waiting.
func killedByApply(t *testing.T, cmd *exec.Cmd) bool {
	t.Helper()
	_ = cmd.Process.Signal(syscall.SIGTERM)
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("stand-in process ended with %v", err)
	}
	ws := ee.Sys().(syscall.WaitStatus)
	return ws.Signaled() && ws.Signal() == syscall.SIGKILL
}

// startTicks is field 22 of /proc/PID/stat, the process's start time.
func startTicks(t *testing.T, pid int) uint64 {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		t.Fatal(err)
	}
	fields := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	n, err := strconv.ParseUint(fields[19], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestLeftoverEngineOfAVanishedSupervisor drains a replica whose
// supervisor is gone while a process with the recorded pid runs: the
// engine it left behind must be killed, an unrelated process that reused
// the pid must not.
func TestLeftoverEngineOfAVanishedSupervisor(t *testing.T) {
	tests := []struct {
		name       string
		isEngine   bool // status.json records the process's start time
		wantKilled bool
	}{
		{"the engine it left is killed", true, true},
		{"a process that reused the pid is left alone", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := startSleeper(t)
			pid := cmd.Process.Pid
			fs := afero.NewMemMapFs()
			runDir := filepath.Join(stateDir, "run", "chat-r0")
			status := supervisor.Status{Addr: "pool.chat/r0", State: supervisor.Ready, PID: pid, SupervisorPID: firstPID + 1}
			if tt.isEngine {
				status.EngineStartTicks = startTicks(t, pid)
			} else {
				status.PID, status.EngineStartTicks = firstPID, 1
			}
			b, _ := json.Marshal(status)
			if err := afero.WriteFile(fs, filepath.Join(runDir, supervisor.StatusFile), b, 0o644); err != nil {
				t.Fatal(err)
			}
			st := state.New("lineage")
			st.Pools["pool.chat"] = &state.Pool{Engine: "llamacpp", Replicas: []*state.Replica{{
				ID: "r0", PID: pid, SupervisorPID: firstPID + 1, Status: "ready", RunDir: runDir,
			}}}
			l := newFakeLauncher(fs) // launched nothing: every Attach is refused
			results, err := apply.Drain(t.Context(), l, fs, st, "pool.chat", apply.DrainOptions{Now: func() time.Time { return t0 }})
			if err != nil || results[0].Err != nil {
				t.Fatalf("Drain = %+v, %v", results, err)
			}
			if got := killedByApply(t, cmd); got != tt.wantKilled {
				t.Errorf("process %d killed = %v, want %v", pid, got, tt.wantKilled)
			}
		})
	}
}

func TestDestroyReportsTheEngineItStoppedNotTheOneApplyStarted(t *testing.T) {
	e := newEnv(t)
	st := e.converge(configOf(pool("pool.chat", port(8080))))
	r0 := replicaOf(t, st, "pool.chat", "r0")
	live := e.fake.restartEngine(r0.RunDir)
	cfg := configOf(pool("pool.chat", port(8080)))
	if _, err := e.run(e.ctx, cfg, e.plan(cfg, plan.Options{Destroy: true}), 0); err != nil {
		t.Fatalf("destroy: %v", err)
	}
	if got := e.hook.Result("pool.chat/r0", apply.StepDrain); got.PID != live {
		t.Errorf("destroy reported pid %d, want %d, the engine the supervisor ran after its restart (apply started %d)", got.PID, live, r0.PID)
	}
}

// A replica recorded with a run directory and handoff file whose names are
// too long to exist (an older llorch did not bound pool ids) has nothing
// running: draining it succeeds instead of failing on the name.
func TestDrainOfARunDirTooLongToExist(t *testing.T) {
	dir := t.TempDir()
	for _, sub := range []string{"run", "handoff"} {
		if err := os.Mkdir(filepath.Join(dir, sub), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	long := strings.Repeat("p", 300)
	st := state.New("lineage")
	st.Pools["pool."+long] = &state.Pool{Engine: "llamacpp", Replicas: []*state.Replica{{
		ID: "r0", Status: "failed", RunDir: filepath.Join(dir, "run", long+"-r0"), Handoff: filepath.Join(dir, "handoff", long+"-r0.json"),
	}}}
	fs := afero.NewOsFs()
	results, err := apply.Drain(t.Context(), &supervisor.ExecLauncher{Fs: fs}, fs, st, "pool."+long, apply.DrainOptions{Now: func() time.Time { return t0 }})
	if err != nil || len(results) != 1 || results[0].Err != nil {
		t.Fatalf("Drain = %+v, %v; want the replica stopped", results, err)
	}
}
