package supervisor

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/spf13/afero"
)

// Alive reports whether process pid exists and has not exited. A zombie
// (exited, not yet reaped by its parent) counts as gone. It cannot tell a
// reused pid from the original process.
func Alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	if err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return !os.IsNotExist(err) // no /proc: trust kill
	}
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 || i+2 >= len(b) {
		return true
	}
	state := b[i+2]
	return state != 'Z' && state != 'X'
}

// ReadStatus reads runDir/status.json, the last status a supervisor
// recorded. Refresh falls back to it (plus Alive on the pids) when the
// supervisor does not answer on its socket.
func ReadStatus(fs afero.Fs, runDir string) (Status, error) {
	path := filepath.Join(runDir, StatusFile)
	b, err := afero.ReadFile(fs, path)
	if err != nil {
		return Status{}, fmt.Errorf("reading supervisor status: %w", err)
	}
	var st Status
	if err := json.Unmarshal(b, &st); err != nil {
		return Status{}, fmt.Errorf("supervisor status %s is not valid JSON: %w", path, err)
	}
	return st, nil
}
