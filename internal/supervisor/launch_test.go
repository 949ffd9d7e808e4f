package supervisor

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spf13/afero"

	"github.com/llorch/llorch/state/handoff"
)

func TestLaunchReturnsReadyAndWritesTheHandoffFile(t *testing.T) {
	spec := fakeSpec(t, nil)
	spec.Handoff = handoff.File{Engine: "llamacpp", EngineVersion: "fake-10573", Labels: map[string]string{"team": "search"}}
	c, st := launch(t, spec)

	if st.State != Ready || st.PID <= 0 || st.SupervisorPID <= 0 || st.ReadyAt.IsZero() {
		t.Fatalf("Launch returned %+v, want a ready status with pids and ready_at", st)
	}
	if !Alive(st.PID) || !Alive(st.SupervisorPID) {
		t.Fatalf("engine alive=%v, supervisor alive=%v; want both running", Alive(st.PID), Alive(st.SupervisorPID))
	}

	b, err := os.ReadFile(spec.HandoffPath)
	if err != nil {
		t.Fatalf("handoff file: %v", err)
	}
	var h handoff.File
	if err := json.Unmarshal(b, &h); err != nil {
		t.Fatal(err)
	}
	wantURL := "http://127.0.0.1:" + strconv.Itoa(spec.Port)
	if h.PID != st.PID || h.URL != wantURL || h.Draining || h.PoolID != "chat" || h.ReplicaID != "r0" ||
		h.Engine != "llamacpp" || h.Labels["team"] != "search" || !h.ReadyAt.Equal(st.ReadyAt) {
		t.Fatalf("handoff file = %+v\nwant pid %d, url %s, not draining, template fields kept, ready_at %v", h, st.PID, wantURL, st.ReadyAt)
	}

	for name, want := range map[string]os.FileMode{
		SpecFile: 0o600, StatusFile: 0o644, SupervisorPIDFile: 0o644, EnginePIDFile: 0o644, EngineLogFile: 0o600, SocketFile: 0o600,
	} {
		fi, err := os.Stat(filepath.Join(spec.RunDir, name))
		if err != nil {
			t.Errorf("run directory file %s: %v", name, err)
			continue
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s has mode %v, want %v", name, got, want)
		}
	}
	if fi, err := os.Stat(filepath.Join(spec.RunDir, SocketFile)); err == nil && fi.Mode()&os.ModeSocket == 0 {
		t.Errorf("%s is not a socket", SocketFile)
	}
	if fi, err := os.Stat(spec.RunDir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("run directory mode: %v, %v; want 0700", fi.Mode().Perm(), err)
	}
	onDisk, err := ReadStatus(afero.NewOsFs(), spec.RunDir)
	if err != nil || onDisk.State != Ready || onDisk.PID != st.PID {
		t.Fatalf("status.json = %+v, %v; want ready with pid %d", onDisk, err, st.PID)
	}
	if got, err := os.ReadFile(filepath.Join(spec.RunDir, EnginePIDFile)); err != nil || strings.TrimSpace(string(got)) != strconv.Itoa(st.PID) {
		t.Fatalf("engine.pid = %q, %v; want %d", got, err, st.PID)
	}

	if err := c.Stop(waitCtx(t), 0); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if Alive(st.PID) || Alive(st.SupervisorPID) {
		t.Fatalf("after Stop returned: engine alive=%v, supervisor alive=%v", Alive(st.PID), Alive(st.SupervisorPID))
	}
	if _, err := os.Stat(spec.HandoffPath); !os.IsNotExist(err) {
		t.Fatalf("handoff file after stop: %v, want it removed", err)
	}
	final, err := ReadStatus(afero.NewOsFs(), spec.RunDir)
	if err != nil || final.State != Stopped || final.PID != 0 {
		t.Fatalf("status.json after stop = %+v, %v; want stopped without pid", final, err)
	}
	for _, gone := range []string{SocketFile, SupervisorPIDFile, EnginePIDFile} {
		if _, err := os.Stat(filepath.Join(spec.RunDir, gone)); !os.IsNotExist(err) {
			t.Errorf("%s after stop: %v, want it removed", gone, err)
		}
	}
	if _, err := Dial(waitCtx(t), spec.RunDir); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("Dial after stop = %v, want ErrNotRunning", err)
	}
}

func TestLaunchFailsWithTheEngineLogWhenTheFirstStartCrashes(t *testing.T) {
	spec := fakeSpec(t, map[string]string{"FAKE_CRASH_ON_START": "1", "FAKE_EXIT_CODE": "3"})
	_, _, err := launcher(t).Launch(waitCtx(t), spec)
	if err == nil {
		t.Fatal("Launch succeeded, want the start failure")
	}
	msg := err.Error()
	for _, want := range []string{
		"pool.chat/r0 did not become ready: engine exited with status 3 during start; last engine log lines:\n",
		"fake: fatal: crashing on start as FAKE_CRASH_ON_START asks, exit status 3",
	} {
		if !strings.Contains(msg, want) {
			t.Fatalf("Launch error:\n%s\nwant it to contain %q", msg, want)
		}
	}
	st, rerr := ReadStatus(afero.NewOsFs(), spec.RunDir)
	if rerr != nil {
		t.Fatal(rerr)
	}
	if st.State != Stopped || Alive(st.SupervisorPID) {
		t.Fatalf("after a failed launch: status %s, supervisor alive=%v; want stopped and gone", st.State, Alive(st.SupervisorPID))
	}
}

func TestLaunchStartTimeoutKillsTheEngineAndReportsItsLog(t *testing.T) {
	spec := fakeSpec(t, map[string]string{"FAKE_HANG_LOAD": "1"})
	// Long enough for the supervisor to start and the engine to answer
	// one probe even on a loaded machine.
	spec.Health.StartTimeout = 2 * time.Second
	_, _, err := launcher(t).Launch(waitCtx(t), spec)
	if err == nil {
		t.Fatal("Launch succeeded, want a start timeout")
	}
	msg := err.Error()
	for _, want := range []string{
		"pool.chat/r0 did not become ready: not ready after 2s (last /health answer: 503 Loading model); last engine log lines:\n",
		"fake: the model never finishes loading, as FAKE_HANG_LOAD asks",
	} {
		if !strings.Contains(msg, want) {
			t.Fatalf("Launch error:\n%s\nwant it to contain %q", msg, want)
		}
	}
	engine := lastEnginePID(t, spec.RunDir)
	if Alive(engine) {
		t.Fatalf("engine %d still alive after the start timeout", engine)
	}
}

// lastEnginePID reads the pid the engine log's start marker cannot give,
// from the fake's own pid line in the supervisor log's state entries.
func lastEnginePID(t *testing.T, dir string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, SupervisorLogFile))
	if err != nil {
		t.Fatal(err)
	}
	pid := 0
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.Contains(line, "state=starting") {
			continue
		}
		for _, f := range strings.Fields(line) {
			if v, ok := strings.CutPrefix(f, "pid="); ok {
				pid, _ = strconv.Atoi(v)
			}
		}
	}
	if pid == 0 {
		t.Fatalf("no engine pid in the supervisor log:\n%s", b)
	}
	return pid
}

func TestLaunchCancelledStopsSupervisorAndEngine(t *testing.T) {
	spec := fakeSpec(t, map[string]string{"FAKE_HANG_LOAD": "1"})
	// Cancelled once the supervisor has started (its status is on disk),
	// however loaded the machine is.
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	_, _, err := launcher(t).Launch(ctx, spec)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Launch with an expiring context = %v, want context.DeadlineExceeded", err)
	}
	if !strings.HasPrefix(err.Error(), "launching pool.chat/r0: ") {
		t.Fatalf("error %q does not name the replica", err)
	}
	st, rerr := ReadStatus(afero.NewOsFs(), spec.RunDir)
	if rerr != nil {
		t.Fatal(rerr)
	}
	engine := lastEnginePID(t, spec.RunDir)
	if st.State != Stopped || Alive(st.SupervisorPID) || Alive(engine) {
		t.Fatalf("after a cancelled launch: state %s, supervisor alive=%v, engine alive=%v", st.State, Alive(st.SupervisorPID), Alive(engine))
	}
}

func TestLaunchRefusesARunDirectoryWithALiveSupervisor(t *testing.T) {
	spec := fakeSpec(t, nil)
	_, st := launch(t, spec)
	_, _, err := launcher(t).Launch(waitCtx(t), spec)
	want := "a supervisor is already running in " + spec.RunDir + " (pid " + strconv.Itoa(st.SupervisorPID) + "); stop it before launching another"
	if err == nil || err.Error() != want {
		t.Fatalf("second Launch = %v, want %q", err, want)
	}
}

func TestSupervisorKilledWithSIGKILLTakesItsEngineAlong(t *testing.T) {
	spec := fakeSpec(t, nil)
	_, st := launch(t, spec)
	if err := syscall.Kill(st.SupervisorPID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitProcessGone(t, st.SupervisorPID, "supervisor")
	waitProcessGone(t, st.PID, "engine (Pdeathsig)")

	// What refresh sees: no answer on the socket, a stale status file.
	if _, err := Dial(waitCtx(t), spec.RunDir); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("Dial after SIGKILL = %v, want ErrNotRunning", err)
	}
	stale, err := ReadStatus(afero.NewOsFs(), spec.RunDir)
	if err != nil || stale.State != Ready || Alive(stale.PID) || Alive(stale.SupervisorPID) {
		t.Fatalf("status.json after SIGKILL = %+v, %v; want the stale ready status naming dead pids", stale, err)
	}
}

func TestSupervisorStopsItsEngineGracefullyOnSIGTERM(t *testing.T) {
	spec := fakeSpec(t, nil)
	_, st := launch(t, spec)
	if err := syscall.Kill(st.SupervisorPID, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitProcessGone(t, st.SupervisorPID, "supervisor")
	if Alive(st.PID) {
		t.Fatalf("engine %d outlived its supervisor", st.PID)
	}
	final, err := ReadStatus(afero.NewOsFs(), spec.RunDir)
	if err != nil || final.State != Stopped {
		t.Fatalf("status.json = %+v, %v; want stopped", final, err)
	}
	if log := readEngineLog(t, spec.RunDir); !strings.Contains(log, "cleaning up before exit...") {
		t.Fatalf("the engine did not get a graceful SIGTERM; its log:\n%s", log)
	}
	if _, err := os.Stat(spec.HandoffPath); !os.IsNotExist(err) {
		t.Fatalf("handoff file after SIGTERM: %v, want removed", err)
	}
}

func TestAttachFindsALaunchedSupervisor(t *testing.T) {
	spec := fakeSpec(t, nil)
	_, st := launch(t, spec)
	c, err := launcher(t).Attach(waitCtx(t), spec.RunDir)
	if err != nil {
		t.Fatalf("Attach: %v", err)
	}
	got, err := c.Status(waitCtx(t))
	if err != nil || got.PID != st.PID || got.State != Ready {
		t.Fatalf("Status via Attach = %+v, %v; want ready pid %d", got, err, st.PID)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestAttachToANonRunningSupervisorSaysSo(t *testing.T) {
	dir := runDir(t)
	_, err := launcher(t).Attach(waitCtx(t), dir)
	want := "supervisor is not running in " + dir + " (no answer on " + filepath.Join(dir, SocketFile) + ")"
	if !errors.Is(err, ErrNotRunning) || err.Error() != want {
		t.Fatalf("Attach = %v, want %q", err, want)
	}
}

func TestRunningReadsTheStatusOfALiveSupervisorOnly(t *testing.T) {
	fs := afero.NewOsFs()
	spec := fakeSpec(t, nil)
	_, st := launch(t, spec)

	got, ok := Running(fs, spec.RunDir)
	if !ok || got.PID != st.PID || got.State != Ready || got.SupervisorPID != st.SupervisorPID {
		t.Fatalf("Running = %+v, %v; want the ready status of supervisor %d", got, ok, st.SupervisorPID)
	}

	// Another run directory whose status.json names this supervisor (a
	// copied file, or a reused pid): not running there.
	other := runDir(t)
	data, err := os.ReadFile(filepath.Join(spec.RunDir, StatusFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(other, StatusFile), data, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, ok := Running(fs, other); ok {
		t.Error("Running trusted a status.json whose supervisor runs for another directory")
	}
	// A live process that is no supervisor at all: this test.
	var forged Status
	if err := json.Unmarshal(data, &forged); err != nil {
		t.Fatal(err)
	}
	forged.SupervisorPID = os.Getpid()
	mine, _ := json.Marshal(forged)
	if err := os.WriteFile(filepath.Join(other, StatusFile), mine, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, ok := Running(fs, other); ok {
		t.Error("Running trusted a status.json naming a process that is not a supervisor")
	}

	if err := syscall.Kill(st.SupervisorPID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitProcessGone(t, st.SupervisorPID, "supervisor")
	if _, ok := Running(fs, spec.RunDir); ok {
		t.Error("Running after SIGKILL of the supervisor")
	}
}
