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
	pid := st.SupervisorPID
	// Signal and wait through a pidfd opened while the process was just
	// seen running: once it dies and is reaped, its pid may go to another
	// process, which must be neither killed nor waited for.
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		if errors.Is(err, unix.ESRCH) {
			return true, nil // gone since
		}
		// No pidfds: the command line was checked just now.
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			return false, fmt.Errorf("killing supervisor %d: %w", pid, err)
		}
		return true, nil
	}
	defer unix.Close(fd)
	if err := unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0); err != nil && !errors.Is(err, unix.ESRCH) {
		return false, fmt.Errorf("killing supervisor %d: %w", pid, err)
	}
	return true, waitPidfd(fd, pid, 10*time.Second)
}

// waitPidfd waits for the process behind a pidfd to exit; poll(2) on it is
// level-triggered, so an exit that came first counts.
func waitPidfd(fd, pid int, timeout time.Duration) error {
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(fds, int(timeout.Milliseconds()))
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case err != nil || n == 0:
			return fmt.Errorf("process %d did not exit within %s", pid, timeout)
		}
		return nil
	}
}
