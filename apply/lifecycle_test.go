package apply_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/afero"

	"github.com/llorch/llorch/config"
	"github.com/llorch/llorch/internal/supervisor"
	"github.com/llorch/llorch/plan"
	"github.com/llorch/llorch/providers"
	"github.com/llorch/llorch/state"
	"github.com/llorch/llorch/state/handoff"
)

// indexOf is the position of the first event op on runDir, -1 if none.
func indexOf(events []event, op, runDir string) int {
	return slices.IndexFunc(events, func(e event) bool { return e.Op == op && e.RunDir == runDir })
}

func exists(t *testing.T, fs afero.Fs, path string) bool {
	t.Helper()
	ok, err := afero.Exists(fs, path)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

func TestUpdateInPlace(t *testing.T) {
	tests := []struct {
		name          string
		before, after []func(*config.Pool)
		wantLaunched  []string // replica addresses launched by the update
		wantRemoved   []string // replica ids drained, stopped and dropped
		wantReplicas  []string
		check         func(t *testing.T, e *env, st *state.State)
	}{
		{
			name:         "replica count up starts the new replicas",
			before:       []func(*config.Pool){replicas(1), port(8080)},
			after:        []func(*config.Pool){replicas(3), port(8080)},
			wantLaunched: []string{"pool.chat/r1", "pool.chat/r2"},
			wantReplicas: []string{"r0", "r1", "r2"},
			check: func(t *testing.T, e *env, st *state.State) {
				for _, tt := range []struct {
					id   string
					port int
				}{{"r1", 8081}, {"r2", 8082}} {
					if r := replicaOf(t, st, "pool.chat", tt.id); r.Port != tt.port || r.Status != "ready" {
						t.Errorf("%s: port %d status %q, want %d ready", tt.id, r.Port, r.Status, tt.port)
					}
				}
				if n := len(e.prov.CallsTo("Ensure")); n != 2 {
					t.Errorf("Ensure called %d times, want once for the create and once for the new replicas", n)
				}
			},
		},
		{
			name:         "replica count down drains and drops the extra replicas",
			before:       []func(*config.Pool){replicas(3), port(8080)},
			after:        []func(*config.Pool){replicas(1), port(8080)},
			wantRemoved:  []string{"r1", "r2"},
			wantReplicas: []string{"r0"},
		},
		{
			name:         "labels reach the running supervisors",
			before:       []func(*config.Pool){replicas(2), labels("team", "search")},
			after:        []func(*config.Pool){replicas(2), labels("team", "ads", "tier", "gold")},
			wantReplicas: []string{"r0", "r1"},
			check: func(t *testing.T, e *env, st *state.State) {
				want := map[string]string{"team": "ads", "tier": "gold"}
				for _, id := range []string{"r0", "r1"} {
					r := replicaOf(t, st, "pool.chat", id)
					pushed := e.fake.Pushes()[r.RunDir]
					if len(pushed) == 0 {
						t.Errorf("%s: no settings pushed", id)
						continue
					}
					if got := pushed[len(pushed)-1].Labels; !equalMaps(got, want) {
						t.Errorf("%s: pushed labels %v, want %v", id, got, want)
					}
					f, err := handoff.Read(e.fs, r.Handoff)
					if err != nil {
						t.Fatal(err)
					}
					if !equalMaps(f.Labels, want) {
						t.Errorf("%s: handoff labels %v, want %v", id, f.Labels, want)
					}
				}
			},
		},
		{
			name:   "health and drain settings reach the running supervisor",
			before: []func(*config.Pool){},
			after: []func(*config.Pool){func(p *config.Pool) {
				p.Health.StartTimeout = 5 * time.Minute
				p.Health.Failures = 7
				p.Restart.MaxFailures = 9
				p.Drain.Deadline = time.Minute
			}},
			wantReplicas: []string{"r0"},
			check: func(t *testing.T, e *env, st *state.State) {
				r := replicaOf(t, st, "pool.chat", "r0")
				pushed := e.fake.Pushes()[r.RunDir]
				if len(pushed) != 1 {
					t.Fatalf("settings pushed %d times, want once", len(pushed))
				}
				s := pushed[0]
				if s.Health.StartTimeout != 5*time.Minute || s.Health.Failures != 7 || s.Restart.MaxFailures != 9 ||
					s.Drain.Deadline != time.Minute || s.Health.Path != "/health" {
					t.Errorf("pushed %+v", s)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			before := e.converge(configOf(pool("pool.chat", tt.before...)))
			oldPIDs := map[string]int{}
			oldDirs := map[string]string{}
			for _, r := range before.Pools["pool.chat"].Replicas {
				oldPIDs[r.ID], oldDirs[r.ID] = r.PID, r.RunDir
			}
			launchedBefore := len(e.fake.Launches())

			cfg := configOf(pool("pool.chat", tt.after...))
			p := e.plan(cfg, plan.Options{})
			if got := changeActions(p); !slices.Equal(got, []string{"~ pool.chat"}) {
				t.Fatalf("plan = %v, want an update in place", got)
			}
			if _, err := e.run(e.ctx, cfg, p, 0); err != nil {
				t.Fatalf("Run: %v", err)
			}
			st := e.stored()

			var launched []string
			for _, s := range e.fake.Launches()[launchedBefore:] {
				launched = append(launched, s.Addr)
			}
			slices.Sort(launched)
			if !slices.Equal(launched, tt.wantLaunched) {
				t.Errorf("launched %v, want %v", launched, tt.wantLaunched)
			}
			sp := st.Pools["pool.chat"]
			if got := replicaIDs(sp); !slices.Equal(got, tt.wantReplicas) {
				t.Errorf("recorded replicas %v, want %v", got, tt.wantReplicas)
			}
			if sp.SpecHash != p.Desired["pool.chat"].SpecHash {
				t.Errorf("spec hash %q not updated to %q", sp.SpecHash, p.Desired["pool.chat"].SpecHash)
			}
			for id, pid := range oldPIDs {
				if slices.Contains(tt.wantRemoved, id) {
					if got := e.fake.eventsFor(oldDirs[id]); !slices.Equal(got, []string{"launch", "drain", "stop"}) {
						t.Errorf("%s: supervisor saw %v, want launch, drain, stop", id, got)
					}
					if exists(t, e.fs, handoffOf("chat", id)) || exists(t, e.fs, oldDirs[id]) {
						t.Errorf("%s: handoff file or run dir left behind", id)
					}
					continue
				}
				r := replicaOf(t, st, "pool.chat", id)
				if r.PID != pid || r.RunDir != oldDirs[id] {
					t.Errorf("%s was restarted: pid %d → %d, run dir %q → %q", id, pid, r.PID, oldDirs[id], r.RunDir)
				}
				for _, op := range e.fake.eventsFor(oldDirs[id]) {
					if op == "drain" || op == "stop" {
						t.Errorf("%s: running replica got %s", id, op)
					}
				}
			}
			if tt.check != nil {
				tt.check(t, e, st)
			}
		})
	}
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func TestUpdateSkipsSupervisorsThatAreNotRunning(t *testing.T) {
	// r0's supervisor was killed: the plan restarts it and updates the
	// labels; pushing settings to the dead one must not fail the apply.
	e := newEnv(t)
	st := e.converge(configOf(pool("pool.chat", replicas(2), labels("team", "a"))))
	r0 := replicaOf(t, st, "pool.chat", "r0")
	e.fake.kill(r0.RunDir)
	cfg := configOf(pool("pool.chat", replicas(2), labels("team", "b")))
	p := e.plan(cfg, plan.Options{})
	if got, want := changeActions(p), []string{"~ pool.chat", "↻ pool.chat/r0"}; !slices.Equal(got, want) {
		t.Fatalf("plan = %v, want %v", got, want)
	}
	if _, err := e.run(e.ctx, cfg, p, 0); err != nil {
		t.Errorf("Run: %v", err)
	}
	after := e.stored()
	if r := replicaOf(t, after, "pool.chat", "r0"); r.Status != "ready" || r.PID == r0.PID {
		t.Errorf("r0 = %q pid %d, want restarted", r.Status, r.PID)
	}
	f, err := handoff.Read(e.fs, handoffOf("chat", "r0"))
	if err != nil {
		t.Fatal(err)
	}
	if f.Labels["team"] != "b" {
		t.Errorf("restarted r0 serves labels %v", f.Labels)
	}
}

func TestReplaceCreateBeforeDestroy(t *testing.T) {
	tests := []struct {
		name            string
		before, after   int // replicas
		wantReplaced    []string
		wantNew         []string // created at generation 0 on the configured port
		wantRemoved     []string
		wantFinalLength int
	}{
		{"same count", 2, 2, []string{"r0", "r1"}, nil, nil, 2},
		{"more replicas", 1, 2, []string{"r0"}, []string{"r1"}, nil, 2},
		{"fewer replicas", 3, 1, []string{"r0"}, nil, []string{"r1", "r2"}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			before := e.converge(configOf(pool("pool.chat", replicas(tt.before), port(8080))))
			cfg := configOf(pool("pool.chat", replicas(tt.after), port(8080), model("file:/models/chat-v2.gguf")))
			p := e.plan(cfg, plan.Options{})
			if got := changeActions(p); !slices.Equal(got, []string{"± pool.chat"}) {
				t.Fatalf("plan = %v, want a create_before_destroy replace", got)
			}
			if _, err := e.run(e.ctx, cfg, p, 0); err != nil {
				t.Fatalf("Run: %v", err)
			}
			st := e.stored()
			events := e.fake.Events()
			sp := st.Pools["pool.chat"]
			if len(sp.Replicas) != tt.wantFinalLength {
				t.Errorf("recorded %v", replicaIDs(sp))
			}
			if sp.SpecHash != p.Desired["pool.chat"].SpecHash || sp.Prepared.ModelPath != "/models/chat-v2.gguf" {
				t.Errorf("pool spec not updated: hash %q model %q", sp.SpecHash, sp.Prepared.ModelPath)
			}
			for i, id := range tt.wantReplaced {
				old := replicaOf(t, before, "pool.chat", id)
				r := replicaOf(t, st, "pool.chat", id)
				// The successor starts on a fresh port while the old engine
				// holds the configured one, then moves onto it.
				tempDir, homeDir := runDirOf("chat", id, 1), runDirOf("chat", id, 2)
				if r.RunDir != homeDir || r.Generation != 2 {
					t.Errorf("%s: run dir %q generation %d, want %q generation 2", id, r.RunDir, r.Generation, homeDir)
				}
				if r.Port != 8080+i {
					t.Errorf("%s: ends on port %d, want its configured port %d", id, r.Port, 8080+i)
				}
				var temp supervisor.Spec
				for _, l := range e.fake.Launches() {
					if l.RunDir == tempDir {
						temp = l
					}
				}
				if temp.Port == 8080+i || temp.Port <= 0 {
					t.Errorf("%s: first successor on port %d, want a fresh port (the old engine still holds %d)", id, temp.Port, 8080+i)
				}
				if r.PID == old.PID || r.Status != "ready" || r.LastError != "" {
					t.Errorf("%s: pid %d (old %d) status %q last_error %q", id, r.PID, old.PID, r.Status, r.LastError)
				}
				steps := []int{
					indexOf(events, "launch", tempDir), indexOf(events, "drain", old.RunDir), indexOf(events, "stop", old.RunDir),
					indexOf(events, "launch", homeDir), indexOf(events, "drain", tempDir), indexOf(events, "stop", tempDir),
				}
				if slices.Contains(steps, -1) || !slices.IsSorted(steps) {
					t.Errorf("%s: launch temp, drain old, stop old, launch home, drain temp, stop temp at %v; want them in this order", id, steps)
				}
				for _, dir := range []string{old.RunDir, tempDir} {
					if exists(t, e.fs, dir) {
						t.Errorf("%s: run dir %s left behind", id, dir)
					}
				}
				f, err := handoff.Read(e.fs, r.Handoff)
				if err != nil {
					t.Fatalf("%s: handoff file: %v", id, err)
				}
				if f.PID != r.PID {
					t.Errorf("%s: handoff names pid %d, want the successor's %d", id, f.PID, r.PID)
				}
			}
			for _, id := range tt.wantNew {
				r := replicaOf(t, st, "pool.chat", id)
				if r.Generation != 0 || r.Port != 8080+indexOfID(id) || r.RunDir != runDirOf("chat", id, 0) {
					t.Errorf("%s: generation %d port %d run dir %q", id, r.Generation, r.Port, r.RunDir)
				}
			}
			for _, id := range tt.wantRemoved {
				old := replicaOf(t, before, "pool.chat", id)
				if got := e.fake.eventsFor(old.RunDir); !slices.Equal(got, []string{"launch", "drain", "stop"}) {
					t.Errorf("%s: supervisor saw %v, want launch, drain, stop", id, got)
				}
				if exists(t, e.fs, old.Handoff) {
					t.Errorf("%s: handoff file left behind", id)
				}
			}
		})
	}
}

func indexOfID(id string) int { return int(id[1] - '0') }

func TestReplaceCreateBeforeDestroyKeepsOldWhenSuccessorFails(t *testing.T) {
	e := newEnv(t)
	before := e.converge(configOf(pool("pool.chat", replicas(2), port(8080))))
	oldHash := before.Pools["pool.chat"].SpecHash
	const cause = "engine exited with status 1 before it was ready: unknown model architecture"
	e.fake.LaunchFunc = func(_ context.Context, s supervisor.Spec) error {
		if s.RunDir == runDirOf("chat", "r1", 1) {
			return errors.New(cause)
		}
		return nil
	}
	cfg := configOf(pool("pool.chat", replicas(2), port(8080), model("file:/models/chat-v2.gguf")))
	_, err := e.run(e.ctx, cfg, e.plan(cfg, plan.Options{}), 0)
	if err == nil {
		t.Fatal("Run succeeded although r1's successor failed")
	}
	containsAll(t, "error", err.Error(), "pool.chat/r1", "replacement failed", cause)

	st := e.stored()
	old := replicaOf(t, before, "pool.chat", "r1")
	r := replicaOf(t, st, "pool.chat", "r1")
	if got := e.fake.eventsFor(old.RunDir); !slices.Equal(got, []string{"launch"}) {
		t.Errorf("old r1 supervisor saw %v; it must not be drained or stopped", got)
	}
	if !e.fake.alive(old.RunDir) {
		t.Error("old r1 supervisor is gone")
	}
	if r.PID != old.PID || r.Port != 8081 || r.RunDir != old.RunDir || r.Status != "ready" || r.Generation != 0 {
		t.Errorf("r1 record = pid %d port %d run dir %q status %q generation %d, want the old engine's", r.PID, r.Port, r.RunDir, r.Status, r.Generation)
	}
	if want := "replacement failed, old engine kept serving: " + cause; r.LastError != want {
		t.Errorf("r1 last_error = %q, want %q", r.LastError, want)
	}
	if f, err := handoff.Read(e.fs, old.Handoff); err != nil || f.PID != old.PID {
		t.Errorf("r1 handoff = %+v, %v; want the old engine's", f, err)
	}
	sp := st.Pools["pool.chat"]
	if sp.SpecHash != oldHash || sp.Prepared.ModelPath != "/models/chat.gguf" {
		t.Errorf("pool spec changed to hash %q model %q although the replacement failed", sp.SpecHash, sp.Prepared.ModelPath)
	}
	if r0 := replicaOf(t, st, "pool.chat", "r0"); r0.Generation != 2 || r0.Status != "ready" || r0.Port != 8080 {
		t.Errorf("r0 = generation %d status %q port %d, want replaced and back on 8080", r0.Generation, r0.Status, r0.Port)
	}
	if p := e.plan(cfg, plan.Options{}); !slices.Equal(changeActions(p), []string{"± pool.chat"}) {
		t.Errorf("next plan = %v, want the replacement again", changeActions(p))
	}
}

func TestReplaceDrainFirst(t *testing.T) {
	e := newEnv(t)
	before := e.converge(configOf(pool("pool.chat", replicas(2), port(8080), drainFirst)))
	cfg := configOf(pool("pool.chat", replicas(2), port(8080), drainFirst, model("file:/models/chat-v2.gguf")))
	p := e.plan(cfg, plan.Options{})
	if got := changeActions(p); !slices.Equal(got, []string{"∓ pool.chat"}) {
		t.Fatalf("plan = %v, want a drain_first replace", got)
	}
	launchedBefore := len(e.fake.Launches())
	if _, err := e.run(e.ctx, cfg, p, 0); err != nil {
		t.Fatalf("Run: %v", err)
	}
	events := e.fake.Events()
	st := e.stored()
	// One replica at a time: r1 serves while r0 is replaced, and r1 is
	// drained only once r0's successor is up.
	for i, id := range []string{"r0", "r1"} {
		old := replicaOf(t, before, "pool.chat", id)
		stop := indexOf(events, "stop", old.RunDir)
		launch := firstNewLaunch(events, launchedBefore+i)
		if stop < 0 || indexOf(events, "drain", old.RunDir) < 0 {
			t.Errorf("%s: old supervisor not drained and stopped: %v", id, e.fake.eventsFor(old.RunDir))
		} else if stop > launch {
			t.Errorf("%s: old stopped at event %d, after its successor's launch at %d", id, stop, launch)
		}
		if i == 1 && stop < firstNewLaunch(events, launchedBefore) {
			t.Errorf("r1 stopped at event %d, before r0's successor started: the pool had no replica", stop)
		}
		r := replicaOf(t, st, "pool.chat", id)
		if r.Port != 8080+i || r.RunDir != runDirOf("chat", id, 1) || r.PID == old.PID || r.Status != "ready" {
			t.Errorf("%s: port %d run dir %q pid %d (old %d) status %q, want the configured port", id, r.Port, r.RunDir, r.PID, old.PID, r.Status)
		}
	}
	if sp := st.Pools["pool.chat"]; sp.SpecHash != p.Desired["pool.chat"].SpecHash {
		t.Errorf("spec hash not updated")
	}
	// The pool remembers its starts (two at create, two in the replace;
	// the fake engines take 1 s) and the two drains and stops, which the
	// next plan's downtime estimate is made of.
	if tm := st.Pools["pool.chat"].Timings; tm == nil || !slices.Equal(tm.StartsMS, []int{1000, 1000, 1000, 1000}) || len(tm.StopsMS) != 2 {
		t.Errorf("timings %+v, want four starts of 1000 ms and two stops", tm)
	}
}

func TestReplaceDrainFirstStartsThePreviousEngineAgainWhenTheSuccessorFails(t *testing.T) {
	e := newEnv(t)
	before := e.converge(configOf(pool("pool.chat", replicas(2), port(8080), drainFirst)))
	oldHash := before.Pools["pool.chat"].SpecHash
	const cause = "pool.chat/r1 did not become ready: the engine could not bind port 8081 on 127.0.0.1"
	e.fake.LaunchFunc = func(_ context.Context, s supervisor.Spec) error {
		if s.RunDir == runDirOf("chat", "r1", 1) {
			return errors.New(cause)
		}
		return nil
	}
	cfg := configOf(pool("pool.chat", replicas(2), port(8080), drainFirst, model("file:/models/chat-v2.gguf")))
	_, err := e.run(e.ctx, cfg, e.plan(cfg, plan.Options{}), 0)
	if err == nil {
		t.Fatal("Run succeeded although r1's successor failed")
	}
	containsAll(t, "error", err.Error(), "pool.chat/r1", "replacement failed, the previous engine was started again and serves", cause)

	old := replicaOf(t, before, "pool.chat", "r1")
	launches := e.fake.Launches()
	last := launches[len(launches)-1]
	if last.RunDir != old.RunDir || last.Port != 8081 || last.ModelPath != "/models/chat.gguf" {
		t.Errorf("last launch = run dir %q port %d model %q, want the previous engine again", last.RunDir, last.Port, last.ModelPath)
	}
	st := e.stored()
	r := replicaOf(t, st, "pool.chat", "r1")
	if r.Status != "ready" || r.RunDir != old.RunDir || r.Port != 8081 || !e.fake.alive(old.RunDir) {
		t.Errorf("r1 = status %q run dir %q port %d, want the previous engine serving again", r.Status, r.RunDir, r.Port)
	}
	if want := "replacement failed, the previous engine was started again and serves: " + cause; r.LastError != want {
		t.Errorf("r1 last_error = %q, want %q", r.LastError, want)
	}
	if sp := st.Pools["pool.chat"]; sp.SpecHash != oldHash {
		t.Errorf("pool spec recorded as replaced although r1 was not")
	}
	if r0 := replicaOf(t, st, "pool.chat", "r0"); r0.Generation != 1 || r0.Status != "ready" {
		t.Errorf("r0 = generation %d status %q, want replaced", r0.Generation, r0.Status)
	}
	if p := e.plan(cfg, plan.Options{}); !slices.Equal(changeActions(p), []string{"∓ pool.chat"}) {
		t.Errorf("next plan = %v, want the replacement again", changeActions(p))
	}
}

func TestReplaceDrainFirstSaysSoWhenThePreviousEngineFailsToo(t *testing.T) {
	e := newEnv(t)
	e.converge(configOf(pool("pool.chat", replicas(1), port(8080), drainFirst)))
	e.fake.LaunchFunc = func(_ context.Context, s supervisor.Spec) error {
		return errors.New("port 8080 on 127.0.0.1 is already in use by another process (pid 7, nc)")
	}
	cfg := configOf(pool("pool.chat", replicas(1), port(8080), drainFirst, model("file:/models/chat-v2.gguf")))
	_, err := e.run(e.ctx, cfg, e.plan(cfg, plan.Options{}), 0)
	containsAll(t, "error", fmt.Sprint(err), "replacement failed", "starting the previous engine again failed too", "already in use")
	r := replicaOf(t, e.stored(), "pool.chat", "r0")
	if r.Status != "failed" || !strings.Contains(r.LastError, "starting the previous engine again failed too") {
		t.Errorf("r0 = status %q last_error %q, want failed saying both", r.Status, r.LastError)
	}
}

func TestReplacementLeftOffItsFixedPortIsMovedBackByTheNextApply(t *testing.T) {
	e := newEnv(t)
	e.converge(configOf(pool("pool.chat", replicas(1), port(8080))))
	home := runDirOf("chat", "r0", 2)
	e.fake.LaunchFunc = func(_ context.Context, s supervisor.Spec) error {
		if s.RunDir == home {
			return errors.New("pool.chat/r0 did not become ready: the engine could not bind port 8080")
		}
		return nil
	}
	cfg := configOf(pool("pool.chat", replicas(1), port(8080), model("file:/models/chat-v2.gguf")))
	_, err := e.run(e.ctx, cfg, e.plan(cfg, plan.Options{}), 0)
	containsAll(t, "error", fmt.Sprint(err), "serves on temporary port", "moving it to its configured port 8080 failed", "could not bind port 8080")
	r := replicaOf(t, e.stored(), "pool.chat", "r0")
	if r.Port == 8080 || r.Status != "ready" || r.Generation != 1 || !strings.Contains(r.LastError, "serves on temporary port") {
		t.Fatalf("r0 = port %d status %q generation %d last_error %q, want serving on its temporary port and saying so", r.Port, r.Status, r.Generation, r.LastError)
	}

	e.fake.LaunchFunc = nil
	p := e.plan(cfg, plan.Options{})
	if got := changeActions(p); !slices.Equal(got, []string{"± pool.chat/r0"}) {
		t.Fatalf("next plan = %v, want r0 moved", got)
	}
	if c := p.Changes[0]; c.Reason != plan.ReplaceBecausePortMoved || c.Detail != fmt.Sprintf("it listens on port %d; the configuration says 8080", r.Port) {
		t.Errorf("change reason %q detail %q", c.Reason, c.Detail)
	}
	if _, err := e.run(e.ctx, cfg, p, 0); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if r := replicaOf(t, e.stored(), "pool.chat", "r0"); r.Port != 8080 || r.Status != "ready" || r.LastError != "" {
		t.Errorf("r0 = port %d status %q last_error %q, want ready on 8080", r.Port, r.Status, r.LastError)
	}
	if p := e.plan(cfg, plan.Options{}); len(p.Changes) != 0 {
		t.Errorf("plan after the move = %v, want no changes", changeActions(p))
	}
}

// firstNewLaunch is the index of the first launch event after the first n.
func firstNewLaunch(events []event, n int) int {
	for i, ev := range events {
		if ev.Op != "launch" {
			continue
		}
		if n == 0 {
			return i
		}
		n--
	}
	return len(events)
}

func TestReplaceOneReplicaByRequestCreateBeforeDestroy(t *testing.T) {
	testReplaceOneReplicaByRequest(t, config.CreateBeforeDestroy)
}

// `-replace=pool.chat/r1` on a drain_first pool drains, stops and restarts
// r1 alone, not every replica of the pool.
func TestReplaceOneReplicaByRequestDrainFirst(t *testing.T) {
	testReplaceOneReplicaByRequest(t, config.DrainFirst)
}

func testReplaceOneReplicaByRequest(t *testing.T, strategy string) {
	setStrategy := func(p *config.Pool) { p.Update.Strategy = strategy }
	e := newEnv(t)
	cfg := configOf(pool("pool.chat", replicas(2), port(8080), setStrategy))
	before := e.converge(cfg)
	p := e.plan(cfg, plan.Options{Replace: []string{"pool.chat/r1"}})
	if len(p.Changes) != 1 || p.Changes[0].Addr != "pool.chat/r1" || !p.Changes[0].Action.IsReplace() {
		t.Fatalf("plan = %v, want a replace of pool.chat/r1 only", changeActions(p))
	}
	if _, err := e.run(e.ctx, cfg, p, 0); err != nil {
		t.Fatalf("Run: %v", err)
	}
	st := e.stored()
	old0, r0 := replicaOf(t, before, "pool.chat", "r0"), replicaOf(t, st, "pool.chat", "r0")
	if r0.PID != old0.PID || !slices.Equal(e.fake.eventsFor(old0.RunDir), []string{"launch"}) {
		t.Errorf("r0 was touched: pid %d → %d, its supervisor saw %v", old0.PID, r0.PID, e.fake.eventsFor(old0.RunDir))
	}
	old1, r1 := replicaOf(t, before, "pool.chat", "r1"), replicaOf(t, st, "pool.chat", "r1")
	if r1.PID == old1.PID || r1.Status != "ready" {
		t.Errorf("r1 not replaced: pid %d → %d status %q", old1.PID, r1.PID, r1.Status)
	}
}

// A failed Ensure for `-replace=pool.chat/r1` writes "replacement not
// started" into r1's last_error only, not into r0's.
func TestReplaceOneReplicaEnsureFailureMarksOnlyThatReplica(t *testing.T) {
	e := newEnv(t)
	cfg := configOf(pool("pool.chat", replicas(2), port(8080)))
	e.converge(cfg)
	e.prov.EnsureFunc = func(context.Context, providers.EnsureRequest) (*providers.PreparedEngine, providers.Diagnostics) {
		return nil, providers.Diagnostics{providers.Errorf("Download failed", "HTTP 503 from the model host.")}
	}
	_, err := e.run(e.ctx, cfg, e.plan(cfg, plan.Options{Replace: []string{"pool.chat/r1"}}), 0)
	if err == nil {
		t.Fatal("Run succeeded")
	}
	containsAll(t, "error", err.Error(), "pool.chat", "Download failed: HTTP 503 from the model host.")
	st := e.stored()
	if r1 := replicaOf(t, st, "pool.chat", "r1"); !strings.Contains(r1.LastError, "Download failed") {
		t.Errorf("r1 last_error = %q, want why its replacement did not start", r1.LastError)
	}
	if r0 := replicaOf(t, st, "pool.chat", "r0"); r0.LastError != "" {
		t.Errorf("r0 last_error = %q, but r0 was not to be replaced", r0.LastError)
	}
}

func TestDeletePool(t *testing.T) {
	e := newEnv(t)
	cfg := configOf(pool("pool.chat", replicas(3), port(8080)), pool("pool.embed"))
	before := e.converge(cfg)
	r0 := replicaOf(t, before, "pool.chat", "r0")
	r1 := replicaOf(t, before, "pool.chat", "r1")
	r2 := replicaOf(t, before, "pool.chat", "r2")
	e.fake.kill(r1.RunDir)                                  // vanished: Attach fails
	e.fake.fail(r2.RunDir, "circuit breaker open: crashed") // breaker open: nothing to drain

	// pool.chat is no longer configured.
	cfg = configOf(pool("pool.embed"))
	p := e.plan(cfg, plan.Options{})
	if got := changeActions(p); !slices.Equal(got, []string{"- pool.chat"}) {
		t.Fatalf("plan = %v", got)
	}
	if _, err := e.run(e.ctx, cfg, p, 0); err != nil {
		t.Fatalf("Run: %v", err)
	}
	tests := []struct {
		id     string
		runDir string
		want   []string
	}{
		{"r0 ready: drained, then stopped", r0.RunDir, []string{"launch", "drain", "stop"}},
		{"r1 vanished: nothing to ask", r1.RunDir, []string{"launch"}},
		{"r2 failed: stopped without a drain", r2.RunDir, []string{"launch", "stop"}},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			if got := e.fake.eventsFor(tt.runDir); !slices.Equal(got, tt.want) {
				t.Errorf("supervisor saw %v, want %v", got, tt.want)
			}
			if exists(t, e.fs, tt.runDir) {
				t.Errorf("run dir %s left behind", tt.runDir)
			}
		})
	}
	for _, id := range []string{"r0", "r2"} { // r1: TestDeleteRemovesHandoffOfVanishedSupervisor
		if exists(t, e.fs, handoffOf("chat", id)) {
			t.Errorf("handoff file of %s left behind", id)
		}
	}
	st := e.stored()
	if got := st.Addrs(); !slices.Equal(got, []string{"pool.embed"}) {
		t.Errorf("pools after delete = %v", got)
	}
	cleanups := e.prov.CallsTo("Cleanup")
	if len(cleanups) != 1 || cleanups[0].Pool.Addr != "pool.chat" || cleanups[0].Prepared == nil ||
		cleanups[0].Prepared.ModelPath != "/models/chat.gguf" {
		t.Errorf("Cleanup calls = %+v, want one for pool.chat with its prepared engine", cleanups)
	}
}

// Deleting a pool whose supervisor was killed (a reboot, the OOM killer)
// removes its handoff file, so routers stop sending traffic to an engine
// that is gone.
func TestDeleteRemovesHandoffOfVanishedSupervisor(t *testing.T) {
	e := newEnv(t)
	before := e.converge(configOf(pool("pool.chat"), pool("pool.embed")))
	r0 := replicaOf(t, before, "pool.chat", "r0")
	e.fake.kill(r0.RunDir)
	cfg := configOf(pool("pool.embed"))
	p := e.plan(cfg, plan.Options{})
	if got := changeActions(p); !slices.Equal(got, []string{"- pool.chat"}) {
		t.Fatalf("plan = %v", got)
	}
	if _, err := e.run(e.ctx, cfg, p, 0); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if exists(t, e.fs, r0.Handoff) {
		t.Errorf("handoff file %s of the deleted pool is still there", r0.Handoff)
	}
}

func TestDestroyUsesThePoolsKillTimeout(t *testing.T) {
	e := newEnv(t)
	cfg := configOf(pool("pool.chat", func(p *config.Pool) { p.Drain.KillTimeout = 45 * time.Second }))
	before := e.converge(cfg)
	if l := e.fake.Launches(); len(l) != 1 || l[0].StopGrace != 45*time.Second {
		t.Errorf("launch stop grace = %v, want drain.kill_timeout 45s", l[0].StopGrace)
	}
	if _, err := e.run(e.ctx, cfg, e.plan(cfg, plan.Options{Destroy: true}), 0); err != nil {
		t.Fatalf("Run: %v", err)
	}
	r0 := replicaOf(t, before, "pool.chat", "r0")
	i := indexOf(e.fake.Events(), "stop", r0.RunDir)
	if i < 0 || e.fake.Events()[i].Grace != 45*time.Second {
		t.Errorf("stop events %v, want a stop with grace 45s", e.fake.Events())
	}
	if len(e.stored().Pools) != 0 {
		t.Errorf("pools left after destroy: %v", e.stored().Addrs())
	}
}

// A provider whose Cleanup fails (a plugin that panicked) fails the
// destroy: "Destroy complete!" and exit 0 would hide it. The engines are
// stopped and the pool leaves the state all the same.
func TestDestroyFailsWhenTheProvidersCleanupFails(t *testing.T) {
	e := newEnv(t)
	cfg := configOf(pool("pool.chat"))
	e.converge(cfg)
	e.prov.CleanupFunc = func(context.Context, providers.CleanupRequest) providers.Diagnostics {
		return providers.Diagnostics{{Severity: providers.Error, Summary: "Plugin panicked", Detail: "provider llamacpp panicked: runtime error: index out of range"}}
	}
	_, err := e.run(e.ctx, cfg, e.plan(cfg, plan.Options{Destroy: true}), 0)
	if err == nil {
		t.Fatal("Run succeeded although the provider's cleanup failed")
	}
	containsAll(t, "error", err.Error(), "pool.chat", "its engines are stopped and it left the state, but the llamacpp provider's cleanup failed",
		"provider llamacpp panicked: runtime error: index out of range")
	if len(e.stored().Pools) != 0 {
		t.Errorf("pools left after destroy: %v", e.stored().Addrs())
	}
}

func TestDeletePoolKeepsItWhenAReplicaWillNotStop(t *testing.T) {
	e := newEnv(t)
	cfg := configOf(pool("pool.chat", replicas(2)))
	before := e.converge(cfg)
	r0 := replicaOf(t, before, "pool.chat", "r0")
	e.fake.StopErr[r0.RunDir] = errors.New("engine did not exit after SIGKILL")
	_, err := e.run(e.ctx, cfg, e.plan(cfg, plan.Options{Destroy: true}), 0)
	if err == nil {
		t.Fatal("Run succeeded although r0 did not stop")
	}
	containsAll(t, "error", err.Error(), "pool.chat/r0", "stopping r0: engine did not exit after SIGKILL")
	st := e.stored()
	if got := replicaIDs(st.Pools["pool.chat"]); !slices.Equal(got, []string{"r0"}) {
		t.Errorf("recorded replicas %v, want r0 kept (r1 stopped)", got)
	}
	if r := replicaOf(t, st, "pool.chat", "r0"); r.LastError != "stopping r0: engine did not exit after SIGKILL" {
		t.Errorf("r0 last_error = %q", r.LastError)
	}
	if n := len(e.prov.CallsTo("Cleanup")); n != 0 {
		t.Errorf("Cleanup called %d times for a pool still running", n)
	}
}

// After the supervisor restarted its engine on its own (the handoff file
// names the new pid, state still has the first) and then vanished, destroy
// still removes the handoff file.
func TestDestroyRemovesHandoffOfVanishedSupervisorAfterEngineRestart(t *testing.T) {
	e := newEnv(t)
	cfg := configOf(pool("pool.chat"))
	before := e.converge(cfg)
	r0 := replicaOf(t, before, "pool.chat", "r0")
	// The supervisor restarted the engine (new pid in status.json and the
	// handoff file), then was killed.
	restartedPID := r0.PID + 1000
	e.fake.setStatus(r0.RunDir, func(s *supervisor.Status) { s.PID, s.Restarts = restartedPID, 1 })
	f, err := handoff.Read(e.fs, r0.Handoff)
	if err != nil {
		t.Fatal(err)
	}
	f.PID = restartedPID
	if err := handoff.Write(e.fs, r0.Handoff, f); err != nil {
		t.Fatal(err)
	}
	e.fake.kill(r0.RunDir)

	if _, err := e.run(e.ctx, cfg, e.plan(cfg, plan.Options{Destroy: true}), 0); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if exists(t, e.fs, r0.Handoff) {
		t.Errorf("handoff file %s survived the destroy of its pool", r0.Handoff)
	}
}

func TestDeletionsRunBeforeCreates(t *testing.T) {
	// pool.old is renamed pool.new and keeps port 8080: old must be gone
	// before new binds it.
	e := newEnv(t)
	before := e.converge(configOf(pool("pool.old", port(8080))))
	old := replicaOf(t, before, "pool.old", "r0")
	cfg := configOf(pool("pool.new", port(8080)))
	p := e.plan(cfg, plan.Options{})
	if got := changeActions(p); !slices.Equal(got, []string{"+ pool.new", "- pool.old"}) {
		t.Fatalf("plan = %v", got)
	}
	if _, err := e.run(e.ctx, cfg, p, 0); err != nil {
		t.Fatalf("Run: %v", err)
	}
	events := e.fake.Events()
	stop := indexOf(events, "stop", old.RunDir)
	launch := indexOf(events, "launch", runDirOf("new", "r0", 0))
	if stop < 0 || launch < 0 || stop > launch {
		t.Errorf("events %v: old stopped at %d, new launched at %d; deletions must come first", events, stop, launch)
	}
	if r := replicaOf(t, e.stored(), "pool.new", "r0"); r.Port != 8080 {
		t.Errorf("pool.new/r0 port %d", r.Port)
	}
}

func TestRestart(t *testing.T) {
	tests := []struct {
		name         string
		break_       func(e *env, runDir string)
		wantReason   plan.Reason
		wantOld      []string // what the old supervisor saw
		wantRestarts int
	}{
		{
			name:         "failed supervisor is stopped first",
			break_:       func(e *env, d string) { e.fake.fail(d, "circuit breaker open: engine crashed 5 times") },
			wantReason:   plan.RestartBecauseFailed,
			wantOld:      []string{"launch", "stop", "launch"},
			wantRestarts: 6, // the supervisor's five, then this one
		},
		{
			name:         "vanished supervisor is relaunched",
			break_:       func(e *env, d string) { e.fake.kill(d) },
			wantOld:      []string{"launch", "launch"},
			wantRestarts: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			cfg := configOf(pool("pool.chat", replicas(2), port(8080)))
			before := e.converge(cfg)
			old := replicaOf(t, before, "pool.chat", "r0")
			tt.break_(e, old.RunDir)
			p := e.plan(cfg, plan.Options{})
			if got := changeActions(p); !slices.Equal(got, []string{"↻ pool.chat/r0"}) {
				t.Fatalf("plan = %v, want a restart of r0", got)
			}
			if tt.wantReason != "" && p.Changes[0].Reason != tt.wantReason {
				t.Errorf("reason %q, want %q", p.Changes[0].Reason, tt.wantReason)
			}
			if _, err := e.run(e.ctx, cfg, p, 0); err != nil {
				t.Fatalf("Run: %v", err)
			}
			if got := e.fake.eventsFor(old.RunDir); !slices.Equal(got, tt.wantOld) {
				t.Errorf("supervisors in %s saw %v, want %v", old.RunDir, got, tt.wantOld)
			}
			r := replicaOf(t, e.stored(), "pool.chat", "r0")
			if r.Status != "ready" || r.PID == old.PID || r.Port != 8080 || r.LastError != "" || r.RunDir != old.RunDir {
				t.Errorf("r0 = status %q pid %d (old %d) port %d run dir %q last_error %q", r.Status, r.PID, old.PID, r.Port, r.RunDir, r.LastError)
			}
			if r.Restarts != tt.wantRestarts {
				t.Errorf("restarts = %d, want %d", r.Restarts, tt.wantRestarts)
			}
			if f, err := handoff.Read(e.fs, r.Handoff); err != nil || f.PID != r.PID {
				t.Errorf("handoff %+v, %v; want the new engine's", f, err)
			}
			if r1 := replicaOf(t, e.stored(), "pool.chat", "r1"); !slices.Equal(e.fake.eventsFor(r1.RunDir), []string{"launch"}) {
				t.Errorf("r1 was touched: %v", e.fake.eventsFor(r1.RunDir))
			}
		})
	}
}

// A restart whose Ensure fails is recorded on the replica (failed, with
// the error): each failure is recorded in state.
func TestRestartRecordsEnsureFailure(t *testing.T) {
	e := newEnv(t)
	cfg := configOf(pool("pool.chat"))
	before := e.converge(cfg)
	e.fake.kill(replicaOf(t, before, "pool.chat", "r0").RunDir)
	e.prov.EnsureFunc = func(context.Context, providers.EnsureRequest) (*providers.PreparedEngine, providers.Diagnostics) {
		return nil, providers.Diagnostics{providers.Errorf("Model not found", "The file /models/chat.gguf does not exist.")}
	}
	_, err := e.run(e.ctx, cfg, e.plan(cfg, plan.Options{}), 0)
	if err == nil {
		t.Fatal("Run succeeded")
	}
	containsAll(t, "error", err.Error(), "pool.chat/r0", "Model not found")
	r := replicaOf(t, e.stored(), "pool.chat", "r0")
	if !strings.Contains(r.LastError, "Model not found: The file /models/chat.gguf does not exist.") {
		t.Errorf("r0 last_error = %q, want the Ensure failure", r.LastError)
	}
	if r.Status == "ready" {
		t.Errorf("r0 recorded ready although it is not running")
	}
}

func TestOrphanRunDirsAreStoppedAndRemoved(t *testing.T) {
	e := newEnv(t)
	cfg := configOf(pool("pool.chat"))
	e.converge(cfg)
	// A supervisor llorch started but never recorded (the state write
	// failed): its run dir is not in the state.
	orphan := filepath.Join(stateDir, "run", "ghost-r0")
	if _, _, err := e.fake.Launch(e.ctx, supervisor.Spec{Addr: "pool.ghost/r0", RunDir: orphan}); err != nil {
		t.Fatal(err)
	}
	cfg2 := configOf(pool("pool.chat", labels("a", "b")))
	if _, err := e.run(e.ctx, cfg2, e.plan(cfg2, plan.Options{}), 0); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if got := e.fake.eventsFor(orphan); !slices.Equal(got, []string{"launch", "stop"}) {
		t.Errorf("orphan supervisor saw %v, want launch, stop", got)
	}
	if exists(t, e.fs, orphan) {
		t.Errorf("orphan run dir left behind")
	}
	if r := replicaOf(t, e.stored(), "pool.chat", "r0"); !e.fake.alive(r.RunDir) {
		t.Errorf("recorded replica stopped by the orphan sweep")
	}
}

// Changing `port = 8080` to `port = 9090` (create_before_destroy, the
// default) puts the successors on 9090+i: only a port the predecessor
// still holds makes a successor take a fresh one.
func TestReplaceForPortChangeUsesTheNewPort(t *testing.T) {
	e := newEnv(t)
	e.converge(configOf(pool("pool.chat", replicas(2), port(18080))))
	cfg := configOf(pool("pool.chat", replicas(2), port(19090)))
	p := e.plan(cfg, plan.Options{})
	if got := changeActions(p); !slices.Equal(got, []string{"± pool.chat"}) {
		t.Fatalf("plan = %v, want a replace (port forces one)", got)
	}
	if _, err := e.run(e.ctx, cfg, p, 0); err != nil {
		t.Fatalf("Run: %v", err)
	}
	st := e.stored()
	for i, id := range []string{"r0", "r1"} {
		if r := replicaOf(t, st, "pool.chat", id); r.Port != 19090+i {
			t.Errorf("%s listens on %d, want the configured %d", id, r.Port, 19090+i)
		}
	}
}

func TestSecondReplacementUsesTheNextGeneration(t *testing.T) {
	e := newEnv(t)
	e.converge(configOf(pool("pool.chat", port(8080))))
	e.converge(configOf(pool("pool.chat", port(8080), model("file:/models/v2.gguf"))))
	st := e.converge(configOf(pool("pool.chat", port(8080), model("file:/models/v3.gguf"))))
	r := replicaOf(t, st, "pool.chat", "r0")
	// Each replacement takes two generations on a fixed port: one on a
	// fresh port, one back on the configured port.
	if r.Generation != 4 || r.RunDir != runDirOf("chat", "r0", 4) || r.Status != "ready" || r.Port != 8080 {
		t.Errorf("r0 = generation %d run dir %q status %q port %d, want generation 4 in %q on 8080", r.Generation, r.RunDir, r.Status, r.Port, runDirOf("chat", "r0", 4))
	}
	for _, gen := range []int{0, 1, 2, 3} {
		if d := runDirOf("chat", "r0", gen); exists(t, e.fs, d) || e.fake.alive(d) {
			t.Errorf("generation %d (%s) still there", gen, d)
		}
	}
}

// A predecessor that does not stop after its successor came up is both
// recorded (the successor's last_error) and returned: the old engine may
// still hold its port and GPU memory.
func TestReplaceReportsAPredecessorThatWouldNotStop(t *testing.T) {
	e := newEnv(t)
	before := e.converge(configOf(pool("pool.chat", port(8080))))
	old := replicaOf(t, before, "pool.chat", "r0")
	e.fake.StopErr[old.RunDir] = errors.New("engine did not exit after SIGKILL")
	cfg := configOf(pool("pool.chat", port(8080), model("file:/models/v2.gguf")))
	p := e.plan(cfg, plan.Options{})
	_, err := e.run(e.ctx, cfg, p, 0)
	r := replicaOf(t, e.stored(), "pool.chat", "r0")
	if r.Generation != 1 || r.Status != "ready" {
		t.Errorf("successor = generation %d status %q, want serving", r.Generation, r.Status)
	}
	if want := "the replacement serves, but the previous engine did not stop cleanly (the next apply stops it): stopping r0: engine did not exit after SIGKILL"; r.LastError != want {
		t.Errorf("last_error = %q, want %q", r.LastError, want)
	}
	if err == nil {
		t.Fatal("Run succeeded although the old engine of pool.chat/r0 is still running")
	}
	containsAll(t, "error", err.Error(), "pool.chat/r0", "engine did not exit after SIGKILL")
}
