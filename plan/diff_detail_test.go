package plan

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"

	"github.com/llorch/llorch/config"
	"github.com/llorch/llorch/plan/plantest"
	"github.com/llorch/llorch/state"
)

func TestDiffRejectsAddressesThatMatchNothing(t *testing.T) {
	tests := []struct {
		name        string
		opts        Options
		wantSummary string
		wantDetail  string
	}{
		{
			name:        "unknown -replace pool",
			opts:        Options{Replace: []string{"pool.nope"}},
			wantSummary: "No matching pool",
			wantDetail:  "-replace=pool.nope matches no pool in the configuration.",
		},
		{
			name:        "-replace of a pool only in state",
			opts:        Options{Replace: []string{"pool.old"}},
			wantSummary: "No matching pool",
			wantDetail:  "-replace=pool.old matches no pool in the configuration.",
		},
		{
			name:        "unknown -replace replica",
			opts:        Options{Replace: []string{"pool.chat/r7"}},
			wantSummary: "No matching replica",
			wantDetail:  "-replace=pool.chat/r7 matches no replica: pool.chat has replicas r0, r1.",
		},
		{
			name:        "unknown -replace instance",
			opts:        Options{Replace: []string{`pool.embed["nope"]`}},
			wantSummary: "No matching pool",
			wantDetail:  `-replace=pool.embed["nope"] matches no pool in the configuration.`,
		},
		{
			name:        "malformed -replace",
			opts:        Options{Replace: []string{"chat"}},
			wantSummary: "Invalid -replace address",
			wantDetail:  `-replace=chat is not a pool address: it does not start with "pool.". Write pool.NAME, pool.NAME["KEY"] or pool.NAME[INDEX], and add /rN for one replica (pool.chat/r1).`,
		},
		{
			name:        "unknown -target",
			opts:        Options{Targets: []string{"pool.nope"}},
			wantSummary: "No matching pool",
			wantDetail:  "-target=pool.nope matches no pool in the configuration or the state.",
		},
		{
			name:        "unknown -target replica",
			opts:        Options{Targets: []string{"pool.chat/r2"}},
			wantSummary: "No matching replica",
			wantDetail:  "-target=pool.chat/r2 matches no replica: pool.chat has replicas r0, r1.",
		},
		{
			name:        "malformed -target",
			opts:        Options{Targets: []string{"pool.chat/x"}},
			wantSummary: "Invalid -target address",
			wantDetail:  `-target=pool.chat/x is not a pool address: "/x" follows the pool address. Write pool.NAME, pool.NAME["KEY"] or pool.NAME[INDEX], and add /rN for one replica (pool.chat/r1).`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := &world{t: t, prior: map[string]*state.Pool{}}
			mut := func(p *config.Pool) { p.Replicas = 2 }
			w.both("pool.chat", mut, mut)
			w.configured(`pool.embed["bge"]`, nil, nil)
			w.applied("pool.old", nil)
			p, diags := Diff(w.desired, stateWith(w.prior), nil, tc.opts)
			if p != nil {
				t.Errorf("Diff returned a plan along with errors")
			}
			if len(diags) != 1 {
				t.Fatalf("want one diagnostic, got %d: %v", len(diags), diags)
			}
			d := diags[0]
			if d.Severity != hcl.DiagError || d.Summary != tc.wantSummary || d.Detail != tc.wantDetail {
				t.Errorf("diagnostic = %q / %q\nwant         %q / %q", d.Summary, d.Detail, tc.wantSummary, tc.wantDetail)
			}
		})
	}
}

func TestDiffReportsEveryBadAddress(t *testing.T) {
	w := &world{t: t, prior: map[string]*state.Pool{}}
	w.configured("pool.chat", nil, nil)
	_, diags := Diff(w.desired, stateWith(w.prior), nil, Options{Targets: []string{"pool.a", "pool.b"}, Replace: []string{"pool.c"}})
	if len(diags) != 3 {
		t.Fatalf("want 3 diagnostics, got %d: %v", len(diags), diags)
	}
}

func TestSummaryCountsReplacesAsAddAndDestroy(t *testing.T) {
	w := &world{t: t, prior: map[string]*state.Pool{}}
	w.configured("pool.new", nil, nil)                                                          // add
	w.both("pool.moved", nil, func(p *config.Pool) { p.Ctx = 1 })                               // add + destroy
	w.both("pool.labels", nil, func(p *config.Pool) { p.Labels = map[string]string{"a": "b"} }) // change
	w.applied("pool.gone", nil)                                                                 // destroy
	w.both("pool.dead", nil, nil)                                                               // restart
	p, diags := Diff(w.desired, stateWith(w.prior), Observations{"pool.dead/r0": {Status: state.StatusFailed}}, Options{})
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	if got, want := p.Summary(), (Summary{Add: 2, Change: 1, Destroy: 2, Restart: 1}); got != want {
		t.Fatalf("Summary = %+v, want %+v", got, want)
	}
	if p.Empty() {
		t.Error("Empty() with changes")
	}
}

func TestDiffAttributeDetails(t *testing.T) {
	w := &world{t: t, prior: map[string]*state.Pool{}}
	w.both("pool.chat",
		func(p *config.Pool) {
			p.Env = map[string]string{"KEEP": "1", "GONE": "x"}
			plantest.SetProviderBlock(t, p, `api_key = "old-secret-1"`, nil)
		},
		func(p *config.Pool) {
			p.Env = map[string]string{"KEEP": "1", "NEW": "y"}
			p.Replicas = 2
			plantest.SetProviderBlock(t, p, `api_key = "new-secret-2"`+"\nn_gpu_layers = 99", nil)
		})
	p, diags := Diff(w.desired, stateWith(w.prior), nil, Options{})
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	c := p.Changes[0]
	got := map[string]AttrDiff{}
	for _, a := range c.Attrs {
		got[a.Path] = a
	}
	check := func(path string, before, after any, sensitive, forces bool) {
		t.Helper()
		a, ok := got[path]
		if !ok {
			t.Errorf("no diff for %s in %v", path, c.Attrs)
			return
		}
		if !reflect.DeepEqual(a.Before, before) || !reflect.DeepEqual(a.After, after) || a.Sensitive != sensitive || a.Forces != forces {
			t.Errorf("%s = %#v", path, a)
		}
	}
	check("replicas", 1, 2, false, false)
	check("env.GONE", "x", nil, false, true)
	check("env.NEW", nil, "y", false, true)
	check("llamacpp.n_gpu_layers", nil, json.RawMessage("99"), false, false)
	if a := got["llamacpp.api_key"]; !a.Sensitive || !isRedactedValue(a.Before) || !isRedactedValue(a.After) {
		t.Errorf("api_key diff = %#v, want a sensitive change between hashes", a)
	}
	if _, ok := got["env.KEEP"]; ok {
		t.Error("an unchanged env key is listed as changed")
	}
	unchanged := map[string]bool{}
	for _, a := range c.Unchanged {
		unchanged[a.Path] = true
		if !reflect.DeepEqual(a.Before, a.After) {
			t.Errorf("unchanged %s differs: %#v", a.Path, a)
		}
	}
	for _, want := range []string{"engine", "model.ref", "host", "env.KEEP", "health.interval", "update.strategy"} {
		if !unchanged[want] {
			t.Errorf("Unchanged lacks %s: %v", want, unchanged)
		}
	}
	if unchanged["port"] || unchanged["llamacpp.build_ref"] {
		t.Errorf("absent attributes listed as unchanged: %v", unchanged)
	}
	if strings.Join(c.ForcedBy, ",") != "env.GONE,env.NEW" {
		t.Errorf("ForcedBy = %v", c.ForcedBy)
	}
}

func TestDiffIsDeterministicAndLeavesItsInputsAlone(t *testing.T) {
	w := &world{t: t, prior: map[string]*state.Pool{}}
	for _, a := range []string{"pool.c", "pool.a", "pool.b"} {
		w.both(a, nil, func(p *config.Pool) { p.Ctx = 1 })
	}
	w.configured("pool.d", nil, nil)
	prior := stateWith(w.prior)
	before, _ := json.Marshal(prior)
	obs := Observations{"pool.a/r0": {Status: state.StatusFailed}}
	opts := Options{Targets: []string{"pool.a", "pool.b", "pool.d"}, Refresh: true}
	first, _ := Diff(w.desired, prior, obs, opts)
	for range 10 {
		again, _ := Diff(w.desired, prior, obs, opts)
		if !reflect.DeepEqual(first.Changes, again.Changes) || !reflect.DeepEqual(first.Drift, again.Drift) {
			t.Fatal("Diff gave different results for the same inputs")
		}
	}
	after, _ := json.Marshal(prior)
	if string(before) != string(after) {
		t.Error("Diff modified the prior state")
	}
	if !reflect.DeepEqual(first.Options, opts) || !reflect.DeepEqual(first.Observations, obs) {
		t.Errorf("the plan does not keep its options and observations: %+v %+v", first.Options, first.Observations)
	}
	if first.Desired["pool.d"] == nil || first.Prior != prior {
		t.Error("the plan does not keep its desired pools and prior state")
	}
}

func TestDiffWithoutPriorStateCreatesEverything(t *testing.T) {
	w := &world{t: t}
	w.configured("pool.a", nil, nil)
	p, diags := Diff(w.desired, nil, nil, Options{})
	if diags.HasErrors() || len(p.Changes) != 1 || p.Changes[0].Action != Create {
		t.Fatalf("changes = %v, diags = %v", p.Changes, diags)
	}
}

func TestPlannedReturnsEveryConfiguredPool(t *testing.T) {
	w := &world{t: t, prior: map[string]*state.Pool{}}
	w.configured("pool.a", nil, withPlanned("v1", cty.GetAttrPath("x")))
	w.both("pool.b", nil, nil)
	p, _ := Diff(w.desired, stateWith(w.prior), nil, Options{})
	got := p.Planned()
	if len(got) != 2 || got["pool.a"].EngineVersion != "v1" {
		t.Fatalf("Planned() = %v", got)
	}
}
