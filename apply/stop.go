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
// supervisor's socket (it was killed, or already stopped).
func supervisorGone(err error) bool {
	var ne *net.OpError
	return errors.As(err, &ne) || errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// killLeftover makes sure no engine of a stopped or vanished supervisor is
// still running. The engine runs in its own process group (pgid = pid), so
// the whole group is killed.
func killLeftover(afs afero.Fs, runDir string, recordedPID int) error {
	pids := map[int]bool{}
	if recordedPID > 0 {
		pids[recordedPID] = true
	}
	if st, err := supervisor.ReadStatus(afs, runDir); err == nil && st.PID > 0 {
		pids[st.PID] = true
	}
	for pid := range pids {
		if !supervisor.Alive(pid) {
			continue
		}
		if err := syscall.Kill(-pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("killing leftover engine process group %d: %w", pid, err)
		}
	}
	return nil
}
