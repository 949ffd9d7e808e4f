package apply

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"syscall"

	"github.com/spf13/afero"

	"github.com/llorch/llorch/internal/supervisor"
)

// supervisorGone reports whether err means nobody answers on the
// supervisor's socket (it was killed, or already stopped). A run directory
// whose name is too long to exist (recorded for a pool whose name was
// not bounded yet) never held a supervisor either.
func supervisorGone(err error) bool {
	var ne *net.OpError
	return errors.Is(err, supervisor.ErrNotRunning) || errors.As(err, &ne) || errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ENAMETOOLONG)
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
