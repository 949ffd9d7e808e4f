package supervisor

import (
	"context"
	"fmt"
	"io"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// Cmd is an engine invocation.
type Cmd struct {
	Path string   // executable; a name without a slash is looked up on PATH
	Args []string // arguments, without argv[0]
	Env  []string // complete environment, "KEY=value"
	// Log receives the engine's stdout and stderr.
	Log io.Writer
}

// Spawner starts engines. ExecSpawner is the real one; tests pass fakes.
type Spawner interface {
	Start(ctx context.Context, cmd Cmd) (Process, error)
}

// Process is a started engine.
type Process interface {
	PID() int
	// Signal delivers sig to the engine's whole process group.
	Signal(sig os.Signal) error
	// Done yields the exit status once the engine has exited and its output
	// has been copied to the log.
	Done() <-chan ExitStatus
}

// ExitStatus is how an engine ended.
type ExitStatus struct {
	Code   int            // exit code; -1 when killed by a signal
	Signal syscall.Signal // the killing signal, 0 for a normal exit
	Err    error          // waiting failed (rare); Code and Signal are then unknown
}

// Failed reports whether the exit counts as a failure for the restart
// policy: a non-zero status, a death by signal or an unknown end.
func (e ExitStatus) Failed() bool { return e.Err != nil || e.Signal != 0 || e.Code != 0 }

// String completes "engine …": "exited with status 1", "was killed by
// signal SIGABRT".
func (e ExitStatus) String() string {
	switch {
	case e.Err != nil:
		return fmt.Sprintf("ended in an unknown way (%v)", e.Err)
	case e.Signal != 0:
		return "was killed by signal " + signalName(e.Signal)
	default:
		return fmt.Sprintf("exited with status %d", e.Code)
	}
}

func signalName(s syscall.Signal) string {
	if n := unix.SignalName(s); n != "" {
		return n
	}
	return fmt.Sprintf("signal %d", int(s))
}

// exitStatusOf reads a finished process's wait status.
func exitStatusOf(ps *os.ProcessState, waitErr error) ExitStatus {
	if ps == nil {
		return ExitStatus{Code: -1, Err: waitErr}
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return ExitStatus{Code: -1, Signal: ws.Signal()}
	}
	return ExitStatus{Code: ps.ExitCode()}
}
