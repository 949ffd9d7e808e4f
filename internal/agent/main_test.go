package agent_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
	"github.com/spf13/afero"

	"github.com/llorch/llorch/internal/agent"
	"github.com/llorch/llorch/internal/fakeengine"
	"github.com/llorch/llorch/internal/freeport"
	"github.com/llorch/llorch/internal/remote"
	"github.com/llorch/llorch/internal/remote/sshtest"
	"github.com/llorch/llorch/internal/supervisor"
	"github.com/llorch/llorch/internal/testgguf"
)

// server is one sshd for the test binary; the "remote machine" is this
// one, reached through it, with a data directory of each test's.
var (
	server    *sshtest.Server
	serverErr error
)

// TestMain makes copies of this test binary named llorch (its agent and
// supervise commands) and fake-llama-server, so that the agent run over
// SSH and the supervisors it launches are real processes without a build
// step.
func TestMain(m *testing.M) {
	if _, ok := os.LookupEnv("GORACE"); !ok {
		_ = os.Setenv("GORACE", "atexit_sleep_ms=0")
	}
	testscript.Main(mainWithServer{m}, map[string]func(){
		"llorch":            llorchMain,
		"fake-llama-server": fakeengine.Main,
	})
}

// mainWithServer runs the tests with the shared sshd.
type mainWithServer struct{ m *testing.M }

func (w mainWithServer) Run() int {
	dir, err := os.MkdirTemp("", "llorch-agent-sshd-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	server, serverErr = sshtest.Run(dir)
	code := w.m.Run()
	if server != nil {
		_ = server.Stop()
		if code != 0 {
			fmt.Fprintf(os.Stderr, "sshd log:\n%s\n", server.Log(60))
		}
	}
	return code
}

// llorchMain is the part of cmd/llorch the agent needs: `agent -data-dir
// DIR` and `supervise RUNDIR`.
func llorchMain() {
	// sshd gives the agent a fresh environment; its supervisors inherit
	// this, so that a race-enabled copy does not sleep a second at exit.
	_ = os.Setenv("GORACE", "atexit_sleep_ms=0")
	if len(os.Args) == 3 && os.Args[1] == "supervise" {
		if err := supervisor.Command(context.Background(), os.Args[2]); err != nil {
			fmt.Fprintln(os.Stderr, "Error:", err)
			os.Exit(1)
		}
		return
	}
	fs := flag.NewFlagSet("agent", flag.ExitOnError)
	dataDir := fs.String("data-dir", "", "")
	if len(os.Args) < 2 || os.Args[1] != "agent" || fs.Parse(os.Args[2:]) != nil {
		fmt.Fprintln(os.Stderr, "usage: llorch agent -data-dir DIR | llorch supervise RUNDIR")
		os.Exit(2)
	}
	if err := agent.Serve(context.Background(), os.Stdin, os.Stdout, agent.Options{DataDir: *dataDir}); err != nil {
		fmt.Fprintln(os.Stderr, "llorch agent:", err)
		os.Exit(1)
	}
}

// testTimeout bounds every wait; reaching it is a failure.
const testTimeout = 30 * time.Second

func waitCtx(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

func shared(t testing.TB) *sshtest.Server {
	t.Helper()
	if serverErr != nil {
		t.Fatal(serverErr)
	}
	return server
}

// dial connects to the shared sshd as machine "gpu1".
func dial(t testing.TB) *remote.Conn {
	t.Helper()
	s := shared(t)
	c, err := remote.Dial(waitCtx(t), remote.Machine{
		Name: "gpu1", Address: s.Host, Port: s.Port, User: s.User,
		PrivateKeyFile: s.ClientKeyFile, KnownHostsFile: s.KnownHostsFile,
		ConnectTimeout: 10 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// self is this test binary, which StartAgent uploads as llorch.
func self(t testing.TB) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return exe
}

// lookPath finds a copy testscript.Main made: sshd's environment has
// no such PATH, so specs name it by its full path.
func lookPath(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// dataDir is a short data directory (unix socket paths are short) that
// is removed, and every supervisor under it killed, when t ends.
func dataDir(t testing.TB) string {
	t.Helper()
	d, err := os.MkdirTemp("", "ag")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		runs, _ := filepath.Glob(filepath.Join(d, "run", "*"))
		for _, r := range runs {
			if killed, err := supervisor.KillSupervisor(afero.NewOsFs(), r, 10*time.Second); killed || err != nil {
				t.Errorf("a supervisor was left running in %s (killed: %v)", r, err)
			}
		}
		_ = os.RemoveAll(d)
	})
	return d
}

// fakeSpec is a replica of the fake engine in dataDir/run/NAME.
func fakeSpec(t testing.TB, dataDir, name string, knobs map[string]string) supervisor.Spec {
	t.Helper()
	port, err := freeport.Port()
	if err != nil {
		t.Fatal(err)
	}
	model := testgguf.File(t, testgguf.Small(), "small-generated.gguf")
	run := filepath.Join(dataDir, "run", name)
	return supervisor.Spec{
		Addr: "pool.chat/" + name, PoolID: "chat", ReplicaID: name,
		Binary:    lookPath(t, "fake-llama-server"),
		Args:      []string{"-m", model, "--host", "127.0.0.1", "--port", strconv.Itoa(port)},
		Env:       knobs,
		Host:      "127.0.0.1",
		Port:      port,
		ModelPath: model,
		Health: supervisor.HealthPolicy{
			Interval: 10 * time.Millisecond, StartTimeout: 10 * time.Second,
			LiveInterval: 50 * time.Millisecond, Failures: 2,
		},
		Restart: supervisor.RestartPolicy{
			Policy: "always", MaxBackoff: time.Second, Multiplier: 2,
			ResetAfter: time.Hour, MaxFailures: 5, Cooldown: time.Minute,
		},
		Drain:       supervisor.DrainPolicy{Deadline: 10 * time.Second},
		StopGrace:   2 * time.Second,
		RunDir:      run,
		HandoffPath: filepath.Join(dataDir, "handoff", "chat-"+name+".json"),
	}
}
