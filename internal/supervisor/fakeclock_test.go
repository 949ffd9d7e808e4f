package supervisor

import (
	"context"
	"os"
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
}

func (f *fakeSpawner) Start(ctx context.Context, c Cmd) (Process, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.next++
	p := &fakeProc{pid: 100000 + f.next, done: make(chan ExitStatus, 1)}
	f.procs = append(f.procs, p)
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
func (f fakeProber) Confirm(context.Context, Target) error      { return f.confirm }
func (f fakeProber) Busy(context.Context, Target) (bool, error) { return false, nil }

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
	spec := Spec{
		Addr: "pool.fake/r0", Binary: "engine", Host: "127.0.0.1", Port: freePort(t),
		Health: health, Restart: policy, RunDir: runDir(t),
	}
	r := startRunWith(t, spec, Deps{Spawner: sp, Prober: prober, Clock: clk, Fs: afero.NewMemMapFs()})
	return r, clk, sp
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
