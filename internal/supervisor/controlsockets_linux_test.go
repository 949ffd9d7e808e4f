package supervisor

import (
	"encoding/binary"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/afero"
)

// writeStatus records st in dir/status.json.
func writeStatus(t testing.TB, dir string, st Status) {
	t.Helper()
	data, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, StatusFile), data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// snapshot takes ListeningControlSockets, failing the test when the kernel
// cannot be asked.
func snapshot(t testing.TB) *ControlSockets {
	t.Helper()
	socks, err := ListeningControlSockets()
	if err != nil {
		t.Fatalf("ListeningControlSockets: %v", err)
	}
	return socks
}

// deadPID returns the pid of a process that has exited and been reaped.
func deadPID(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("/bin/true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	return cmd.Process.Pid
}

func TestRunningInTakesAListenedControlSocketForARunningSupervisor(t *testing.T) {
	long := filepath.Join(runDir(t), strings.Repeat("d", 120)) // socket path over 107 bytes: kept in TMPDIR
	if err := os.Mkdir(long, 0o700); err != nil {
		t.Fatal(err)
	}
	for name, dir := range map[string]string{"socket in the run directory": runDir(t), "socket elsewhere": long} {
		t.Run(name, func(t *testing.T) {
			fs := afero.NewOsFs()
			// This test process stands for the supervisor: it runs, but its
			// command line is not `supervise DIR`.
			writeStatus(t, dir, Status{State: Ready, PID: 4242, SupervisorPID: os.Getpid()})
			if _, ok := Running(fs, dir); ok {
				t.Fatal("Running = true for a process whose command line is not `supervise DIR`")
			}
			if _, ok := RunningIn(fs, dir, snapshot(t)); ok {
				t.Fatal("RunningIn = true before anything listens on the control socket")
			}

			_, closeSocket, err := listenControl(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer closeSocket()
			st, ok := RunningIn(fs, dir, snapshot(t))
			if !ok || st.PID != 4242 {
				t.Fatalf("RunningIn = %+v, %v while the control socket is listened on; want its status and true", st, ok)
			}
			if _, ok := RunningIn(fs, dir, nil); ok {
				t.Error("RunningIn without a snapshot = true; want the command line checked, as Running does")
			}

			// A new supervisor listens before it replaces its predecessor's
			// status: a recorded pid that is gone is not running.
			writeStatus(t, dir, Status{State: Ready, PID: 4242, SupervisorPID: deadPID(t)})
			if _, ok := RunningIn(fs, dir, snapshot(t)); ok {
				t.Error("RunningIn = true for a status whose supervisor pid is gone")
			}

			writeStatus(t, dir, Status{State: Ready, PID: 4242, SupervisorPID: os.Getpid()})
			closeSocket()
			if _, ok := RunningIn(fs, dir, snapshot(t)); ok {
				t.Error("RunningIn = true once the control socket is closed")
			}
		})
	}
}

func TestRunningInChecksTheCommandLineOfASupervisorTheSnapshotMisses(t *testing.T) {
	// A supervisor in another network namespace, or one whose socket the
	// snapshot could not see: the command line still shows it runs.
	dir := runDir(t)
	supervisorLookalike(t, dir, Status{State: Ready, PID: 4242})
	if st, ok := RunningIn(afero.NewOsFs(), dir, snapshot(t)); !ok || st.PID != 4242 {
		t.Fatalf("RunningIn = %+v, %v; want the lookalike's status and true", st, ok)
	}
}

func TestParseUnixDiagNameKeepsOnlyFileNames(t *testing.T) {
	msg := func(attrs ...[]byte) []byte {
		b := make([]byte, unixDiagMsgLen)
		for _, a := range attrs {
			b = append(b, a...)
		}
		return b
	}
	attr := func(typ uint16, payload string) []byte {
		b := make([]byte, 4, 4+len(payload)+3)
		binary.NativeEndian.PutUint16(b[0:], uint16(4+len(payload)))
		binary.NativeEndian.PutUint16(b[2:], typ)
		b = append(b, payload...)
		for len(b)%4 != 0 {
			b = append(b, 0)
		}
		return b
	}
	for _, tc := range []struct {
		name string
		msg  []byte
		want string
		ok   bool
	}{
		{"path", msg(attr(unixDiagName, "/run/x/supervisor.sock")), "/run/x/supervisor.sock", true},
		{"path with its NUL", msg(attr(unixDiagName, "/run/x.sock\x00")), "/run/x.sock", true},
		{"after another attribute", msg(attr(5, "abc"), attr(unixDiagName, "/a.sock")), "/a.sock", true},
		{"abstract", msg(attr(unixDiagName, "\x00hidden")), "", false},
		{"unnamed", msg(), "", false},
		{"truncated header", make([]byte, unixDiagMsgLen-1), "", false},
		{"attribute longer than the message", append(msg(), 0xff, 0, 0, 0), "", false},
	} {
		got, ok := parseUnixDiagName(tc.msg)
		if got != tc.want || ok != tc.ok {
			t.Errorf("%s: parseUnixDiagName = %q, %v; want %q, %v", tc.name, got, ok, tc.want, tc.ok)
		}
	}
}

// BenchmarkRunningIn is refresh's cost per replica whose supervisor runs,
// with the snapshot refresh takes once: read status.json, look up the
// socket, signal 0. Compare BenchmarkRunning.
func BenchmarkRunningIn(b *testing.B) {
	dir := runDir(b)
	supervisorLookalike(b, dir, Status{Addr: "pool.p0000/r0", State: Ready, PID: 4242, Port: 8080,
		StartedAt: time.Now().UTC(), ReadyAt: time.Now().UTC(), UpdatedAt: time.Now().UTC(), EngineStartTicks: 723678})
	_, closeSocket, err := listenControl(dir)
	if err != nil {
		b.Fatal(err)
	}
	defer closeSocket()
	fs, socks := afero.NewOsFs(), snapshot(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := RunningIn(fs, dir, socks); !ok {
			b.Fatal("RunningIn = false")
		}
	}
}

// BenchmarkListeningControlSockets is the snapshot's cost: one sock_diag
// dump of every listening unix socket on the machine.
func BenchmarkListeningControlSockets(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		snapshot(b)
	}
}
