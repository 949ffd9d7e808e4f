package render_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zclconf/go-cty/cty"

	"github.com/llorch/llorch/config"
	"github.com/llorch/llorch/plan"
	"github.com/llorch/llorch/plan/plantest"
	"github.com/llorch/llorch/plan/render"
	"github.com/llorch/llorch/providers"
	"github.com/llorch/llorch/providers/providertest"
	"github.com/llorch/llorch/state"
)

var update = flag.Bool("update", false, "update .golden files")

const secret = "sk-live-0123456789abcdef"

const lineage = "5b0d6c1e-8a8e-4d8e-9d4c-2f0a1b2c3d4e"

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./plan/render -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (run go test ./plan/render -update if the change is intended)\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

// refresher answers from a table keyed by "<model ref>/<replica>"; a
// replica not in it is running as recorded.
type refresher map[string]plan.Observed

func (r refresher) Refresh(_ context.Context, p *state.Pool, rep *state.Replica) (plan.Observed, error) {
	if o, ok := r[p.Spec.Model.Ref+"/"+rep.ID]; ok {
		return o, nil
	}
	return plan.Observed{Status: state.StatusReady, Alive: true, PID: rep.PID}, nil
}

func modelInfo() *providers.ModelInfo {
	return &providers.ModelInfo{Path: "/srv/models/qwen.gguf", SizeBytes: 9_437_184, Architecture: "llama",
		Parameters: 4_200_000, Quantization: "Q8_0", ContextLength: 256}
}

func newPlanner() *plan.Planner {
	fake := &providertest.Provider{
		PlanPoolFunc: func(_ context.Context, req providers.PlanPoolRequest) (*providers.PlannedPool, providers.Diagnostics) {
			pp := &providers.PlannedPool{EngineVersion: providertest.EngineVersion}
			if req.Pool.Addr == "pool.chat" {
				pp.Model = modelInfo()
			}
			if req.Pool.Addr == "pool.upgrade" && req.Prior != nil {
				// A moved source ref: the version is known only after the build.
				pp.EngineVersion = ""
				pp.RequiresReplace = []cty.Path{cty.GetAttrPath("engine_version")}
			}
			var diags providers.Diagnostics
			if req.Pool.Ctx > 256 {
				diags = append(diags, providers.Diagnostic{Severity: providers.Warning, Summary: "Context above trained length",
					Detail: fmt.Sprintf("ctx %d is above the model's trained context of 256; answers may degrade.", req.Pool.Ctx), Attribute: cty.GetAttrPath("ctx")})
			}
			return pp, diags
		},
	}
	return &plan.Planner{Providers: providertest.NewResolver(fake, "llamacpp"), LlorchVersion: "0.1.0"}
}

// applyAll records pools in a state as a successful apply would.
func applyAll(t *testing.T, pools ...*config.Pool) *state.State {
	t.Helper()
	desired, diags := newPlanner().Desired(t.Context(), plantest.Config("old", pools...), nil)
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	st := state.New(lineage)
	st.Serial = 3
	for _, d := range desired {
		sp := &state.Pool{Engine: d.Spec.Engine, SpecHash: d.SpecHash, Spec: d.Spec,
			Prepared: &state.Prepared{EngineVersion: providertest.EngineVersion}}
		for i := range d.Spec.Replicas {
			sp.Replicas = append(sp.Replicas, &state.Replica{ID: plan.ReplicaID(i), PID: 4242 + i, Status: state.StatusReady})
		}
		st.Pools[d.Addr] = sp
	}
	return st.DeepCopy()
}

func chatPool(t *testing.T) *config.Pool {
	p := plantest.Pool("pool.chat")
	p.Replicas = 2
	p.Port = 8080
	p.Model.Ref = "file:/srv/models/qwen.gguf"
	plantest.SetProviderBlock(t, p, "api_key = var.api_key\nn_gpu_layers = 99", map[string]cty.Value{"api_key": cty.StringVal(secret)}, "api_key")
	return p
}

func embedPool(key, ref string) *config.Pool {
	p := plantest.Pool(`pool.embed["` + key + `"]`)
	p.Model.Ref = ref
	return p
}

// scenarios are the plans every renderer is golden-tested on.
func scenarios(t *testing.T) map[string]*plan.Plan {
	t.Helper()
	out := map[string]*plan.Plan{}
	mk := func(name string, cfg *config.Config, st *state.State, rf refresher, opts plan.Options) {
		pl := newPlanner()
		if rf != nil {
			pl.Refresher = rf
		}
		p, diags := pl.Plan(t.Context(), cfg, st, opts)
		if diags.HasErrors() {
			t.Fatalf("%s: %s", name, diags.Error())
		}
		out[name] = p
	}

	tuned := plantest.Pool(`pool.tuned["cpu"]`)
	tuned.Devices = []int{}
	tuned.Ctx = 2048
	tuned.Flags = []string{"--parallel", "4"}
	tuned.Env = map[string]string{"LLAMA_ARG_THREADS": "8"}
	tuned.Labels = map[string]string{"team": "search"}
	tuned.Restart.Policy = config.RestartNever
	tuned.Update.Strategy = config.DrainFirst
	mk("create", plantest.Config("h", chatPool(t), tuned), state.New(lineage), nil, plan.Options{Refresh: true})

	// Everything at once: drift, create, replace, update with more replicas,
	// delete, restart, a warning.
	oldEmbed := embedPool("bge", "file:/m/bge-v1.gguf")
	oldSearch := plantest.Pool("pool.search")
	oldSearch.Labels = map[string]string{"team": "search", "tier": "gold"}
	oldSearch.Env = map[string]string{"LLAMA_ARG_THREADS": "8"}
	oldDrain := plantest.Pool("pool.batch")
	oldDrain.Update.Strategy = config.DrainFirst
	oldDrain.Flags = []string{"--parallel", "4"}
	st := applyAll(t, chatPool(t), oldEmbed, oldSearch, oldDrain, plantest.Pool("pool.legacy"))

	search := plantest.Pool("pool.search")
	search.Replicas = 3
	search.Labels = map[string]string{"team": "search", "tier": "silver", "owner": "ml"}
	search.Env = map[string]string{"LLAMA_ARG_THREADS": "8"}
	search.Health.Interval *= 5
	batch := plantest.Pool("pool.batch")
	batch.Update.Strategy = config.DrainFirst
	batch.Flags = []string{"--parallel", "8"}
	batch.Ctx = 4096
	mixed := plantest.Config("h", chatPool(t), embedPool("bge", "file:/m/bge-v2.gguf"), search, batch, plantest.Pool("pool.fresh"))
	rf := refresher{"file:/srv/models/qwen.gguf/r1": {Status: state.StatusFailed, Reason: "engine exited with status 134; circuit breaker open"}}
	mk("mixed", mixed, st, rf, plan.Options{Refresh: true})

	// A replace showing "(known after apply)", a removed env key, a changed
	// secret, and labels added and removed.
	oldUp := plantest.Pool("pool.upgrade")
	oldUp.Env = map[string]string{"A": "1", "B": "2"}
	oldUp.Labels = map[string]string{"gone": "x"}
	plantest.SetProviderBlock(t, oldUp, `api_key = "old-key-value"`+"\nsource {\n ref = \"b1\"\n}", nil)
	up := plantest.Pool("pool.upgrade")
	up.Env = map[string]string{"A": "1"}
	up.Labels = map[string]string{"new": "y", "with space": "z"}
	plantest.SetProviderBlock(t, up, "api_key = var.k\nsource {\n ref = \"b2\"\n}", map[string]cty.Value{"k": cty.StringVal(secret)}, "k")
	mk("replace_details", plantest.Config("h", up), applyAll(t, oldUp), nil, plan.Options{})

	mk("replace_requested", plantest.Config("h", chatPool(t)), applyAll(t, chatPool(t)), nil,
		plan.Options{Replace: []string{"pool.chat/r1"}})

	// r1 serves off its fixed port (its move back after a replacement
	// failed): it is moved onto 8081.
	moved := applyAll(t, chatPool(t))
	moved.Pools["pool.chat"].Replicas[0].Port = 8080
	moved.Pools["pool.chat"].Replicas[1].Port = 41234
	mk("port_moved", plantest.Config("h", chatPool(t)), moved, nil, plan.Options{})

	mk("no_changes", plantest.Config("h", chatPool(t)), applyAll(t, chatPool(t)), nil, plan.Options{Refresh: true})

	mk("destroy", plantest.Config("h", chatPool(t)), applyAll(t, chatPool(t), plantest.Pool("pool.legacy")), nil, plan.Options{Destroy: true})
	return out
}

func TestHumanGolden(t *testing.T) {
	for name, p := range scenarios(t) {
		t.Run(name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := render.Human(&buf, p, render.Options{}); err != nil {
				t.Fatal(err)
			}
			golden(t, name+".golden", buf.Bytes())
			if strings.Contains(buf.String(), "\x1b[") {
				t.Error("escape codes in output without color")
			}
		})
	}
}

func TestHumanColorGolden(t *testing.T) {
	var buf bytes.Buffer
	if err := render.Human(&buf, scenarios(t)["mixed"], render.Options{Color: true}); err != nil {
		t.Fatal(err)
	}
	golden(t, "mixed.color.golden", buf.Bytes())
}

func TestJSONGolden(t *testing.T) {
	for name, p := range scenarios(t) {
		t.Run(name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := render.JSON(&buf, p); err != nil {
				t.Fatal(err)
			}
			if !json.Valid(buf.Bytes()) || bytes.Count(buf.Bytes(), []byte("\n")) != 1 {
				t.Fatalf("not one JSON document on one line: %s", buf.Bytes())
			}
			var pretty bytes.Buffer
			json.Indent(&pretty, buf.Bytes(), "", "  ")
			pretty.WriteByte('\n')
			golden(t, name+".json.golden", pretty.Bytes())
		})
	}
}

func TestNoOutputHoldsTheSecret(t *testing.T) {
	for name, p := range scenarios(t) {
		var human, color, js bytes.Buffer
		render.Human(&human, p, render.Options{})
		render.Human(&color, p, render.Options{Color: true})
		render.JSON(&js, p)
		for kind, out := range map[string]string{"human": human.String(), "color": color.String(), "json": js.String()} {
			if strings.Contains(out, secret) {
				t.Errorf("%s %s output holds the secret", name, kind)
			}
		}
	}
	var human bytes.Buffer
	render.Human(&human, scenarios(t)["create"], render.Options{})
	if !strings.Contains(human.String(), "api_key      = (sensitive value)") {
		t.Errorf("the sensitive attribute is not shown as (sensitive value):\n%s", human.String())
	}
}

func TestJSONShapes(t *testing.T) {
	doc := render.NewDocument(scenarios(t)["mixed"])
	byAddr := map[string]render.ResourceChange{}
	for _, rc := range doc.ResourceChanges {
		byAddr[rc.Address] = rc
	}
	tests := []struct {
		addr, actions, reason string
		index                 any
		replica               string
	}{
		{`pool.embed["bge"]`, "create,delete", "replace_because_cannot_update", "bge", ""},
		{"pool.batch", "delete,create", "replace_because_cannot_update", nil, ""},
		{"pool.search", "update", "", nil, ""},
		{"pool.fresh", "create", "", nil, ""},
		{"pool.legacy", "delete", "delete_because_no_config", nil, ""},
		{"pool.chat", "no-op", "", nil, ""},
		{"pool.chat/r1", "restart", "restart_because_failed", nil, "r1"},
	}
	for _, tc := range tests {
		rc, ok := byAddr[tc.addr]
		if !ok {
			t.Errorf("%s missing from resource_changes", tc.addr)
			continue
		}
		if got := strings.Join(rc.Change.Actions, ","); got != tc.actions || rc.ActionReason != tc.reason ||
			rc.Index != tc.index || rc.Replica != tc.replica || rc.Mode != "managed" || rc.Type != "pool" {
			t.Errorf("%s = actions %s reason %q index %v replica %q", tc.addr, got, rc.ActionReason, rc.Index, rc.Replica)
		}
	}
	if got := byAddr[`pool.embed["bge"]`].Change.ReplacePaths; len(got) != 1 || strings.Join(got[0], ".") != "model.ref" {
		t.Errorf("replace_paths = %v", got)
	}
	sens, _ := json.Marshal(byAddr["pool.chat"].Change.AfterSensitive)
	if string(sens) != `{"provider":{"api_key":true}}` {
		t.Errorf("after_sensitive = %s", sens)
	}
	if byAddr["pool.fresh"].Change.Before != nil || byAddr["pool.legacy"].Change.After != nil {
		t.Error("create has a before or delete an after")
	}
	if doc.Summary != (render.Summary{Add: 3, Change: 1, Destroy: 3, Restart: 1}) {
		t.Errorf("summary = %+v", doc.Summary)
	}
	if len(doc.ResourceDrift) != 1 || doc.ResourceDrift[0].Address != "pool.chat/r1" || doc.ResourceDrift[0].Status != "failed" {
		t.Errorf("drift = %+v", doc.ResourceDrift)
	}
}
