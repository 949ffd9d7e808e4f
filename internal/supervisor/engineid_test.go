package supervisor

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/spf13/afero"
	"golang.org/x/sys/unix"
)

// startTicksOf reads field 22 of /proc/PID/stat, independently of the code
// under test.
func startTicksOf(t *testing.T, pid int) uint64 {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	fields := strings.Fields(s[strings.LastIndex(s, ")")+2:]) // from field 3
	v, err := strconv.ParseUint(fields[22-3], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestStatusRecordsTheEngineStartTime(t *testing.T) {
	spec := fakeSpec(t, counterKnobs(t, 1, map[string]string{"FAKE_CRASH_AFTER": "0s"}))
	r := startRun(t, spec)
	first, _ := r.waitFor(t, "first start", func(st Status) bool { return st.State == Starting && st.PID != 0 })
	second, _ := r.waitFor(t, "ready after the crash", func(st Status) bool { return st.State == Ready && st.Restarts == 1 })
	if second.EngineStartTicks == 0 || second.EngineStartTicks != startTicksOf(t, second.PID) {
		t.Fatalf("engine_start_ticks %d, want %d from /proc/%d/stat", second.EngineStartTicks, startTicksOf(t, second.PID), second.PID)
	}
	if first.EngineStartTicks == 0 || first.PID == second.PID {
		t.Fatalf("first engine %d recorded start ticks %d; want a start time for each engine", first.PID, first.EngineStartTicks)
	}
	onDisk, err := ReadStatus(afero.NewOsFs(), spec.RunDir)
	if err != nil || onDisk.EngineStartTicks != second.EngineStartTicks {
		t.Fatalf("status.json engine_start_ticks = %d, %v; want %d", onDisk.EngineStartTicks, err, second.EngineStartTicks)
	}
	if err := r.client.Drain(waitCtx(t)); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(spec.RunDir, StatusFile))
	if err != nil || strings.Contains(string(b), "engine_start_ticks") {
		t.Fatalf("status.json after the engine stopped still names a start time (%v):\n%s", err, b)
	}
}

func TestKillEngineKillsTheEngineOfAVanishedSupervisor(t *testing.T) {
	spec := fakeSpec(t, nil)
	spec.Restart.Policy = "never"
	r := startRun(t, spec)
	ready, _ := r.waitFor(t, "ready", isState(Ready))
	fs := afero.NewOsFs()
	if !EngineAlive(fs, spec.RunDir, ready.PID) {
		t.Fatalf("EngineAlive(engine %d) = false, want true", ready.PID)
	}
	if err := KillEngine(fs, spec.RunDir, ready.PID); err != nil {
		t.Fatalf("KillEngine: %v", err)
	}
	st, _ := r.waitFor(t, "failed", isState(Failed))
	waitProcessGone(t, ready.PID, "engine")
	if want := `engine was killed by signal SIGKILL; restart policy "never" does not restart the engine`; !strings.HasPrefix(st.LastError, want) {
		t.Fatalf("last_error %q, want prefix %q", st.LastError, want)
	}
	if EngineAlive(fs, spec.RunDir, ready.PID) {
		t.Fatalf("EngineAlive(killed engine %d) = true", ready.PID)
	}
	if err := KillEngine(fs, spec.RunDir, ready.PID); err != nil {
		t.Fatalf("KillEngine of a gone engine = %v, want nil", err)
	}
}

func TestKillEngineSparesALiveProcessThatIsNotTheEngine(t *testing.T) {
	spec := fakeSpec(t, nil)
	r := startRun(t, spec)
	ready, _ := r.waitFor(t, "ready", isState(Ready))
	fs := afero.NewOsFs()
	// This test process is alive, and its pid is not the engine's: as if
	// the engine's pid had been reused.
	self := os.Getpid()
	if EngineAlive(fs, spec.RunDir, self) {
		t.Fatalf("EngineAlive(the test process %d) = true", self)
	}
	if err := KillEngine(fs, spec.RunDir, self); err != nil {
		t.Fatalf("KillEngine(the test process) = %v, want nil", err)
	}
	// A status.json that names this process, with a start time that is
	// not its own: the pid was reused after the engine was recorded.
	mem := afero.NewMemMapFs()
	writeJSON(t, mem, "/run/status.json", Status{State: Ready, PID: self, EngineStartTicks: startTicksOf(t, self) + 1})
	if EngineAlive(mem, "/run", self) {
		t.Fatal("EngineAlive = true for a pid whose start time differs from the recorded one")
	}
	if err := KillEngine(mem, "/run", self); err != nil {
		t.Fatalf("KillEngine(reused pid) = %v, want nil", err)
	}
	// Still here (a SIGKILL to our group would have ended the test), and
	// the real engine was not touched either.
	if st, err := r.client.Status(waitCtx(t)); err != nil || st.State != Ready || st.PID != ready.PID || !Alive(ready.PID) {
		t.Fatalf("after KillEngine of other pids: %+v, %v; want the engine %d still ready", st, err, ready.PID)
	}
}

func TestEngineAliveChecksTheRecordedStartTimeOrTheBinary(t *testing.T) {
	spec := fakeSpec(t, nil)
	r := startRun(t, spec)
	ready, _ := r.waitFor(t, "ready", isState(Ready))
	engine, self := ready.PID, os.Getpid()
	fakeBin, err := exec.LookPath("fake-llama-server")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		status *Status // nil: no status.json
		binary string  // "": no spec.json
		pid    int
		want   bool
	}{
		{"the recorded engine with its start time", &Status{PID: engine, EngineStartTicks: startTicksOf(t, engine)}, "", engine, true},
		{"the recorded pid with another start time", &Status{PID: engine, EngineStartTicks: startTicksOf(t, engine) - 1}, "fake-llama-server", engine, false},
		{"a pid other than the one recorded with a start time", &Status{PID: self, EngineStartTicks: startTicksOf(t, self)}, "fake-llama-server", engine, false},
		{"no start time recorded: the binary on PATH matches", &Status{PID: engine}, "fake-llama-server", engine, true},
		{"no start time recorded: the binary by path matches", &Status{PID: engine}, fakeBin, engine, true},
		{"no status at all: the binary matches", nil, "fake-llama-server", engine, true},
		{"no start time recorded: another binary", &Status{PID: engine}, "llama-server-other", engine, false},
		{"no start time recorded: a live process running another program", &Status{PID: self}, "fake-llama-server", self, false},
		{"no start time recorded: the binary matches but another pid is recorded", &Status{PID: self}, "fake-llama-server", engine, false},
		{"no engine recorded (pid 0): the binary matches", &Status{State: Backoff}, "fake-llama-server", engine, false},
		{"nothing to check against", nil, "", engine, false},
		{"no such process", &Status{PID: engine, EngineStartTicks: startTicksOf(t, engine)}, "fake-llama-server", 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mem := afero.NewMemMapFs()
			if tc.status != nil {
				writeJSON(t, mem, "/run/status.json", tc.status)
			}
			if tc.binary != "" {
				writeJSON(t, mem, "/run/spec.json", Spec{Binary: tc.binary})
			}
			if got := EngineAlive(mem, "/run", tc.pid); got != tc.want {
				t.Fatalf("EngineAlive(pid %d) = %v, want %v", tc.pid, got, tc.want)
			}
		})
	}
}

func TestEngineAliveIsFalseForAZombie(t *testing.T) {
	// A child that has exited but is not reaped yet stays a zombie.
	cmd := exec.Command("fake-llama-server", "--version")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	t.Cleanup(func() { _ = cmd.Wait() })
	// Wait for the exit without reaping (WNOWAIT).
	var info unix.Siginfo
	if err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil); err != nil {
		t.Fatal(err)
	}
	mem := afero.NewMemMapFs()
	writeJSON(t, mem, "/run/status.json", Status{PID: pid, EngineStartTicks: startTicksOf(t, pid)})
	if EngineAlive(mem, "/run", pid) {
		t.Fatalf("EngineAlive(zombie %d) = true", pid)
	}
}

func writeJSON(t *testing.T, fs afero.Fs, path string, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := afero.WriteFile(fs, path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
