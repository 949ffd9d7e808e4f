package apply_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"testing/synctest"
	"time"

	"github.com/spf13/afero"

	"github.com/llorch/llorch/apply"
	"github.com/llorch/llorch/internal/supervisor"
	"github.com/llorch/llorch/plan"
	"github.com/llorch/llorch/state"
)

func TestRefreshReportsWhatTheSupervisorSays(t *testing.T) {
	tests := []struct {
		name        string
		break_      func(e *env, r *state.Replica)
		wantStatus  string
		wantAlive   bool
		wantReason  func(r *state.Replica) string
		wantLivePID bool
		wantRestart int
	}{
		{
			name:        "ready",
			wantStatus:  "ready",
			wantAlive:   true,
			wantReason:  func(*state.Replica) string { return "" },
			wantLivePID: true,
		},
		{
			name: "restarting is still kept up by its supervisor",
			break_: func(e *env, r *state.Replica) {
				e.fake.setStatus(r.RunDir, func(s *supervisor.Status) { s.State, s.Restarts = supervisor.Backoff, 2 })
			},
			wantStatus:  "backoff",
			wantAlive:   true,
			wantReason:  func(*state.Replica) string { return "" },
			wantLivePID: true,
			wantRestart: 2,
		},
		{
			name: "circuit breaker open",
			break_: func(e *env, r *state.Replica) {
				e.fake.fail(r.RunDir, "circuit breaker open: engine exited with status 134")
			},
			wantStatus:  "failed",
			wantReason:  func(*state.Replica) string { return "circuit breaker open: engine exited with status 134" },
			wantRestart: 5,
		},
		{
			name: "failed without a reason",
			break_: func(e *env, r *state.Replica) {
				e.fake.setStatus(r.RunDir, func(s *supervisor.Status) { s.State, s.PID = supervisor.Failed, 0 })
			},
			wantStatus: "failed",
			wantReason: func(*state.Replica) string { return "replica is failed" },
		},
		{
			name: "supervisor gone, status.json has its last error",
			break_: func(e *env, r *state.Replica) {
				e.fake.setStatus(r.RunDir, func(s *supervisor.Status) { s.LastError = "engine exited with status 137" })
				e.fake.kill(r.RunDir)
			},
			wantStatus: "exited",
			wantReason: func(r *state.Replica) string {
				return fmt.Sprintf("supervisor (pid %d) is not running; last error: engine exited with status 137", r.SupervisorPID)
			},
		},
		{
			name:       "supervisor gone",
			break_:     func(e *env, r *state.Replica) { e.fake.kill(r.RunDir) },
			wantStatus: "exited",
			wantReason: func(r *state.Replica) string {
				return fmt.Sprintf("supervisor (pid %d) is not running", r.SupervisorPID)
			},
		},
		{
			name: "supervisor gone without a trace",
			break_: func(e *env, r *state.Replica) {
				e.fake.kill(r.RunDir)
				if err := e.fs.RemoveAll(r.RunDir); err != nil {
					panic(err)
				}
			},
			wantStatus: "exited",
			wantReason: func(r *state.Replica) string {
				return fmt.Sprintf("supervisor (pid %d) is not running", r.SupervisorPID)
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			st := e.converge(configOf(pool("pool.chat")))
			sp := st.Pools["pool.chat"]
			r := sp.Replica("r0")
			if tt.break_ != nil {
				tt.break_(e, r)
			}
			rf := &apply.Refresher{Launcher: e.fake, Fs: e.fs}
			obs, err := rf.Refresh(e.ctx, sp, r)
			if err != nil {
				t.Fatalf("Refresh: %v", err)
			}
			if obs.Status != tt.wantStatus || obs.Alive != tt.wantAlive {
				t.Errorf("status %q alive %v, want %q %v", obs.Status, obs.Alive, tt.wantStatus, tt.wantAlive)
			}
			if want := tt.wantReason(r); obs.Reason != want {
				t.Errorf("reason %q, want %q", obs.Reason, want)
			}
			if tt.wantLivePID && obs.PID != r.PID {
				t.Errorf("pid %d, want %d", obs.PID, r.PID)
			}
			if !tt.wantLivePID && obs.PID != 0 {
				t.Errorf("pid %d for a replica without an engine", obs.PID)
			}
			if obs.Restarts != tt.wantRestart {
				t.Errorf("restarts %d, want %d", obs.Restarts, tt.wantRestart)
			}
			if obs.BinaryChanged || obs.ModelChanged {
				t.Errorf("files reported changed: %+v", obs)
			}
		})
	}
}

func TestRefreshOfAReplicaThatNeverStarted(t *testing.T) {
	tests := []struct {
		lastError, want string
	}{
		{"not started: apply was interrupted", "not started: apply was interrupted"},
		{"", "never started"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			e := newEnv(t)
			rf := &apply.Refresher{Launcher: e.fake, Fs: e.fs}
			r := &state.Replica{ID: "r0", Status: state.StatusFailed, LastError: tt.lastError}
			obs, err := rf.Refresh(e.ctx, &state.Pool{Replicas: []*state.Replica{r}}, r)
			if err != nil {
				t.Fatal(err)
			}
			if obs.Status != "failed" || obs.Alive || obs.Reason != tt.want {
				t.Errorf("observed %q alive %v reason %q, want failed, not alive, %q", obs.Status, obs.Alive, obs.Reason, tt.want)
			}
		})
	}
}

func TestRefreshNoticesFilesChangedOnDisk(t *testing.T) {
	later := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name                   string
		change                 func(t *testing.T, bin, mdl string)
		wantBinary, wantModels bool
	}{
		{"unchanged", func(*testing.T, string, string) {}, false, false},
		{"model rewritten with another size", func(t *testing.T, _, mdl string) { write(t, mdl, "GGUF-a-longer-model") }, false, true},
		{"binary touched", func(t *testing.T, bin, _ string) {
			if err := os.Chtimes(bin, later, later); err != nil {
				t.Fatal(err)
			}
		}, true, false},
		{"model deleted", func(t *testing.T, _, mdl string) {
			if err := os.Remove(mdl); err != nil {
				t.Fatal(err)
			}
		}, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			bin, mdl := filepath.Join(dir, "llama-server"), filepath.Join(dir, "m.gguf")
			write(t, bin, "#!engine")
			write(t, mdl, "GGUF-model")
			bi, _ := os.Stat(bin)
			mi, _ := os.Stat(mdl)
			sp := &state.Pool{Prepared: &state.Prepared{
				BinaryPath: bin, BinarySize: bi.Size(), BinaryMtime: bi.ModTime().UTC(),
				ModelPath: mdl, ModelSize: mi.Size(), ModelMtime: mi.ModTime().UTC(),
			}}
			r := &state.Replica{ID: "r0", Status: "ready"}
			sp.Replicas = []*state.Replica{r}
			tt.change(t, bin, mdl)
			e := newEnv(t)
			obs, err := (&apply.Refresher{Launcher: e.fake, Fs: afero.NewOsFs()}).Refresh(e.ctx, sp, r)
			if err != nil {
				t.Fatal(err)
			}
			if obs.BinaryChanged != tt.wantBinary || obs.ModelChanged != tt.wantModels {
				t.Errorf("binary changed %v model changed %v, want %v %v", obs.BinaryChanged, obs.ModelChanged, tt.wantBinary, tt.wantModels)
			}
		})
	}
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestRefreshGivesUpOnAHungSupervisorAfterTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t)
		st := e.converge(configOf(pool("pool.chat")))
		sp := st.Pools["pool.chat"]
		r := sp.Replica("r0")
		e.fake.AttachFunc = func(ctx context.Context, _ string) error {
			<-ctx.Done()
			return ctx.Err()
		}
		rf := &apply.Refresher{Launcher: e.fake, Fs: e.fs, Timeout: 3 * time.Second}
		start := time.Now() // the bubble's clock: moves only while everything waits
		obs, err := rf.Refresh(e.ctx, sp, r)
		if err != nil {
			t.Fatal(err)
		}
		if waited := time.Since(start); waited != 3*time.Second {
			t.Errorf("waited %v for the supervisor, want the 3s timeout", waited)
		}
		if obs.Alive || obs.Status != "exited" {
			t.Errorf("observed %q alive %v, want not alive", obs.Status, obs.Alive)
		}
		containsAll(t, "reason", obs.Reason, fmt.Sprintf("supervisor (pid %d)", r.SupervisorPID))
	})
}

func TestPlanAfterRefreshRestartsWhatDied(t *testing.T) {
	e := newEnv(t)
	cfg := configOf(pool("pool.chat", replicas(3)))
	st := e.converge(cfg)
	e.fake.kill(replicaOf(t, st, "pool.chat", "r1").RunDir)
	e.fake.fail(replicaOf(t, st, "pool.chat", "r2").RunDir, "circuit breaker open: out of memory")
	p := e.plan(cfg, plan.Options{})
	got := map[string]string{}
	for _, c := range p.Changes {
		got[c.Addr] = c.Detail
	}
	want := map[string]string{
		"pool.chat/r1": fmt.Sprintf("supervisor (pid %d) is not running", replicaOf(t, st, "pool.chat", "r1").SupervisorPID),
		"pool.chat/r2": "circuit breaker open: out of memory",
	}
	if !equalMaps(got, want) {
		t.Errorf("restarts %v, want %v", got, want)
	}
}
