package apply

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"syscall"
	"time"

	"github.com/spf13/afero"
	"golang.org/x/sys/unix"

	"github.com/llorch/llorch/internal/supervisor"
)

// supervisorGone reports whether err means nobody answers on the
// supervisor's socket (it was killed, or already stopped).
func supervisorGone(err error) bool {
	var ne *net.OpError
	return errors.Is(err, supervisor.ErrNotRunning) || errors.As(err, &ne) || errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// killLeftover makes sure no engine of a stopped or vanished supervisor is
// still running. Its engine died with it (Pdeathsig), so this only matters
// when something went wrong; the kill checks the process's start time
// against the one the supervisor recorded, so a reused pid is never hit.
func killLeftover(afs afero.Fs, runDir string, recordedPID int) error {
	pids := map[int]bool{}
	if recordedPID > 0 {
		pids[recordedPID] = true
	}
	if st, err := supervisor.ReadStatus(afs, runDir); err == nil && st.PID > 0 {
		pids[st.PID] = true
	}
	for pid := range pids {
		if err := supervisor.KillEngine(afs, runDir, pid); err != nil {
			return fmt.Errorf("killing leftover engine %d: %w", pid, err)
		}
	}
	return nil
}

// killSupervisor kills the supervisor still running in runDir (one that
// does not answer, or would not stop) and waits until it is gone; its
// engine dies with it (Pdeathsig). It does nothing (killed is false) when
// none runs there:
// the process is identified by its command line, never by pid alone.
func killSupervisor(afs afero.Fs, runDir string) (killed bool, err error) {
	st, ok := supervisor.Running(afs, runDir)
	if !ok {
		return false, nil
	}
	if err := syscall.Kill(st.SupervisorPID, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return false, fmt.Errorf("killing supervisor %d: %w", st.SupervisorPID, err)
	}
	return true, waitGone(st.SupervisorPID, 10*time.Second)
}

// waitGone waits for a process that is not our child to exit, through a
// pidfd: the kernel says when, no polling.
func waitGone(pid int, timeout time.Duration) error {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return nil // already gone (ESRCH), or no pidfd: nothing to wait on
	}
	defer unix.Close(fd)
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	n, err := unix.Poll(fds, int(timeout.Milliseconds()))
	if err != nil || n == 0 {
		return fmt.Errorf("process %d did not exit within %s", pid, timeout)
	}
	return nil
}
