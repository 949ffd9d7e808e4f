package supervisor

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/llorch/llorch/internal/fakeengine"
	"github.com/llorch/llorch/internal/testgguf"
)

// TestMain puts `llorch` (only its supervise subcommand) and the fake
// llama-server on PATH as copies of this test binary, so real-process tests
// need no build step.
func TestMain(m *testing.M) {
	// A race-enabled binary sleeps 1s at exit by default; the engines and
	// supervisors here are copies of this binary.
	if _, ok := os.LookupEnv("GORACE"); !ok {
		_ = os.Setenv("GORACE", "atexit_sleep_ms=0")
	}
	testscript.Main(m, map[string]func(){
		"llorch":            superviseMain,
		"fake-llama-server": fakeengine.Main,
	})
}

func superviseMain() {
	if len(os.Args) != 3 || os.Args[1] != "supervise" {
		fmt.Fprintln(os.Stderr, "usage: llorch supervise RUNDIR")
		os.Exit(2)
	}
	if err := Command(context.Background(), os.Args[2]); err != nil {
		fmt.Fprintln(os.Stderr, "Error:", err)
		os.Exit(1)
	}
}

// testTimeout bounds every wait in a real-process test; reaching it is a
// failure, never a pass.
const testTimeout = 20 * time.Second

func waitCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// modelPath writes a small generated GGUF model for the test and returns
// its path; the fake engine checks the file as the real loader starts to.
func modelPath(t testing.TB) string {
	t.Helper()
	return testgguf.File(t, testgguf.Small(), "small-generated.gguf")
}

// freePort returns a port nothing listens on right now.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// runDir returns a short private directory (unix socket paths are short).
func runDir(t testing.TB) string {
	t.Helper()
	d, err := os.MkdirTemp("", "sv")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(d) })
	return d
}

// fakeSpec describes a replica of the fake engine with fast test timings;
// knobs are the fake's FAKE_* environment.
func fakeSpec(t testing.TB, knobs map[string]string) Spec {
	t.Helper()
	port := freePort(t)
	dir := runDir(t)
	model := modelPath(t)
	env := map[string]string{}
	for k, v := range knobs {
		env[k] = v
	}
	return Spec{
		Addr: "pool.chat/r0", PoolID: "chat", ReplicaID: "r0",
		Binary:    "fake-llama-server",
		Args:      []string{"-m", model, "--host", "127.0.0.1", "--port", strconv.Itoa(port), "--metrics"},
		Env:       env,
		Host:      "127.0.0.1",
		Port:      port,
		ModelPath: model,
		Health: HealthPolicy{
			Interval: 10 * time.Millisecond, StartTimeout: 10 * time.Second,
			LiveInterval: 50 * time.Millisecond, Failures: 2,
		},
		Restart: RestartPolicy{
			Policy: "always", InitialBackoff: 0, MaxBackoff: time.Second, Multiplier: 2,
			ResetAfter: time.Hour, MaxFailures: 5, Cooldown: time.Minute,
		},
		Drain:       DrainPolicy{Deadline: 10 * time.Second},
		StopGrace:   2 * time.Second,
		RunDir:      dir,
		HandoffPath: filepath.Join(dir, "handoff", "chat-r0.json"),
	}
}

// counterKnobs make the fake's fault knobs apply to the first n starts only.
func counterKnobs(t testing.TB, n int, knobs map[string]string) map[string]string {
	t.Helper()
	knobs["FAKE_CRASH_TIMES"] = strconv.Itoa(n)
	knobs["FAKE_COUNTER_FILE"] = filepath.Join(t.TempDir(), "starts")
	return knobs
}

// running is a supervisor run in this test process (real engine processes).
type running struct {
	spec   Spec
	client *SocketClient
	cancel context.CancelFunc
	done   chan error
	rec    *recorder
}

// recorder keeps every status the supervisor published, from the first:
// waits consume it in order, so no state change between two waits is
// missed however late the test gets to look.
type recorder struct {
	mu      sync.Mutex
	sts     []Status
	closed  bool
	changed chan struct{}
	next    int // first status the next wait looks at
}

func newRecorder(ch <-chan Status) *recorder {
	r := &recorder{changed: make(chan struct{})}
	go func() {
		// Ends when the supervisor's loop closes its watchers.
		for st := range ch {
			r.mu.Lock()
			r.sts = append(r.sts, st)
			close(r.changed)
			r.changed = make(chan struct{})
			r.mu.Unlock()
		}
		r.mu.Lock()
		r.closed = true
		close(r.changed)
		r.mu.Unlock()
	}()
	return r
}

// startRun runs the supervisor in-process and registers a cleanup that
// stops it and checks that it returned.
func startRun(t *testing.T, spec Spec) *running {
	t.Helper()
	return startRunWith(t, spec, Deps{})
}

func startRunWith(t *testing.T, spec Spec, deps Deps) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{spec: spec, cancel: cancel, done: make(chan error, 1)}
	ln, cleanup, err := listenControl(spec.RunDir)
	if err != nil {
		t.Fatal(err)
	}
	deps.watch = make(chan Status, watchBuffer)
	r.rec = newRecorder(deps.watch)
	deps.Listener = ln
	go func() {
		defer cleanup()
		r.done <- Run(ctx, spec, deps)
	}()
	c, err := newSocketClient(spec.RunDir)
	if err != nil {
		t.Fatal(err)
	}
	r.client = c
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-r.done:
			if err != nil {
				t.Errorf("Run returned %v", err)
			}
		case <-time.After(testTimeout):
			t.Errorf("Run did not return after cancel")
		}
	})
	return r
}

// waitFor waits until a status published after the previous wait's match
// satisfies cond, and returns it with every status since that match
// (including this one).
func (r *running) waitFor(t *testing.T, what string, cond func(Status) bool) (Status, []Status) {
	t.Helper()
	ctx := waitCtx(t)
	rec := r.rec
	rec.mu.Lock()
	from := rec.next
	rec.mu.Unlock()
	for {
		rec.mu.Lock()
		for rec.next < len(rec.sts) {
			st := rec.sts[rec.next]
			rec.next++
			if cond(st) {
				seen := slices.Clone(rec.sts[from:rec.next])
				rec.mu.Unlock()
				return st, seen
			}
		}
		closed, changed, all := rec.closed, rec.changed, slices.Clone(rec.sts)
		rec.mu.Unlock()
		if closed {
			t.Fatalf("waiting for %s: the supervisor ended; statuses:\n%s", what, describe(all))
		}
		select {
		case <-changed:
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v; statuses:\n%s", what, ctx.Err(), describe(all))
		}
	}
}

func describe(sts []Status) string {
	var b strings.Builder
	for _, st := range sts {
		fmt.Fprintf(&b, "  %s pid=%d restarts=%d last_error=%q\n", st.State, st.PID, st.Restarts, st.LastError)
	}
	return b.String()
}

func states(sts []Status) []State {
	var out []State
	for _, st := range sts {
		if len(out) == 0 || out[len(out)-1] != st.State {
			out = append(out, st.State)
		}
	}
	return out
}

func isState(want State) func(Status) bool {
	return func(st Status) bool { return st.State == want }
}

// engineLog reads a run directory's engine.log.
func readEngineLog(t *testing.T, dir string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, EngineLogFile))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// waitProcessGone fails the test unless pid exits before the test timeout.
func waitProcessGone(t *testing.T, pid int, what string) {
	t.Helper()
	if err := waitGone(waitCtx(t), pid); err != nil {
		t.Fatalf("%s (pid %d) still running: %v", what, pid, err)
	}
	if Alive(pid) {
		t.Fatalf("%s (pid %d) is alive after its pidfd reported an exit", what, pid)
	}
}

// llorchExe is the `llorch` copy testscript put on PATH.
func llorchExe(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("llorch")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func launcher(t *testing.T) *ExecLauncher {
	return &ExecLauncher{Exe: llorchExe(t), Args: []string{"supervise"}}
}

// launch starts a detached supervisor and stops it when the test ends.
func launch(t *testing.T, spec Spec) (*SocketClient, Status) {
	t.Helper()
	c, st, err := launcher(t).Launch(waitCtx(t), spec)
	if err != nil {
		t.Fatalf("Launch: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		if err := c.Stop(ctx, 0); err != nil && !errors.Is(err, ErrNotRunning) {
			t.Errorf("stopping supervisor: %v", err)
		}
	})
	return c.(*SocketClient), st
}

func contains(haystack []State, s State) bool { return slices.Contains(haystack, s) }
