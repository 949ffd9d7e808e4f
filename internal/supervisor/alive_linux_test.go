package supervisor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/spf13/afero"
	"golang.org/x/sys/unix"
)

// supervisorLookalike starts a process whose command line ends in
// "supervise DIR", as a supervisor's does, and records st with its pid in
// dir/status.json. The process runs until stdin is closed; the test's
// cleanup kills and reaps it unless reaped is set.
func supervisorLookalike(tb testing.TB, dir string, st Status) (cmd *exec.Cmd, stdin io.WriteCloser, reaped *bool) {
	tb.Helper()
	cmd = exec.Command("/bin/sh", "-c", "read _", "supervise", dir)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	reaped = new(bool)
	tb.Cleanup(func() {
		if !*reaped {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	st.SupervisorPID = cmd.Process.Pid
	// Start returns while the kernel may still be setting up the new
	// program: its /proc/PID/cmdline reads empty for that moment, and no
	// event marks its end.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", cmd.Process.Pid))
		if err == nil && bytes.Contains(b, []byte("supervise")) {
			break
		}
		if time.Now().After(deadline) {
			tb.Fatalf("the lookalike's command line is still %q (%v)", b, err)
		}
	}
	writeStatus(tb, dir, st)
	return cmd, stdin, reaped
}

func TestRunningTellsALiveSupervisorCommandFromAnExitedOne(t *testing.T) {
	dir := runDir(t)
	cmd, stdin, reaped := supervisorLookalike(t, dir, Status{State: Ready, PID: 4242})
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
	*reaped = true
	if _, ok := Running(fs, dir); ok {
		t.Error("Running = true for a supervisor that exited")
	}
}

// BenchmarkRunning is refresh's cost per replica whose supervisor runs:
// read status.json, then the supervisor's command line.
func BenchmarkRunning(b *testing.B) {
	dir := runDir(b)
	cmd, _, _ := supervisorLookalike(b, dir, Status{Addr: "pool.p0000/r0", State: Ready, PID: 4242, Port: 8080,
		StartedAt: time.Now().UTC(), ReadyAt: time.Now().UTC(), UpdatedAt: time.Now().UTC(), EngineStartTicks: 723678})
	fs := afero.NewOsFs()
	b.ReportAllocs()
	for b.Loop() {
		if st, ok := Running(fs, dir); !ok {
			cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", cmd.Process.Pid))
			b.Fatalf("Running = %+v, false; the supervisor's command line is %q (%v)", st, cmdline, err)
		}
	}
}

func TestKillSupervisorKillsOnlyASupervisorRunningThere(t *testing.T) {
	fs := afero.NewOsFs()
	if killed, err := KillSupervisor(fs, runDir(t), time.Second); killed || err != nil {
		t.Fatalf("KillSupervisor with no status.json = %v, %v; want false, nil", killed, err)
	}

	dir := runDir(t)
	cmd, _, reaped := supervisorLookalike(t, dir, Status{State: Ready})
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }() // reaps it: only the pidfd names it then
	killed, err := KillSupervisor(fs, dir, 10*time.Second)
	if !killed || err != nil {
		t.Fatalf("KillSupervisor = %v, %v; want true, nil", killed, err)
	}
	werr := <-exited
	*reaped = true
	var ee *exec.ExitError
	if !errors.As(werr, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("the supervisor ended with %v, want SIGKILL", werr)
	}
	if killed, err := KillSupervisor(fs, dir, time.Second); killed || err != nil {
		t.Fatalf("KillSupervisor after it is gone = %v, %v; want false, nil", killed, err)
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
