package supervisor

import (
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/spf13/afero"

	"github.com/llorch/llorch/internal/clock"
)

// fakeSpawner starts fakeProcs; the test ends them with exit.
type fakeSpawner struct {
	mu    sync.Mutex
	procs []*fakeProc
	next  int
	// started, when set, is called for each new engine (numbered from 1)
	// before Start returns: it may write to the engine's log and end it.
	started func(n int, c Cmd, p *fakeProc)
}

func (f *fakeSpawner) Start(ctx context.Context, c Cmd) (Process, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.next++
	p := &fakeProc{pid: 100000 + f.next, done: make(chan ExitStatus, 1)}
	f.procs = append(f.procs, p)
	if f.started != nil {
		f.started(f.next, c, p)
	}
	return p, nil
}

func (f *fakeSpawner) last() *fakeProc {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.procs[len(f.procs)-1]
}

type fakeProc struct {
	pid  int
	once sync.Once
	done chan ExitStatus
}

func (p *fakeProc) PID() int                { return p.pid }
func (p *fakeProc) Done() <-chan ExitStatus { return p.done }

// Signal: a well-behaved engine exits on SIGTERM.
func (p *fakeProc) Signal(sig os.Signal) error {
	if sig == syscall.SIGTERM || sig == syscall.SIGKILL {
		p.exit(ExitStatus{Code: -1, Signal: sig.(syscall.Signal)})
	}
	return nil
}

func (p *fakeProc) exit(es ExitStatus) {
	p.once.Do(func() { p.done <- es; close(p.done) })
}

// fakeProber answers /health with code for every engine; confirm is
// Confirm's answer.
type fakeProber struct {
	code    int
	confirm error
}

func (f fakeProber) Health(context.Context, Target) (int, string, error) {
	if f.code == 503 {
		return f.code, "503 Loading model", nil
	}
	return f.code, "200 ok", nil
}
func (f fakeProber) Confirm(context.Context, Target) error         { return f.confirm }
func (f fakeProber) InFlight(context.Context, Target) (int, error) { return 0, nil }
func (f fakeProber) Complete(context.Context, Target, string, int) (string, error) {
	return " fake", nil
}

var fakeEpoch = time.Date(2025, 6, 1, 8, 0, 0, 0, time.UTC)

// startFake runs the supervisor on a fake clock, a fake spawner and a
// fake prober; only the control socket is real.
func startFake(t *testing.T, policy RestartPolicy, health HealthPolicy) (*running, *clock.Fake, *fakeSpawner) {
	t.Helper()
	code := 200
	if health.Path == "/never-ready" {
		code = 503
	}
	return startFakeProber(t, policy, health, fakeProber{code: code})
}

func startFakeProber(t *testing.T, policy RestartPolicy, health HealthPolicy, prober Prober) (*running, *clock.Fake, *fakeSpawner) {
	t.Helper()
	clk := clock.NewFake(fakeEpoch)
	sp := &fakeSpawner{}
	r := startRunWith(t, fakeClockSpec(t, policy, health), Deps{Spawner: sp, Prober: prober, Clock: clk, Fs: afero.NewMemMapFs()})
	return r, clk, sp
}

func fakeClockSpec(t *testing.T, policy RestartPolicy, health HealthPolicy) Spec {
	return Spec{
		Addr: "pool.fake/r0", Binary: "engine", Host: "127.0.0.1", Port: freePort(t),
		Health: health, Restart: policy, RunDir: runDir(t),
	}
}

func TestBackoffFollowsThePolicyExactlyOnAFakeClock(t *testing.T) {
	r, clk, sp := startFake(t,
		RestartPolicy{Policy: "always", InitialBackoff: time.Second, MaxBackoff: time.Minute, Multiplier: 2},
		HealthPolicy{StartTimeout: time.Hour, LiveInterval: time.Hour})
	r.waitFor(t, "ready", isState(Ready))

	sp.last().exit(ExitStatus{Code: 1})
	st, _ := r.waitFor(t, "backoff", isState(Backoff))
	if want := fakeEpoch.Add(time.Second); !st.NextRestartAt.Equal(want) || !st.UpdatedAt.Equal(fakeEpoch) {
		t.Fatalf("backoff at %v until %v, want at %v until %v", st.UpdatedAt, st.NextRestartAt, fakeEpoch, want)
	}

	clk.Advance(999 * time.Millisecond)
	if got, err := r.client.Status(waitCtx(t)); err != nil || got.State != Backoff {
		t.Fatalf("1ms before the backoff ends: %+v, %v; want still backoff", got, err)
	}
	clk.Advance(time.Millisecond)
	st, _ = r.waitFor(t, "ready after the backoff", func(st Status) bool { return st.State == Ready && st.Restarts == 1 })
	if want := fakeEpoch.Add(time.Second); !st.StartedAt.Equal(want) || !st.ReadyAt.Equal(want) {
		t.Fatalf("second engine started %v, ready %v; want both at %v", st.StartedAt, st.ReadyAt, want)
	}

	sp.last().exit(ExitStatus{Code: -1, Signal: syscall.SIGSEGV})
	st, _ = r.waitFor(t, "second backoff", isState(Backoff))
	if want := fakeEpoch.Add(3 * time.Second); !st.NextRestartAt.Equal(want) {
		t.Fatalf("second backoff until %v, want %v (2s, doubled)", st.NextRestartAt, want)
	}
	if want := "engine was killed by signal SIGSEGV; restarting in 2s (attempt 2) (the engine wrote nothing to its log)"; st.LastError != want {
		t.Fatalf("last_error %q\nwant %q", st.LastError, want)
	}
}

func TestStartTimeoutFiresExactlyAtTheDeadlineOnAFakeClock(t *testing.T) {
	r, clk, sp := startFake(t,
		RestartPolicy{Policy: "never"},
		HealthPolicy{Path: "/never-ready", Interval: time.Second, StartTimeout: 10 * time.Second, LiveInterval: time.Hour})
	r.waitFor(t, "starting", isState(Starting))
	ctx := waitCtx(t)
	// Step the readiness polls one by one, waiting each time until the loop
	// has armed its next poll, so that no poll is skipped.
	for i := 0; i < 9; i++ {
		if err := clk.WaitTimers(ctx, 2); err != nil { // start deadline + next poll
			t.Fatal(err)
		}
		clk.Advance(time.Second)
	}
	if st, err := r.client.Status(ctx); err != nil || st.State != Starting {
		t.Fatalf("at 9s of a 10s start timeout: %+v, %v; want still starting", st, err)
	}
	if err := clk.WaitTimers(ctx, 2); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Second)
	st, _ := r.waitFor(t, "failed", isState(Failed))
	want := `not ready after 10s (last /never-ready answer: 503 Loading model); restart policy "never" does not restart the engine (the engine wrote nothing to its log)`
	if st.LastError != want || !st.UpdatedAt.Equal(fakeEpoch.Add(10*time.Second)) {
		t.Fatalf("failed at %v with %q\nwant at %v with %q", st.UpdatedAt, st.LastError, fakeEpoch.Add(10*time.Second), want)
	}
	if len(sp.procs) != 1 {
		t.Fatalf("%d engines started, want 1 (policy never)", len(sp.procs))
	}
}

func TestAnotherServerAnsweringFailsTheReplicaWithoutRestarts(t *testing.T) {
	foreign := &ForeignServerError{Host: "127.0.0.1", Port: 8080, PID: 100001, By: "pid 777, llama-server"}
	r, _, sp := startFakeProber(t,
		RestartPolicy{Policy: "always", MaxFailures: 5},
		HealthPolicy{StartTimeout: time.Hour, LiveInterval: time.Hour},
		fakeProber{code: 200, confirm: foreign})
	st, seen := r.waitFor(t, "failed", isState(Failed))
	want := "port 8080 on 127.0.0.1 is answered by another process (pid 777, llama-server), not by the engine (pid 100001); stop that process or give the pool another port"
	if st.LastError != want || st.Restarts != 0 {
		t.Fatalf("failed with %q restarts=%d\nwant %q and no restarts", st.LastError, st.Restarts, want)
	}
	if contains(states(seen), Ready) || len(sp.procs) != 1 {
		t.Fatalf("states %v with %d engines; want never ready and one engine", states(seen), len(sp.procs))
	}
	select {
	case <-sp.last().done:
	default:
		t.Fatal("the engine that lost its port is still running")
	}
}

// gateWriter stands in for the launcher's status pipe: Run treats the
// first start as the health gate while Notify is set, and closes it when
// the gate is decided.
type gateWriter struct {
	mu     sync.Mutex
	closed chan struct{}
}

func newGateWriter() *gateWriter { return &gateWriter{closed: make(chan struct{})} }

func (g *gateWriter) Write(p []byte) (int, error) { return len(p), nil }

func (g *gateWriter) Close() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-g.closed:
	default:
		close(g.closed)
	}
	return nil
}

func (g *gateWriter) isClosed() bool {
	select {
	case <-g.closed:
		return true
	default:
		return false
	}
}

// failBind makes engines 1..n log llama-server's bind failure and exit 1.
func failBind(n int, port int) func(int, Cmd, *fakeProc) {
	return func(i int, c Cmd, p *fakeProc) {
		if i > n {
			return
		}
		fmt.Fprintf(c.Log, "main: couldn't bind HTTP server socket, hostname: 127.0.0.1, port: %d\n", port)
		p.exit(ExitStatus{Code: 1})
	}
}

func TestEngineBindFailureAtTheGateIsRetriedUnderThePolicyOnAFakeClock(t *testing.T) {
	clk := clock.NewFake(fakeEpoch)
	spec := fakeClockSpec(t,
		RestartPolicy{Policy: "always", InitialBackoff: time.Second, MaxBackoff: time.Minute, Multiplier: 2, MaxFailures: 5},
		HealthPolicy{StartTimeout: time.Hour, LiveInterval: time.Hour})
	sp := &fakeSpawner{started: failBind(2, spec.Port)}
	gate := newGateWriter()
	r := startRunWith(t, spec, Deps{Spawner: sp, Prober: fakeProber{code: 200}, Clock: clk, Fs: afero.NewMemMapFs(), Notify: gate})

	st, _ := r.waitFor(t, "backoff after the first bind failure", isState(Backoff))
	want := fmt.Sprintf("the engine could not bind port %d on 127.0.0.1, where nothing listens: connections of an engine that stopped moments ago are still closing (TIME-WAIT, up to 1m0s), and this engine does not bind over them; restarting in 1s (attempt 1)", spec.Port)
	if !strings.HasPrefix(st.LastError, want) {
		t.Fatalf("last_error %q\nwant it to start with %q", st.LastError, want)
	}
	if gate.isClosed() {
		t.Fatal("the health gate was decided on a bind failure; want it to wait for the retry")
	}
	clk.Advance(time.Second)
	r.waitFor(t, "second backoff", isState(Backoff))
	clk.Advance(2 * time.Second)
	st, _ = r.waitFor(t, "ready on the third engine", isState(Ready))
	if st.Restarts != 2 || len(sp.procs) != 3 {
		t.Fatalf("ready with restarts=%d after %d engines, want 2 and 3", st.Restarts, len(sp.procs))
	}
	select {
	case <-gate.closed:
	case <-waitCtx(t).Done():
		t.Fatal("the health gate was not decided once the engine was ready")
	}
}

func TestEngineBindFailureAtTheGateEndsTheGateWhenTheBreakerOpensOnAFakeClock(t *testing.T) {
	clk := clock.NewFake(fakeEpoch)
	spec := fakeClockSpec(t,
		RestartPolicy{Policy: "always", InitialBackoff: time.Second, Multiplier: 1, MaxFailures: 2, Cooldown: time.Minute},
		HealthPolicy{StartTimeout: time.Hour, LiveInterval: time.Hour})
	sp := &fakeSpawner{started: failBind(100, spec.Port)}
	gate := newGateWriter()
	r := startRunWith(t, spec, Deps{Spawner: sp, Prober: fakeProber{code: 200}, Clock: clk, Fs: afero.NewMemMapFs(), Notify: gate})
	r.waitFor(t, "backoff", isState(Backoff))
	clk.Advance(time.Second)
	st, _ := r.waitFor(t, "failed", isState(Failed))
	if !strings.Contains(st.LastError, "circuit breaker open after 2 consecutive failures") || !strings.Contains(st.LastError, "could not bind port") {
		t.Fatalf("last_error %q, want the bind failure and the open breaker", st.LastError)
	}
	select {
	case <-gate.closed:
	case <-waitCtx(t).Done():
		t.Fatal("the health gate was not decided when the breaker opened")
	}
}

func TestAnEngineFailingOtherwiseAtTheGateFailsAtOnceOnAFakeClock(t *testing.T) {
	clk := clock.NewFake(fakeEpoch)
	spec := fakeClockSpec(t, RestartPolicy{Policy: "always", MaxFailures: 5}, HealthPolicy{StartTimeout: time.Hour, LiveInterval: time.Hour})
	sp := &fakeSpawner{started: func(_ int, c Cmd, p *fakeProc) {
		fmt.Fprintln(c.Log, "llama_model_load: error loading model")
		p.exit(ExitStatus{Code: -1, Signal: syscall.SIGABRT})
	}}
	gate := newGateWriter()
	r := startRunWith(t, spec, Deps{Spawner: sp, Prober: fakeProber{code: 200}, Clock: clk, Fs: afero.NewMemMapFs(), Notify: gate})
	st, _ := r.waitFor(t, "failed", isState(Failed))
	if st.Restarts != 0 || len(sp.procs) != 1 {
		t.Fatalf("failed after %d restarts and %d engines, want none retried", st.Restarts, len(sp.procs))
	}
}

func TestRestartOntoAPortAnotherProcessTookIsRetriedOnAFakeClock(t *testing.T) {
	clk := clock.NewFake(fakeEpoch)
	spec := fakeClockSpec(t,
		RestartPolicy{Policy: "always", InitialBackoff: 0, MaxFailures: 3, Cooldown: time.Minute},
		HealthPolicy{StartTimeout: time.Hour, LiveInterval: time.Hour})
	sp := &fakeSpawner{}
	r := startRunWith(t, spec, Deps{Spawner: sp, Prober: fakeProber{code: 200}, Clock: clk, Fs: afero.NewMemMapFs()})
	r.waitFor(t, "ready", isState(Ready))

	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(spec.Port)))
	if err != nil {
		t.Fatal(err)
	}
	sp.last().exit(ExitStatus{Code: 1})
	// A zero backoff still waits spawnRetryFloor between refused starts.
	st, _ := r.waitFor(t, "backoff on the taken port", isState(Backoff))
	comm, _ := os.ReadFile("/proc/self/comm")
	want := fmt.Sprintf("port %d on 127.0.0.1 is already in use by another process (pid %d, %s); stop that process or give the pool another port; restarting in 100ms (attempt 2)",
		spec.Port, os.Getpid(), strings.TrimSpace(string(comm)))
	if st.LastError != want || !st.NextRestartAt.Equal(fakeEpoch.Add(spawnRetryFloor)) {
		t.Fatalf("backoff until %v with %q\nwant until %v with %q", st.NextRestartAt, st.LastError, fakeEpoch.Add(spawnRetryFloor), want)
	}
	ln.Close()
	clk.Advance(spawnRetryFloor)
	st, _ = r.waitFor(t, "ready once the port is free", isState(Ready))
	if len(sp.procs) != 2 {
		t.Fatalf("%d engines started, want 2 (none while the port was taken)", len(sp.procs))
	}
}
