package supervisor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"time"
)

// waitDelay bounds how long Wait waits for the engine's output pipe after the
// engine itself has exited: a grandchild that inherited the pipe must not
// keep the supervisor from seeing the exit.
const waitDelay = time.Second

// ExecSpawner starts engines with os/exec: each in its own process group (so
// a stop reaches anything it forked), on Linux with Pdeathsig SIGKILL (so it
// dies if the supervisor is killed with SIGKILL), stdin from /dev/null and
// stdout and stderr into Cmd.Log.
type ExecSpawner struct{}

var _ Spawner = ExecSpawner{}

// Start starts cmd. ctx bounds only the start itself: the engine's life is
// ended by signals, through the supervisor's stop sequence.
func (ExecSpawner) Start(ctx context.Context, c Cmd) (Process, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	path := c.Path
	if !strings.Contains(path, "/") {
		p, err := exec.LookPath(path)
		if err != nil {
			return nil, fmt.Errorf("finding engine binary %q on PATH: %w", path, err)
		}
		path = p
	}
	cmd := &exec.Cmd{
		Path:        path,
		Args:        append([]string{c.Path}, c.Args...),
		Env:         c.Env,
		Stdout:      c.Log,
		Stderr:      c.Log,
		SysProcAttr: engineSysProcAttr(),
		WaitDelay:   waitDelay,
	}
	// Pdeathsig fires when the creating *thread* exits, not the process; a
	// locked thread is never retired by the runtime while locked, and after
	// unlocking it lives on in the runtime's pool.
	runtime.LockOSThread()
	err := cmd.Start()
	runtime.UnlockOSThread()
	if err != nil {
		return nil, fmt.Errorf("starting engine %s: %w", path, err)
	}
	p := &execProcess{pid: cmd.Process.Pid, done: make(chan ExitStatus, 1)}
	// Read before anything waits for the child: until it is reaped, the pid
	// cannot name another process.
	p.startTicks, _ = procStartTicks(p.pid)
	go func() {
		// Ends when the engine exits (plus at most waitDelay). The pidfd
		// says so through the netpoller first, so that no thread sits in
		// wait4 for the engine's whole life (each thread is a task
		// against pid_max, and there is one supervisor per replica);
		// Wait then only reaps.
		if w, err := watchProcess(p.pid); err == nil {
			_ = w.wait(context.Background())
			w.close()
		}
		err := cmd.Wait()
		var ee *exec.ExitError
		if errors.As(err, &ee) || errors.Is(err, exec.ErrWaitDelay) {
			err = nil
		}
		p.done <- exitStatusOf(cmd.ProcessState, err)
		close(p.done)
	}()
	return p, nil
}

type execProcess struct {
	pid        int
	startTicks uint64
	done       chan ExitStatus
}

func (p *execProcess) PID() int                { return p.pid }
func (p *execProcess) Done() <-chan ExitStatus { return p.done }

// StartTicks is the engine's start time from /proc (0 where there is no
// /proc); the supervisor records it as Status.EngineStartTicks.
func (p *execProcess) StartTicks() uint64 { return p.startTicks }

func (p *execProcess) Signal(sig os.Signal) error {
	s, ok := sig.(syscall.Signal)
	if !ok {
		return fmt.Errorf("signal %v is not a unix signal", sig)
	}
	if err := syscall.Kill(-p.pid, s); err != nil {
		return fmt.Errorf("sending %s to process group %d: %w", signalName(s), p.pid, err)
	}
	return nil
}
