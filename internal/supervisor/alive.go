package supervisor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

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
		// ESRCH: reaped between the open and the read.
		return !os.IsNotExist(err) && !errors.Is(err, syscall.ESRCH) // no /proc: trust kill
	}
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 || i+2 >= len(b) {
		return true
	}
	state := b[i+2]
	return state != 'Z' && state != 'X'
}

// EngineAlive reports whether pid is still the engine that runDir's
// supervisor started, not merely a live process: once a supervisor has
// vanished, its engine's pid may be reused by an unrelated process. It is
// true only when pid runs (a zombie does not) and
//
//   - status.json records an engine start time (EngineStartTicks), pid is
//     the engine it records, and /proc/PID/stat shows the same start time;
//     or, when status.json records no start time,
//   - status.json, if there is one, names pid as its engine, and
//     /proc/PID/exe resolves to spec.json's Binary (looked up on PATH when
//     it has no slash).
//
// A supervisor records every engine it spawns and spawns one only after
// the previous one exited, so a pid its status.json does not name (an
// older engine's, or any pid while it records none) is not a live engine
// of it. Whatever cannot be checked (no /proc, another user's process, no
// spec) counts as not the engine: callers kill only what is shown to be
// it.
func EngineAlive(fs afero.Fs, runDir string, pid int) bool {
	if pid <= 0 {
		return false
	}
	state, ticks, err := procStat(pid)
	if err != nil || state == 'Z' || state == 'X' {
		return false
	}
	if st, err := ReadStatus(fs, runDir); err == nil {
		if st.PID != pid {
			return false
		}
		if st.EngineStartTicks != 0 {
			return st.EngineStartTicks == ticks
		}
	}
	spec, err := ReadSpec(fs, runDir)
	if err != nil || spec.Binary == "" {
		return false
	}
	return exeIs(pid, spec.Binary)
}

// KillEngine makes sure the engine of runDir's supervisor is gone: when pid
// is still that engine (EngineAlive) it sends SIGKILL to the engine's
// process group (the engine and anything it forked); otherwise it signals
// nothing and returns nil, so a process that reused the pid is never
// touched. The check and the kill are two steps: pid reuse in between
// would need the kernel's pid space to wrap within microseconds.
func KillEngine(fs afero.Fs, runDir string, pid int) error {
	if !EngineAlive(fs, runDir, pid) {
		return nil
	}
	err := syscall.Kill(-pid, syscall.SIGKILL)
	if errors.Is(err, syscall.ESRCH) {
		// No group led by pid: the engine left the group it was started
		// in, so kill the engine alone.
		err = syscall.Kill(pid, syscall.SIGKILL)
	}
	if err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("killing engine %d of %s: %w", pid, runDir, err)
	}
	return nil
}

// KillSupervisor kills the supervisor still running in runDir (one that
// does not answer, or would not stop) and waits up to timeout until it is
// gone; its engine dies with it (Pdeathsig). It does nothing (killed is
// false) when none runs there: the process is identified by its command
// line (Running), never by pid alone, and then signalled and waited for
// through a pidfd, so that once it is reaped a process given its pid is
// neither killed nor waited for.
func KillSupervisor(fs afero.Fs, runDir string, timeout time.Duration) (killed bool, err error) {
	st, ok := Running(fs, runDir)
	if !ok {
		return false, nil
	}
	pid := st.SupervisorPID
	w, err := watchProcess(pid)
	if err != nil {
		return false, fmt.Errorf("killing supervisor %d: %w", pid, err)
	}
	defer w.close()
	if err := w.kill(pid); err != nil {
		return false, fmt.Errorf("killing supervisor %d: %w", pid, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := w.wait(ctx); err != nil {
		return true, fmt.Errorf("process %d did not exit within %s", pid, timeout)
	}
	return true, nil
}

// procStat reads a process's state letter and start time (field 22 of
// /proc/PID/stat, in clock ticks since boot).
func procStat(pid int) (state byte, startTicks uint64, err error) {
	path := "/proc/" + strconv.Itoa(pid) + "/stat"
	var buf [1024]byte // a stat line is a few hundred bytes
	b, err := readSmallFile(path, buf[:])
	if err != nil {
		return 0, 0, err
	}
	// "pid (comm) state ppid …": comm may hold spaces and parentheses, so
	// the fields are counted from the last ')', whose next field is 3.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("%s has no command name", path)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 || len(f[0]) != 1 {
		return 0, 0, fmt.Errorf("%s has %d fields after the command name, want at least 20", path, len(f))
	}
	startTicks, err = strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("%s: start time: %w", path, err)
	}
	return f[0][0], startTicks, nil
}

// procStartTicks returns a process's start time from /proc.
func procStartTicks(pid int) (uint64, error) {
	_, t, err := procStat(pid)
	return t, err
}

// exeIs reports whether process pid runs the executable binary.
func exeIs(pid int, binary string) bool {
	exe, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/exe")
	if err != nil {
		return false
	}
	// An executable replaced on disk since the start reads "PATH (deleted)".
	exe = strings.TrimSuffix(exe, " (deleted)")
	want := binary
	if !strings.Contains(want, "/") {
		if want, err = exec.LookPath(want); err != nil {
			return false
		}
	}
	if want, err = filepath.Abs(want); err != nil {
		return false
	}
	if real, err := filepath.EvalSymlinks(want); err == nil {
		want = real
	}
	return exe == want
}

// smallBufs are Running's read buffers, reused across the replicas of a
// refresh.
var smallBufs = sync.Pool{New: func() any { return new([4096]byte) }}

// readStatusFile is ReadStatus on the OS file system, through
// readSmallFile.
func readStatusFile(path string, buf []byte) (Status, error) {
	b, err := readSmallFile(path, buf)
	return parseStatus(path, b, err)
}

// parseStatus decodes status.json's bytes b as read from path, or words
// the read error err.
func parseStatus(path string, b []byte, err error) (Status, error) {
	if err != nil {
		return Status{}, fmt.Errorf("reading supervisor status: %w", err)
	}
	st, err := decodeStatus(b)
	if err != nil {
		return Status{}, fmt.Errorf("supervisor status %s is not valid JSON: %w", path, err)
	}
	return st, nil
}

// readSmallFile reads the file at path into buf with a bare open, reads
// and close, and returns the bytes read; a file larger than buf is read
// with os.ReadFile. Refresh reads two small files per replica, a thousand
// replicas per plan, and os.ReadFile spends as many system calls again on
// two fstat calls and a check for a pollable file.
func readSmallFile(path string, buf []byte) ([]byte, error) {
	fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer syscall.Close(fd)
	n := 0
	for n < len(buf) {
		m, err := syscall.Read(fd, buf[n:])
		switch {
		case err == syscall.EINTR:
			continue
		case err != nil:
			return nil, &os.PathError{Op: "read", Path: path, Err: err}
		case m == 0:
			return buf[:n], nil
		}
		n += m
	}
	return os.ReadFile(path)
}

// ReadStatus reads runDir/status.json, the last status a supervisor
// recorded. Refresh falls back to it (plus Alive on the pids) when the
// supervisor does not answer on its socket.
func ReadStatus(fs afero.Fs, runDir string) (Status, error) {
	path := filepath.Join(runDir, StatusFile)
	b, err := afero.ReadFile(fs, path)
	return parseStatus(path, b, err)
}

// Running reads runDir's status.json and reports whether the supervisor it
// names is still running there: its pid is alive and its command line is
// `… supervise RUNDIR` for this run directory (so a reused pid does not
// count). The supervisor rewrites status.json atomically on every change,
// so for a running supervisor it is as current as asking it over the
// socket, at the cost of one file read instead of a connection — refresh
// of a thousand replicas uses it.
//
// The command line is also the liveness check: a process that exited,
// zombie or not, has an empty one, and without /proc nothing can be shown
// to be the supervisor. One read per replica instead of a signal and two.
func Running(fs afero.Fs, runDir string) (Status, bool) {
	return RunningIn(fs, runDir, nil)
}

// RunningIn is Running with a snapshot of the listening control sockets
// (nil: none). A supervisor listens on its run directory's socket from
// before its first status until it has recorded its last, so when the
// snapshot shows that socket listened on and status.json's supervisor pid
// exists, the supervisor is running without a look at its command line.
// (The pid check covers a new supervisor that listens but has not yet
// replaced its predecessor's status.) Otherwise it checks as Running does.
func RunningIn(fs afero.Fs, runDir string, socks *ControlSockets) (Status, bool) {
	buf := smallBufs.Get().(*[4096]byte) // both files are far smaller
	defer smallBufs.Put(buf)
	var st Status
	var err error
	if _, osFs := fs.(*afero.OsFs); osFs {
		st, err = readStatusFile(filepath.Join(runDir, StatusFile), buf[:])
	} else {
		st, err = ReadStatus(fs, runDir)
	}
	if err != nil || st.SupervisorPID <= 0 {
		return st, false
	}
	if socks.listening(runDir) && syscall.Kill(st.SupervisorPID, 0) == nil {
		return st, true
	}
	b, err := readSmallFile("/proc/"+strconv.Itoa(st.SupervisorPID)+"/cmdline", buf[:])
	if err != nil {
		return st, false
	}
	args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
	if len(args) < 2 || args[len(args)-2] != "supervise" {
		return st, false
	}
	want, err := filepath.Abs(runDir)
	return st, err == nil && filepath.Clean(args[len(args)-1]) == want
}

// ControlSockets is a snapshot of the unix sockets being listened on,
// taken with one question to the kernel (sock_diag, as ss(8) asks): a
// refresh of a thousand replicas takes one instead of reading a thousand
// /proc/PID/cmdline files, which cost the kernel a look into each
// process's memory.
type ControlSockets struct {
	names map[string]struct{}
}

// ListeningControlSockets takes the snapshot. It fails where the kernel
// cannot be asked (not Linux, no sock_diag); RunningIn then gets nil and
// reads command lines. The snapshot sees only this network namespace:
// a supervisor it does not show is checked the slow way, never taken
// for gone.
func ListeningControlSockets() (*ControlSockets, error) {
	names, err := sockDiagUnixListeners()
	if err != nil {
		return nil, err
	}
	return &ControlSockets{names: names}, nil
}

// listening reports whether the snapshot shows runDir's control socket
// listened on.
func (c *ControlSockets) listening(runDir string) bool {
	if c == nil {
		return false
	}
	path, _, err := socketPath(runDir)
	if err != nil {
		return false
	}
	_, ok := c.names[path]
	return ok
}
