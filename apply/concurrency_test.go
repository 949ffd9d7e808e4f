package apply_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/llorch/llorch/apply"
	"github.com/llorch/llorch/config"
	"github.com/llorch/llorch/internal/supervisor"
	"github.com/llorch/llorch/plan"
	"github.com/llorch/llorch/providers"
)

// gate holds callers until the test lets them go.
type gate struct {
	mu      sync.Mutex
	waiting []chan struct{}
}

func (g *gate) wait(ctx context.Context) error {
	ch := make(chan struct{})
	g.mu.Lock()
	g.waiting = append(g.waiting, ch)
	g.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// releaseAll lets every waiting caller go and says how many there were.
func (g *gate) releaseAll() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, ch := range g.waiting {
		close(ch)
	}
	n := len(g.waiting)
	g.waiting = nil
	return n
}

func manyPools(n int) *config.Config {
	var pools []*config.Pool
	for i := range n {
		pools = append(pools, pool(fmt.Sprintf("pool.p%d", i)))
	}
	return configOf(pools...)
}

func TestParallelismBoundsConcurrentLaunches(t *testing.T) {
	const pools = 6
	tests := []struct {
		name        string
		parallelism int
		want        int
	}{
		{"one at a time", 1, 1},
		{"two at a time", 2, 2},
		{"default is ten", 0, pools},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				e := newEnv(t)
				var g gate
				e.fake.LaunchFunc = func(ctx context.Context, _ supervisor.Spec) error { return g.wait(ctx) }
				cfg := manyPools(pools)
				p := e.plan(cfg, plan.Options{})
				done := make(chan error, 1)
				go func() {
					_, err := e.run(e.ctx, cfg, p, tt.parallelism)
					done <- err
				}()
				launched := 0
				for {
					synctest.Wait()
					select {
					case err := <-done:
						if err != nil {
							t.Fatalf("Run: %v", err)
						}
						if launched != pools {
							t.Errorf("%d launches, want %d", launched, pools)
						}
						if got := e.fake.MaxInFlight(); got != tt.want {
							t.Errorf("at most %d launches at once, want %d", got, tt.want)
						}
						return
					default:
					}
					in := e.fake.InFlight()
					if want := min(tt.want, pools-launched); in != want {
						t.Errorf("%d launches in flight with %d done, want %d", in, launched, want)
					}
					if in == 0 {
						t.Fatal("Run is stuck with nothing in flight")
					}
					launched += g.releaseAll()
				}
			})
		})
	}
}

func TestInterruptFinishesInFlightAndStartsNothingNew(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t)
		var g gate
		e.fake.LaunchFunc = func(ctx context.Context, _ supervisor.Spec) error { return g.wait(ctx) }
		cfg := manyPools(4)
		p := e.plan(cfg, plan.Options{})
		ctx, cancel := context.WithCancel(e.ctx)
		defer cancel()
		done := make(chan error, 1)
		go func() {
			_, err := e.run(ctx, cfg, p, 2)
			done <- err
		}()
		synctest.Wait()
		if n := e.fake.InFlight(); n != 2 {
			t.Fatalf("%d launches in flight before the interrupt, want 2", n)
		}
		cancel() // Ctrl-C
		synctest.Wait()
		if n := g.releaseAll(); n != 2 {
			t.Errorf("%d launches waiting after the interrupt, want the 2 in flight", n)
		}
		err := <-done

		if !errors.Is(err, apply.ErrInterrupted) {
			t.Fatalf("Run = %v, want an error wrapping ErrInterrupted", err)
		}
		containsAll(t, "error", err.Error(), "interrupted: changes not yet started were skipped")
		launched := e.fake.launchedAddrs()
		if len(launched) != 2 {
			t.Fatalf("launched %v after the interrupt, want only the 2 in flight", launched)
		}
		st := e.stored()
		for _, addr := range launched {
			poolAddr, id, _ := strings.Cut(addr, "/")
			if r := replicaOf(t, st, poolAddr, id); r.Status != "ready" || r.PID == 0 {
				t.Errorf("in-flight %s recorded as %q pid %d, want ready", addr, r.Status, r.PID)
			}
		}
		for i := range 4 {
			addr := fmt.Sprintf("pool.p%d", i)
			if slices.Contains(launched, addr+"/r0") {
				continue
			}
			sp := st.Pools[addr]
			if sp == nil {
				continue // interrupted before its engine was prepared
			}
			if r := sp.Replica("r0"); r == nil || r.Status != "failed" || r.LastError != "not started: apply was interrupted" {
				t.Errorf("%s/r0 = %+v, want failed with \"not started: apply was interrupted\"", addr, r)
			}
		}
	})
}

// The first Ctrl-C cancels an Ensure in flight (a 20 s download or build
// must not hold the interrupt up): the provider sees its context
// cancelled, and Run reports the interruption without starting the pool.
func TestInterruptCancelsEnsureInFlight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t)
		started := make(chan struct{})
		var sawCancel bool
		e.prov.EnsureFunc = func(ctx context.Context, req providers.EnsureRequest) (*providers.PreparedEngine, providers.Diagnostics) {
			close(started)
			select {
			case <-ctx.Done():
				sawCancel = true
				return nil, providers.Diagnostics{providers.Errorf("Download interrupted", "downloading the model: %v", ctx.Err())}
			case <-time.After(20 * time.Second):
				return nil, providers.Diagnostics{providers.Errorf("Not cancelled", "Ensure ran to its end")}
			}
		}
		cfg := configOf(pool("pool.chat"))
		p := e.plan(cfg, plan.Options{})
		ctx, cancel := context.WithCancel(e.ctx)
		done := make(chan error, 1)
		go func() {
			_, err := e.run(ctx, cfg, p, 0)
			done <- err
		}()
		<-started
		cancel() // Ctrl-C
		err := <-done
		if !sawCancel {
			t.Fatal("Ensure ran to its end after the interrupt")
		}
		if !errors.Is(err, apply.ErrInterrupted) {
			t.Fatalf("Run = %v, want an error wrapping ErrInterrupted", err)
		}
		if n := len(e.fake.launchedAddrs()); n != 0 {
			t.Errorf("%d replicas launched after an interrupted Ensure", n)
		}
	})
}

// After Ctrl-C an in-place update pushes no settings to supervisors, and
// Run reports the interruption.
func TestInterruptedRunStartsNoSettingsUpdate(t *testing.T) {
	e := newEnv(t)
	before := e.converge(configOf(pool("pool.chat", labels("team", "a"))))
	cfg := configOf(pool("pool.chat", labels("team", "b")))
	p := e.plan(cfg, plan.Options{})
	ctx, cancel := context.WithCancel(e.ctx)
	cancel()
	_, err := e.run(ctx, cfg, p, 0)
	if !errors.Is(err, apply.ErrInterrupted) {
		t.Errorf("Run = %v, want ErrInterrupted", err)
	}
	if pushed := e.fake.Pushes(); len(pushed) != 0 {
		t.Errorf("settings pushed after the interrupt: %v", pushed)
	}
	if got := e.stored().Pools["pool.chat"].SpecHash; got != before.Pools["pool.chat"].SpecHash {
		t.Errorf("the new spec was recorded although nothing was applied")
	}
}

// A supervisor that accepts the connection but never answers (its loop
// wedged) cannot hang `llorch apply`: Ctrl-C ends the wait.
func TestStopDoesNotHangOnASupervisorThatDoesNotAnswer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t)
		cfg := configOf(pool("pool.chat"))
		before := e.converge(cfg)
		hung := replicaOf(t, before, "pool.chat", "r0").RunDir
		unstick := make(chan struct{})
		e.fake.AttachFunc = func(ctx context.Context, runDir string) error {
			if runDir != hung {
				return nil
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-unstick:
				return errors.New("test gave up waiting")
			}
		}
		p := e.plan(cfg, plan.Options{Destroy: true})
		ctx, cancel := context.WithCancel(e.ctx)
		defer cancel()
		done := make(chan error, 1)
		go func() {
			_, err := e.run(ctx, cfg, p, 0)
			done <- err
		}()
		synctest.Wait()
		cancel() // the user gives up: Ctrl-C
		synctest.Wait()
		select {
		case <-done:
		default:
			t.Error("Run still waits for a supervisor that does not answer, even after Ctrl-C")
			close(unstick)
			<-done
		}
	})
}
