package apply_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/llorch/llorch/apply"
	"github.com/llorch/llorch/internal/supervisor"
	"github.com/llorch/llorch/plan"
	"github.com/llorch/llorch/state"
)

func TestStatuses(t *testing.T) {
	e := newEnv(t)
	st := e.converge(configOf(pool("pool.chat", replicas(3), port(8080)), pool("pool.embed")))
	r0 := replicaOf(t, st, "pool.chat", "r0")
	r1 := replicaOf(t, st, "pool.chat", "r1")
	r2 := replicaOf(t, st, "pool.chat", "r2")
	e.fake.fail(r1.RunDir, "circuit breaker open: engine exited with status 134")
	e.fake.kill(r2.RunDir)
	e.fake.setStatus(r0.RunDir, func(s *supervisor.Status) { s.Restarts = 2 })
	r0.Restarts = 1 // restarts llorch did before

	now := r0.ReadyAt.Add(90 * time.Second)
	rows := apply.Statuses(e.ctx, e.fake, e.fs, st, now)

	var addrs []string
	for _, row := range rows {
		addrs = append(addrs, row.Addr)
	}
	if want := []string{"pool.chat/r0", "pool.chat/r1", "pool.chat/r2", "pool.embed/r0"}; !slices.Equal(addrs, want) {
		t.Fatalf("rows for %v, want %v", addrs, want)
	}
	tests := []struct {
		row       apply.ReplicaStatus
		state     string
		pid       int
		uptime    string
		lastError string
		restarts  int
	}{
		{rows[0], "ready", r0.PID, "1m30s", "", 3},
		{rows[1], "failed", 0, "", "circuit breaker open: engine exited with status 134", 5},
		{rows[2], "exited", 0, "", fmt.Sprintf("supervisor (pid %d) is not running", r2.SupervisorPID), 0},
	}
	for _, tt := range tests {
		t.Run(tt.row.Addr, func(t *testing.T) {
			got := tt.row
			if got.State != tt.state || got.PID != tt.pid || got.Uptime != tt.uptime || got.LastError != tt.lastError || got.Restarts != tt.restarts {
				t.Errorf("row = state %q pid %d uptime %q last_error %q restarts %d, want %q %d %q %q %d",
					got.State, got.PID, got.Uptime, got.LastError, got.Restarts, tt.state, tt.pid, tt.uptime, tt.lastError, tt.restarts)
			}
		})
	}
	if rows[0].Port != 8080 || rows[0].Replica != "r0" || rows[0].Handoff != r0.Handoff {
		t.Errorf("row 0 = %+v", rows[0])
	}
}

func TestDrain(t *testing.T) {
	tests := []struct {
		name        string
		addr        string
		deadline    time.Duration
		wantDrained []string
	}{
		{"a whole pool", "pool.chat", 0, []string{"r0", "r1"}},
		{"one replica", "pool.chat/r1", 0, []string{"r1"}},
		{"with a deadline", "pool.chat/r0", 5 * time.Second, []string{"r0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			cfg := configOf(pool("pool.chat", replicas(2)))
			st := e.converge(cfg)
			before := st.DeepCopy()
			results, err := apply.Drain(e.ctx, e.fake, e.fs, st, tt.addr, apply.DrainOptions{Deadline: tt.deadline, Now: e.clock.Now})
			if err != nil {
				t.Fatalf("Drain: %v", err)
			}
			var got []string
			for _, res := range results {
				if res.Err != nil {
					t.Errorf("%s: %v", res.Addr, res.Err)
				}
				got = append(got, res.Addr)
			}
			var want []string
			for _, id := range tt.wantDrained {
				want = append(want, "pool.chat/"+id)
			}
			if !slices.Equal(got, want) {
				t.Errorf("drained %v, want %v", got, want)
			}
			for _, old := range before.Pools["pool.chat"].Replicas {
				r := replicaOf(t, st, "pool.chat", old.ID)
				events := e.fake.eventsFor(old.RunDir)
				if !slices.Contains(tt.wantDrained, old.ID) {
					if !slices.Equal(events, []string{"launch"}) || r.Status != "ready" {
						t.Errorf("%s was touched: %v, status %q", old.ID, events, r.Status)
					}
					continue
				}
				if !slices.Equal(events, []string{"launch", "drain", "stop"}) {
					t.Errorf("%s: supervisor saw %v, want launch, drain, stop", old.ID, events)
				}
				if i := indexOf(e.fake.Events(), "drain", old.RunDir); i >= 0 && e.fake.Events()[i].Grace != tt.deadline {
					t.Errorf("%s: drained within %v, want %v", old.ID, e.fake.Events()[i].Grace, tt.deadline)
				}
				if r.Status != "stopped" || r.PID != 0 || r.SupervisorPID != 0 {
					t.Errorf("%s: status %q pid %d supervisor %d, want stopped without pids", old.ID, r.Status, r.PID, r.SupervisorPID)
				}
				if want := "drained by llorch drain at 2025-03-01T12:00:00Z"; r.LastError != want {
					t.Errorf("%s: last_error %q, want %q", old.ID, r.LastError, want)
				}
				if exists(t, e.fs, old.Handoff) {
					t.Errorf("%s: handoff file still offered to routers", old.ID)
				}
			}
		})
	}
}

func TestDrainedReplicaIsRestartedByTheNextApply(t *testing.T) {
	e := newEnv(t)
	cfg := configOf(pool("pool.chat", port(8080)))
	st := e.converge(cfg)
	if _, err := apply.Drain(e.ctx, e.fake, e.fs, st, "pool.chat/r0", apply.DrainOptions{Now: e.clock.Now}); err != nil {
		t.Fatal(err)
	}
	if err := e.store.Write(e.ctx, st); err != nil {
		t.Fatal(err)
	}
	p := e.plan(cfg, plan.Options{})
	if len(p.Changes) != 1 || p.Changes[0].Action != plan.Restart || p.Changes[0].Reason != plan.RestartBecauseDrained ||
		p.Changes[0].Detail != "drained by llorch drain at 2025-03-01T12:00:00Z" {
		t.Fatalf("plan = %v %+v, want a restart because drained", changeActions(p), p.Changes)
	}
	if _, err := e.run(e.ctx, cfg, p, 0); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if r := replicaOf(t, e.stored(), "pool.chat", "r0"); r.Status != "ready" || r.Port != 8080 || r.LastError != "" {
		t.Errorf("r0 = status %q port %d last_error %q", r.Status, r.Port, r.LastError)
	}
}

func TestDrainErrors(t *testing.T) {
	tests := []struct {
		name    string
		st      func(e *env) *state.State
		addr    string
		wantErr string
	}{
		{
			name:    "unknown pool",
			st:      func(e *env) *state.State { return e.converge(configOf(pool("pool.chat"))) },
			addr:    "pool.nope",
			wantErr: `pool.nope is not in the state; run "llorch state list" to see what is`,
		},
		{
			name:    "unknown replica",
			st:      func(e *env) *state.State { return e.converge(configOf(pool("pool.chat"))) },
			addr:    "pool.chat/r9",
			wantErr: `pool.chat has no replica r9; run "llorch state list" to see them`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			_, err := apply.Drain(e.ctx, e.fake, e.fs, tt.st(e), tt.addr, apply.DrainOptions{Now: e.clock.Now})
			if err == nil || err.Error() != tt.wantErr {
				t.Errorf("Drain(%s) = %v, want %q", tt.addr, err, tt.wantErr)
			}
		})
	}
}

// Draining a pool without replicas says so, without naming an empty
// replica id.
func TestDrainOfAPoolWithoutReplicas(t *testing.T) {
	e := newEnv(t)
	st := state.New("lineage")
	st.Pools["pool.chat"] = &state.Pool{Engine: "llamacpp", Replicas: []*state.Replica{}}
	_, err := apply.Drain(e.ctx, e.fake, e.fs, st, "pool.chat", apply.DrainOptions{Now: e.clock.Now})
	if err == nil || !strings.HasPrefix(err.Error(), "pool.chat has no replicas") || strings.Contains(err.Error(), "replica ;") {
		t.Errorf("Drain = %v, want an error starting %q", err, "pool.chat has no replicas")
	}
}

func TestDrainFailureIsRecordedOnTheReplica(t *testing.T) {
	e := newEnv(t)
	st := e.converge(configOf(pool("pool.chat", replicas(2))))
	r0 := replicaOf(t, st, "pool.chat", "r0")
	e.fake.DrainErr[r0.RunDir] = errors.New("engine still has 3 requests in flight")
	results, err := apply.Drain(e.ctx, e.fake, e.fs, st, "pool.chat", apply.DrainOptions{Now: e.clock.Now})
	if err != nil {
		t.Fatalf("Drain: %v", err)
	}
	const want = "stopping r0: engine still has 3 requests in flight"
	if results[0].Addr != "pool.chat/r0" || results[0].Err == nil || results[0].Err.Error() != want {
		t.Errorf("result 0 = %+v, want an error %q", results[0], want)
	}
	if r0.LastError != want || r0.Status != "ready" || r0.PID == 0 {
		t.Errorf("r0 = status %q pid %d last_error %q, want still ready with the error", r0.Status, r0.PID, r0.LastError)
	}
	if results[1].Err != nil || replicaOf(t, st, "pool.chat", "r1").Status != "stopped" {
		t.Errorf("r1 not drained: %+v", results[1])
	}
}

func TestDrainOfAVanishedSupervisorSucceeds(t *testing.T) {
	e := newEnv(t)
	st := e.converge(configOf(pool("pool.chat")))
	r0 := replicaOf(t, st, "pool.chat", "r0")
	e.fake.kill(r0.RunDir)
	results, err := apply.Drain(e.ctx, e.fake, e.fs, st, "pool.chat/r0", apply.DrainOptions{Now: e.clock.Now})
	if err != nil || len(results) != 1 || results[0].Err != nil {
		t.Fatalf("Drain = %+v, %v", results, err)
	}
	if r0.Status != "stopped" || r0.PID != 0 {
		t.Errorf("r0 = %q pid %d", r0.Status, r0.PID)
	}
}

func TestDrainSaysWhenTheDeadlineCutRequestsOff(t *testing.T) {
	e := newEnv(t)
	st := e.converge(configOf(pool("pool.chat", replicas(2))))
	r1 := replicaOf(t, st, "pool.chat", "r1")
	e.fake.CutOff[r1.RunDir] = 2
	results, err := apply.Drain(e.ctx, e.fake, e.fs, st, "pool.chat", apply.DrainOptions{Deadline: 7 * time.Second, Now: e.clock.Now})
	if err != nil {
		t.Fatalf("Drain: %v", err)
	}
	if r := results[0]; r.Err != nil || r.CutOff {
		t.Errorf("r0 drained with nothing in flight: %+v, want no cut-off", r)
	}
	if r := results[1]; r.Err != nil || !r.CutOff || r.InFlight != 2 || r.Deadline != 7*time.Second {
		t.Errorf("r1 = %+v, want 2 requests cut off at the 7s deadline", r)
	}
}
