package plan

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/zclconf/go-cty/cty"

	"github.com/llorch/llorch/config"
	"github.com/llorch/llorch/plan/plantest"
	"github.com/llorch/llorch/providers"
	"github.com/llorch/llorch/state"
)

// world is the input of one Diff: the configured pools and the state.
type world struct {
	t       *testing.T
	desired []*Desired
	prior   map[string]*state.Pool
}

// applied records the pool at addr as applied with mut, and returns it.
func (w *world) applied(addr string, mut func(*config.Pool)) *state.Pool {
	p := plantest.Pool(addr)
	if mut != nil {
		mut(p)
	}
	sp := recorded(w.t, testDesired(w.t, p, nil))
	w.prior[addr] = sp
	return sp
}

// configured adds the pool at addr, as configured now, to the desired set.
func (w *world) configured(addr string, mut func(*config.Pool), planned *providers.PlannedPool) *Desired {
	p := plantest.Pool(addr)
	if mut != nil {
		mut(p)
	}
	d := testDesired(w.t, p, planned)
	w.desired = append(w.desired, d)
	return d
}

// both records the pool as applied with was and configures it with now.
func (w *world) both(addr string, was, now func(*config.Pool)) {
	w.applied(addr, was)
	w.configured(addr, now, nil)
}

func actionName(a Action) string {
	switch a {
	case Create:
		return "create"
	case Update:
		return "update"
	case CreateThenDelete:
		return "create-then-delete"
	case DeleteThenCreate:
		return "delete-then-create"
	case Delete:
		return "delete"
	case Restart:
		return "restart"
	}
	return "no-op"
}

// describe renders a change on one line for comparison.
func describe(c *Change) string {
	s := c.Addr + " " + actionName(c.Action)
	if c.Reason != ReasonNone {
		s += " " + string(c.Reason)
	}
	if c.Action == Update || c.Action.IsReplace() {
		var paths []string
		for _, a := range c.Attrs {
			paths = append(paths, a.Path)
		}
		s += fmt.Sprintf(" attrs=%v", paths)
	}
	if len(c.ForcedBy) > 0 {
		s += fmt.Sprintf(" forced=%v", c.ForcedBy)
	}
	s += fmt.Sprintf(" replicas=%v", c.Replicas)
	if c.Detail != "" {
		s += " (" + c.Detail + ")"
	}
	return s
}

func describeDrift(d *Drift) string { return d.Addr + " " + d.Status + ": " + d.Reason }

func withPlanned(version string, requires ...cty.Path) *providers.PlannedPool {
	return &providers.PlannedPool{EngineVersion: version, RequiresReplace: requires}
}

// diffCase is one Diff input and the changes and drift it must give.
type diffCase struct {
	name      string
	setup     func(w *world)
	observed  Observations
	opts      Options
	want      []string // describe() of every change, in order
	wantDrift []string // describeDrift() of every drift entry, in order
}

func TestDiff(t *testing.T) {
	tests := []diffCase{
		// Create and delete.
		{
			name:  "a pool not in state is created with its replicas",
			setup: func(w *world) { w.configured("pool.chat", func(p *config.Pool) { p.Replicas = 2 }, nil) },
			want:  []string{"pool.chat create replicas=[r0 r1]"},
		},
		{
			name:  "a pool no longer configured is deleted",
			setup: func(w *world) { w.applied("pool.old", func(p *config.Pool) { p.Replicas = 2 }) },
			want:  []string{"pool.old delete delete_because_no_config replicas=[r0 r1]"},
		},
		{
			name: "destroy deletes every recorded pool and creates nothing",
			setup: func(w *world) {
				w.both("pool.a", nil, func(p *config.Pool) { p.Ctx = 512 })
				w.applied("pool.gone", nil)
				w.configured("pool.new", nil, nil)
			},
			opts: Options{Destroy: true},
			want: []string{"pool.a delete delete_because_destroy replicas=[r0]", "pool.gone delete delete_because_destroy replicas=[r0]"},
		},
		{
			name:  "an unchanged pool has no change",
			setup: func(w *world) { w.both("pool.chat", nil, nil) },
		},
		{
			name: "an unchanged pool with a provider block has no change",
			setup: func(w *world) {
				mut := func(p *config.Pool) {
					plantest.SetProviderBlock(w.t, p, "n_gpu_layers = 99\napi_key = \"k\"\nsource {\n ref = \"b1\"\n}", nil)
				}
				w.both("pool.chat", mut, mut)
			},
		},

		// Attributes that force replacement, each on its own.
		forcing("engine", func(p *config.Pool) { p.Engine = "vllm" }),
		forcing("model.ref", func(p *config.Pool) { p.Model.Ref = "file:/models/other.gguf" }),
		forcing("model.sha256", func(p *config.Pool) { p.Model.SHA256 = strings.Repeat("a", 64) }),
		forcing("host", func(p *config.Pool) { p.Host = "0.0.0.0" }),
		forcing("port", func(p *config.Pool) { p.Port = 8080 }),
		forcing("devices", func(p *config.Pool) { p.Devices = []int{0} }),
		forcing("devices", func(p *config.Pool) { p.Devices = []int{} }),
		forcing("ctx", func(p *config.Pool) { p.Ctx = 4096 }),
		forcing("flags", func(p *config.Pool) { p.Flags = []string{"--parallel", "4"} }),
		forcing("env.LLAMA_ARG_THREADS", func(p *config.Pool) { p.Env = map[string]string{"LLAMA_ARG_THREADS": "8"} }),
		{
			name: "a provider attribute marked forces_replacement replaces the pool",
			setup: func(w *world) {
				w.both("pool.chat", nil, func(p *config.Pool) { plantest.SetProviderBlock(w.t, p, `build_ref = "b2"`, nil) })
			},
			want: []string{"pool.chat create-then-delete replace_because_cannot_update attrs=[llamacpp.build_ref] forced=[llamacpp.build_ref] replicas=[r0]"},
		},
		{
			name: "a forcing attribute in a nested provider block replaces the pool",
			setup: func(w *world) {
				w.both("pool.chat",
					func(p *config.Pool) { plantest.SetProviderBlock(w.t, p, "source {\n ref = \"b1\"\n}", nil) },
					func(p *config.Pool) { plantest.SetProviderBlock(w.t, p, "source {\n ref = \"b2\"\n}", nil) })
			},
			want: []string{"pool.chat create-then-delete replace_because_cannot_update attrs=[llamacpp.source.ref] forced=[llamacpp.source.ref] replicas=[r0]"},
		},
		{
			name: "a provider attribute PlanPool says requires replacement replaces the pool",
			setup: func(w *world) {
				w.applied("pool.chat", nil)
				w.configured("pool.chat", func(p *config.Pool) { plantest.SetProviderBlock(w.t, p, "n_gpu_layers = 10", nil) },
					withPlanned("fake-1", cty.GetAttrPath("n_gpu_layers")))
			},
			want: []string{"pool.chat create-then-delete replace_because_cannot_update attrs=[llamacpp.n_gpu_layers] forced=[llamacpp.n_gpu_layers] replicas=[r0]"},
		},
		{
			name: "a new engine version replaces the pool",
			setup: func(w *world) {
				w.applied("pool.chat", nil)
				w.configured("pool.chat", nil, withPlanned("fake-2"))
			},
			want: []string{"pool.chat create-then-delete replace_because_cannot_update attrs=[engine_version] forced=[engine_version] replicas=[r0]"},
		},
		{
			name: "an engine version not known before Ensure replaces the pool when PlanPool requires it",
			setup: func(w *world) {
				w.applied("pool.chat", nil)
				w.configured("pool.chat", nil, withPlanned("", cty.GetAttrPath("engine_version")))
			},
			want: []string{"pool.chat create-then-delete replace_because_cannot_update attrs=[engine_version] forced=[engine_version] replicas=[r0]"},
		},
		{
			name: "an engine version not known before Ensure changes nothing otherwise",
			setup: func(w *world) {
				w.applied("pool.chat", nil)
				w.configured("pool.chat", nil, withPlanned(""))
			},
		},
		{
			name: "drain_first replaces by deleting first",
			setup: func(w *world) {
				w.both("pool.chat", nil, func(p *config.Pool) { p.Ctx = 8192; p.Update.Strategy = config.DrainFirst })
			},
			want: []string{"pool.chat delete-then-create replace_because_cannot_update attrs=[ctx update.strategy] forced=[ctx] replicas=[r0]"},
		},
		{
			name: "a replace with fewer replicas touches old and new ones",
			setup: func(w *world) {
				w.both("pool.chat", func(p *config.Pool) { p.Replicas = 3 }, func(p *config.Pool) { p.Replicas = 2; p.Ctx = 1 })
			},
			want: []string{"pool.chat create-then-delete replace_because_cannot_update attrs=[replicas ctx] forced=[ctx] replicas=[r0 r1 r2]"},
		},

		// Attributes that change in place.
		inPlace("labels.team", func(p *config.Pool) { p.Labels = map[string]string{"team": "search"} }),
		inPlace("health.path", func(p *config.Pool) { p.Health.Path = "/ready" }),
		inPlace("health.interval", func(p *config.Pool) { p.Health.Interval *= 2 }),
		inPlace("health.start_timeout", func(p *config.Pool) { p.Health.StartTimeout *= 2 }),
		inPlace("health.live_interval", func(p *config.Pool) { p.Health.LiveInterval *= 2 }),
		inPlace("health.failures", func(p *config.Pool) { p.Health.Failures = 9 }),
		inPlace("restart.policy", func(p *config.Pool) { p.Restart.Policy = config.RestartNever }),
		inPlace("restart.initial_backoff", func(p *config.Pool) { p.Restart.InitialBackoff *= 2 }),
		inPlace("restart.max_backoff", func(p *config.Pool) { p.Restart.MaxBackoff *= 2 }),
		inPlace("restart.multiplier", func(p *config.Pool) { p.Restart.Multiplier = 3 }),
		inPlace("restart.jitter", func(p *config.Pool) { p.Restart.Jitter = 0.5 }),
		inPlace("restart.reset_after", func(p *config.Pool) { p.Restart.ResetAfter *= 2 }),
		inPlace("restart.max_failures", func(p *config.Pool) { p.Restart.MaxFailures = 1 }),
		inPlace("restart.cooldown", func(p *config.Pool) { p.Restart.Cooldown = 0 }),
		inPlace("drain.deadline", func(p *config.Pool) { p.Drain.Deadline *= 2 }),
		inPlace("update.strategy", func(p *config.Pool) { p.Update.Strategy = config.DrainFirst }),
		{
			name: "a provider attribute that does not force replacement changes in place",
			setup: func(w *world) {
				w.both("pool.chat", nil, func(p *config.Pool) { plantest.SetProviderBlock(w.t, p, "n_gpu_layers = 10", nil) })
			},
			want: []string{"pool.chat update attrs=[llamacpp.n_gpu_layers] replicas=[]"},
		},
		{
			name:  "more replicas are created in place",
			setup: func(w *world) { w.both("pool.chat", nil, func(p *config.Pool) { p.Replicas = 3 }) },
			want:  []string{"pool.chat update attrs=[replicas] replicas=[r1 r2]"},
		},
		{
			name:  "fewer replicas delete the ones beyond the count",
			setup: func(w *world) { w.both("pool.chat", func(p *config.Pool) { p.Replicas = 3 }, nil) },
			want:  []string{"pool.chat update delete_because_count_index attrs=[replicas] replicas=[r1 r2]"},
		},
		{
			name: "a replica missing from state is created again",
			setup: func(w *world) {
				sp := w.applied("pool.chat", func(p *config.Pool) { p.Replicas = 2 })
				sp.Replicas = sp.Replicas[:1]
				w.configured("pool.chat", func(p *config.Pool) { p.Replicas = 2 }, nil)
			},
			want: []string{"pool.chat update attrs=[] replicas=[r1]"},
		},

		// -replace.
		{
			name:  "-replace of a pool replaces it without any change",
			setup: func(w *world) { w.both("pool.chat", nil, nil) },
			opts:  Options{Replace: []string{"pool.chat"}},
			want:  []string{"pool.chat create-then-delete replace_by_request attrs=[] replicas=[r0]"},
		},
		{
			name: "-replace of a pool that also changes says it was requested",
			setup: func(w *world) {
				w.both("pool.chat", nil, func(p *config.Pool) { p.Ctx = 1; p.Update.Strategy = config.DrainFirst })
			},
			opts: Options{Replace: []string{"pool.chat"}},
			want: []string{"pool.chat delete-then-create replace_by_request attrs=[ctx update.strategy] forced=[ctx] replicas=[r0]"},
		},
		{
			name: "-replace of a replica replaces only that replica",
			setup: func(w *world) {
				mut := func(p *config.Pool) { p.Replicas = 2 }
				w.both("pool.chat", mut, mut)
			},
			opts: Options{Replace: []string{"pool.chat/r1"}},
			want: []string{"pool.chat/r1 create-then-delete replace_by_request attrs=[] replicas=[r1]"},
		},
		{
			name: "-replace of a replica with drain_first drains it first",
			setup: func(w *world) {
				mut := func(p *config.Pool) { p.Replicas = 2; p.Update.Strategy = config.DrainFirst }
				w.both("pool.chat", mut, mut)
			},
			opts: Options{Replace: []string{"pool.chat/r0"}},
			want: []string{"pool.chat/r0 delete-then-create replace_by_request attrs=[] replicas=[r0]"},
		},
		{
			name: "-replace of a whole pool address covers every instance",
			setup: func(w *world) {
				w.both(`pool.embed["bge"]`, nil, nil)
				w.both(`pool.embed["e5"]`, nil, nil)
				w.both("pool.chat", nil, nil)
			},
			opts: Options{Replace: []string{"pool.embed"}},
			want: []string{
				`pool.embed["bge"] create-then-delete replace_by_request attrs=[] replicas=[r0]`,
				`pool.embed["e5"] create-then-delete replace_by_request attrs=[] replicas=[r0]`,
			},
		},

		// Refresh observations.
		{
			name:      "a replica that exited is restarted",
			setup:     func(w *world) { w.both("pool.chat", nil, nil) },
			observed:  Observations{"pool.chat/r0": {Status: "", Alive: false}},
			want:      []string{"pool.chat/r0 restart restart_because_exited replicas=[r0] (process 4000 is not running)"},
			wantDrift: []string{"pool.chat/r0 : process 4000 is not running"},
		},
		{
			name:      "a restart carries the observed reason",
			setup:     func(w *world) { w.both("pool.chat", nil, nil) },
			observed:  Observations{"pool.chat/r0": {Status: "ready", Alive: false, Reason: "engine exited with status 134"}},
			want:      []string{"pool.chat/r0 restart restart_because_exited replicas=[r0] (engine exited with status 134)"},
			wantDrift: []string{"pool.chat/r0 ready: engine exited with status 134"},
		},
		{
			name:      "a failed replica with an open circuit is restarted",
			setup:     func(w *world) { w.both("pool.chat", nil, nil) },
			observed:  Observations{"pool.chat/r0": {Status: state.StatusFailed, Reason: "circuit breaker open: 5 failures"}},
			want:      []string{"pool.chat/r0 restart restart_because_failed replicas=[r0] (circuit breaker open: 5 failures)"},
			wantDrift: []string{"pool.chat/r0 failed: circuit breaker open: 5 failures"},
		},
		{
			name:      "a drained replica is restarted",
			setup:     func(w *world) { w.both("pool.chat", nil, nil) },
			observed:  Observations{"pool.chat/r0": {Status: state.StatusStopped}},
			want:      []string{"pool.chat/r0 restart restart_because_drained replicas=[r0] (the replica was drained and stopped)"},
			wantDrift: []string{"pool.chat/r0 stopped: the replica was drained and stopped"},
		},
		{
			name:     "a replica in backoff is left to its supervisor",
			setup:    func(w *world) { w.both("pool.chat", nil, nil) },
			observed: Observations{"pool.chat/r0": {Status: state.StatusBackoff, Alive: false}},
		},
		{
			name:     "a ready replica is not drift",
			setup:    func(w *world) { w.both("pool.chat", nil, nil) },
			observed: Observations{"pool.chat/r0": {Status: state.StatusReady, Alive: true, PID: 4000}},
		},
		{
			name: "a replica without an observation is assumed as recorded",
			setup: func(w *world) {
				mut := func(p *config.Pool) { p.Replicas = 2 }
				w.both("pool.chat", mut, mut)
			},
			observed:  Observations{"pool.chat/r1": {Status: state.StatusFailed}},
			want:      []string{"pool.chat/r1 restart restart_because_failed replicas=[r1] (the replica failed and its circuit breaker is open)"},
			wantDrift: []string{"pool.chat/r1 failed: the replica failed and its circuit breaker is open"},
		},
		{
			name:      "a changed binary replaces the pool",
			setup:     func(w *world) { w.both("pool.chat", nil, nil) },
			observed:  Observations{"pool.chat/r0": {Status: state.StatusReady, Alive: true, BinaryChanged: true}},
			want:      []string{"pool.chat create-then-delete replace_because_drift attrs=[] forced=[binary] replicas=[r0]"},
			wantDrift: []string{"pool.chat/r0 ready: the engine binary changed on disk after the replica started"},
		},
		{
			name: "a changed model file replaces the pool once",
			setup: func(w *world) {
				mut := func(p *config.Pool) { p.Replicas = 2 }
				w.both("pool.chat", mut, mut)
			},
			observed: Observations{
				"pool.chat/r0": {Status: state.StatusReady, Alive: true, ModelChanged: true},
				"pool.chat/r1": {Status: state.StatusReady, Alive: true, ModelChanged: true},
			},
			want: []string{"pool.chat create-then-delete replace_because_drift attrs=[] forced=[model file] replicas=[r0 r1]"},
			wantDrift: []string{
				"pool.chat/r0 ready: the model file changed on disk after the replica started",
				"pool.chat/r1 ready: the model file changed on disk after the replica started",
			},
		},
		{
			name:     "a dead replica of a pool being replaced is not restarted",
			setup:    func(w *world) { w.both("pool.chat", nil, func(p *config.Pool) { p.Ctx = 1 }) },
			observed: Observations{"pool.chat/r0": {Status: state.StatusFailed}},
			want:     []string{"pool.chat create-then-delete replace_because_cannot_update attrs=[ctx] forced=[ctx] replicas=[r0]"},
		},
		{
			name:     "a dead replica of a pool being deleted is not restarted",
			setup:    func(w *world) { w.applied("pool.chat", nil) },
			observed: Observations{"pool.chat/r0": {Status: state.StatusFailed}},
			want:     []string{"pool.chat delete delete_because_no_config replicas=[r0]"},
		},
		{
			name: "a dead replica beyond the new count is not restarted",
			setup: func(w *world) {
				w.both("pool.chat", func(p *config.Pool) { p.Replicas = 2 }, nil)
			},
			observed: Observations{"pool.chat/r1": {Status: state.StatusFailed}},
			want:     []string{"pool.chat update delete_because_count_index attrs=[replicas] replicas=[r1]"},
		},
		{
			name: "a dead replica of a pool updated in place is restarted too",
			setup: func(w *world) {
				w.both("pool.chat", nil, func(p *config.Pool) { p.Labels = map[string]string{"a": "b"} })
			},
			observed: Observations{"pool.chat/r0": {Status: state.StatusFailed, Reason: "x"}},
			want: []string{
				"pool.chat update attrs=[labels.a] replicas=[]",
				"pool.chat/r0 restart restart_because_failed replicas=[r0] (x)",
			},
			wantDrift: []string{"pool.chat/r0 failed: x"},
		},
		{
			name: "a replica being replaced on request is not also restarted",
			setup: func(w *world) {
				w.both("pool.chat", nil, nil)
			},
			observed: Observations{"pool.chat/r0": {Status: state.StatusFailed}},
			opts:     Options{Replace: []string{"pool.chat/r0"}},
			want:     []string{"pool.chat/r0 create-then-delete replace_by_request attrs=[] replicas=[r0]"},
		},

		// -target.
		{
			name: "-target keeps only the targeted pool",
			setup: func(w *world) {
				w.configured("pool.a", nil, nil)
				w.configured("pool.b", nil, nil)
			},
			opts: Options{Targets: []string{"pool.b"}},
			want: []string{"pool.b create replicas=[r0]"},
		},
		{
			name: "-target of a pool keeps its instances and replicas",
			setup: func(w *world) {
				w.configured(`pool.embed["bge"]`, nil, nil)
				w.configured(`pool.embed["e5"]`, nil, nil)
				w.both("pool.chat", nil, nil)
				w.both("pool.other", nil, nil)
			},
			observed: Observations{"pool.chat/r0": {Status: state.StatusFailed}, "pool.other/r0": {Status: state.StatusFailed}},
			opts:     Options{Targets: []string{"pool.embed", "pool.chat"}},
			want: []string{
				"pool.chat/r0 restart restart_because_failed replicas=[r0] (the replica failed and its circuit breaker is open)",
				`pool.embed["bge"] create replicas=[r0]`,
				`pool.embed["e5"] create replicas=[r0]`,
			},
			wantDrift: []string{"pool.chat/r0 failed: the replica failed and its circuit breaker is open"},
		},
		{
			name: "-target of one instance leaves the others",
			setup: func(w *world) {
				w.configured(`pool.embed["bge"]`, nil, nil)
				w.configured(`pool.embed["e5"]`, nil, nil)
			},
			opts: Options{Targets: []string{`pool.embed["e5"]`}},
			want: []string{`pool.embed["e5"] create replicas=[r0]`},
		},
		{
			name: "-target of a replica keeps only that replica's change",
			setup: func(w *world) {
				mut := func(p *config.Pool) { p.Replicas = 2 }
				w.both("pool.chat", mut, func(p *config.Pool) { p.Replicas = 2; p.Labels = map[string]string{"a": "b"} })
			},
			observed:  Observations{"pool.chat/r0": {Status: state.StatusFailed}, "pool.chat/r1": {Status: state.StatusFailed}},
			opts:      Options{Targets: []string{"pool.chat/r1"}},
			want:      []string{"pool.chat/r1 restart restart_because_failed replicas=[r1] (the replica failed and its circuit breaker is open)"},
			wantDrift: []string{"pool.chat/r1 failed: the replica failed and its circuit breaker is open"},
		},
		{
			name: "-target of a pool only in state keeps its deletion",
			setup: func(w *world) {
				w.applied("pool.old", nil)
				w.configured("pool.new", nil, nil)
			},
			opts: Options{Targets: []string{"pool.old"}},
			want: []string{"pool.old delete delete_because_no_config replicas=[r0]"},
		},
		{
			name: "-target with -destroy destroys only the target",
			setup: func(w *world) {
				w.applied("pool.a", nil)
				w.applied("pool.b", nil)
			},
			opts: Options{Destroy: true, Targets: []string{"pool.a"}},
			want: []string{"pool.a delete delete_because_destroy replicas=[r0]"},
		},

		// Ordering.
		{
			name: "changes are sorted by address with replicas in numeric order",
			setup: func(w *world) {
				mut := func(p *config.Pool) { p.Replicas = 11 }
				w.both("pool.b", mut, mut)
				w.configured("pool.a", nil, nil)
				w.applied("pool.c", nil)
			},
			observed: Observations{"pool.b/r10": {Status: state.StatusFailed}, "pool.b/r2": {Status: state.StatusFailed}},
			want: []string{
				"pool.a create replicas=[r0]",
				"pool.b/r2 restart restart_because_failed replicas=[r2] (the replica failed and its circuit breaker is open)",
				"pool.b/r10 restart restart_because_failed replicas=[r10] (the replica failed and its circuit breaker is open)",
				"pool.c delete delete_because_no_config replicas=[r0]",
			},
			wantDrift: []string{
				"pool.b/r2 failed: the replica failed and its circuit breaker is open",
				"pool.b/r10 failed: the replica failed and its circuit breaker is open",
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := &world{t: t, prior: map[string]*state.Pool{}}
			tc.setup(w)
			prior := stateWith(w.prior)
			p, diags := Diff(w.desired, prior, tc.observed, tc.opts)
			if diags.HasErrors() {
				t.Fatalf("Diff: %s", diags.Error())
			}
			var got, gotDrift []string
			for _, c := range p.Changes {
				got = append(got, describe(c))
			}
			for _, d := range p.Drift {
				gotDrift = append(gotDrift, describeDrift(d))
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("changes:\n  got  %q\n  want %q", got, tc.want)
			}
			if !slices.Equal(gotDrift, tc.wantDrift) {
				t.Errorf("drift:\n  got  %q\n  want %q", gotDrift, tc.wantDrift)
			}
			if p.Empty() != (len(tc.want) == 0) {
				t.Errorf("Empty() = %v with %d changes", p.Empty(), len(p.Changes))
			}
			if p.Lineage != prior.Lineage || p.Serial != prior.Serial {
				t.Errorf("plan made against %s/%d, state is %s/%d", p.Lineage, p.Serial, prior.Lineage, prior.Serial)
			}
		})
	}
}

// forcing is a case where changing one pool attribute replaces the pool.
func forcing(path string, mut func(*config.Pool)) struct {
	name      string
	setup     func(w *world)
	observed  Observations
	opts      Options
	want      []string
	wantDrift []string
} {
	return struct {
		name      string
		setup     func(w *world)
		observed  Observations
		opts      Options
		want      []string
		wantDrift []string
	}{
		name:  path + " forces replacement",
		setup: func(w *world) { w.both("pool.chat", nil, mut) },
		want:  []string{fmt.Sprintf("pool.chat create-then-delete replace_because_cannot_update attrs=[%s] forced=[%s] replicas=[r0]", path, path)},
	}
}

// inPlace is a case where changing one pool attribute updates it in place.
func inPlace(path string, mut func(*config.Pool)) struct {
	name      string
	setup     func(w *world)
	observed  Observations
	opts      Options
	want      []string
	wantDrift []string
} {
	return struct {
		name      string
		setup     func(w *world)
		observed  Observations
		opts      Options
		want      []string
		wantDrift []string
	}{
		name:  path + " changes in place",
		setup: func(w *world) { w.both("pool.chat", nil, mut) },
		want:  []string{fmt.Sprintf("pool.chat update attrs=[%s] replicas=[]", path)},
	}
}
