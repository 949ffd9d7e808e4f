package supervisor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/spf13/afero"
	"golang.org/x/sys/unix"
)

func TestRunningTellsALiveSupervisorCommandFromAnExitedOne(t *testing.T) {
	dir := runDir(t)
	// A process whose command line ends in "supervise DIR", as a
	// supervisor's does; it runs until its standard input closes.
	cmd := exec.Command("/bin/sh", "-c", "read _", "supervise", dir)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	reaped := false
	t.Cleanup(func() {
		if !reaped {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	data, err := json.Marshal(Status{State: Ready, SupervisorPID: cmd.Process.Pid, PID: 4242})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, StatusFile), data, 0o600); err != nil {
		t.Fatal(err)
	}
	fs := afero.NewOsFs()
	if st, ok := Running(fs, dir); !ok || st.PID != 4242 {
		t.Fatalf("Running = %+v, %v while the process runs; want its status and true", st, ok)
	}

	// Let it exit but do not reap it: a zombie keeps its pid.
	stdin.Close()
	var info unix.Siginfo
	if err := unix.Waitid(unix.P_PID, cmd.Process.Pid, &info, unix.WEXITED|unix.WNOWAIT, nil); err != nil {
		t.Fatal(err)
	}
	if _, ok := Running(fs, dir); ok {
		t.Error("Running = true for a supervisor that exited and was not reaped (a zombie)")
	}
	_ = cmd.Wait()
	reaped = true
	if _, ok := Running(fs, dir); ok {
		t.Error("Running = true for a supervisor that exited")
	}
}

// BenchmarkRunning is refresh's cost per replica whose supervisor runs:
// read status.json, then the supervisor's command line.
func BenchmarkRunning(b *testing.B) {
	dir := runDir(b)
	cmd := exec.Command("/bin/sh", "-c", "read _", "supervise", dir)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() {
		stdin.Close()
		_ = cmd.Wait()
	}()
	data, err := json.Marshal(Status{Addr: "pool.p0000/r0", State: Ready, SupervisorPID: cmd.Process.Pid, PID: 4242, Port: 8080,
		StartedAt: time.Now().UTC(), ReadyAt: time.Now().UTC(), UpdatedAt: time.Now().UTC(), EngineStartTicks: 723678})
	if err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, StatusFile), data, 0o600); err != nil {
		b.Fatal(err)
	}
	fs := afero.NewOsFs()
	b.ReportAllocs()
	for b.Loop() {
		if st, ok := Running(fs, dir); !ok {
			cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", cmd.Process.Pid))
			b.Fatalf("Running = %+v, false; the supervisor's command line is %q (%v)", st, cmdline, err)
		}
	}
}

// Stop pins the supervisor with watchProcess, then asks it to stop; the
// process often exits before wait is called. The exit must still count.
func TestProcessWatchSeesAnExitThatCameBeforeTheWait(t *testing.T) {
	for range 5 {
		cmd := exec.Command("true")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		w, err := watchProcess(cmd.Process.Pid)
		if err != nil {
			t.Fatal(err)
		}
		_ = cmd.Wait() // exited and reaped: the pidfd is all that names it now
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		err = w.wait(ctx)
		cancel()
		w.close()
		if err != nil {
			t.Fatalf("wait after the process exited: %v", err)
		}
	}
}

func TestProcessWatchWaitsForALiveProcess(t *testing.T) {
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	w, err := watchProcess(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	defer w.close()
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	if err := w.wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("wait on a live process = %v, want the context's deadline", err)
	}
	_ = cmd.Process.Kill()
	if err := w.wait(t.Context()); err != nil {
		t.Fatalf("wait after the kill: %v", err)
	}
}
