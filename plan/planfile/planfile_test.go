package planfile_test

import (
	"context"
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/spf13/afero"
	"github.com/zclconf/go-cty/cty"

	"github.com/llorch/llorch/config"
	"github.com/llorch/llorch/plan"
	"github.com/llorch/llorch/plan/planfile"
	"github.com/llorch/llorch/plan/plantest"
	"github.com/llorch/llorch/providers"
	"github.com/llorch/llorch/providers/providertest"
	"github.com/llorch/llorch/state"
)

const (
	secret  = "sk-live-0123456789abcdef"
	lineage = "5b0d6c1e-8a8e-4d8e-9d4c-2f0a1b2c3d4e"
	other   = "00000000-1111-2222-3333-444444444444"
)

type refresher map[string]plan.Observed

func (r refresher) Refresh(_ context.Context, p *state.Pool, rep *state.Replica) (plan.Observed, error) {
	if o, ok := r[p.Spec.Model.Ref+"/"+rep.ID]; ok {
		return o, nil
	}
	return plan.Observed{Status: state.StatusReady, Alive: true}, nil
}

func planner() *plan.Planner {
	fake := &providertest.Provider{
		PlanPoolFunc: func(_ context.Context, req providers.PlanPoolRequest) (*providers.PlannedPool, providers.Diagnostics) {
			return &providers.PlannedPool{
				EngineVersion:   "fake-2",
				RequiresReplace: []cty.Path{cty.GetAttrPath("source").GetAttr("ref"), cty.GetAttrPath("extra_args").IndexInt(1)},
				Model:           &providers.ModelInfo{Architecture: "llama", Parameters: 4_200_000, ContextLength: 256},
			}, providers.Diagnostics{providers.Warnf("Big model", "It may not fit.")}
		},
	}
	return &plan.Planner{Providers: providertest.NewResolver(fake, "llamacpp"), LlorchVersion: "0.1.0",
		Refresher: refresher{"file:/models/chat.gguf/r1": {Status: state.StatusFailed, Reason: "circuit breaker open", CheckedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}}}
}

func chat(t *testing.T) *config.Pool {
	p := plantest.Pool("pool.chat")
	p.Replicas = 2
	plantest.SetProviderBlock(t, p, "api_key = var.key", map[string]cty.Value{"key": cty.StringVal(secret)}, "key")
	return p
}

// fixture plans a configuration with a recorded pool (one replica failed)
// and a new one, against a state with serial 3.
func fixture(t *testing.T) (*config.Config, *state.State, *plan.Plan, map[string]cty.Value) {
	t.Helper()
	cfg := plantest.Config("sha256:cfg", chat(t), plantest.Pool("pool.new"))
	desired, diags := planner().Desired(t.Context(), plantest.Config("old", chat(t)), nil)
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	st := state.New(lineage)
	st.Serial = 3
	d := desired[0]
	sp := &state.Pool{Engine: "llamacpp", SpecHash: d.SpecHash, Spec: d.Spec, Prepared: &state.Prepared{EngineVersion: "fake-2"}}
	for i := range 2 {
		sp.Replicas = append(sp.Replicas, &state.Replica{ID: plan.ReplicaID(i), Status: state.StatusReady})
	}
	st.Pools["pool.chat"] = sp
	st = st.DeepCopy()
	p, diags := planner().Plan(t.Context(), cfg, st, plan.Options{Refresh: true, Replace: []string{"pool.new"}})
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	vars := map[string]cty.Value{
		"key":    cty.StringVal(secret).Mark(config.SensitiveMark),
		"models": cty.StringVal("/srv/models"),
		"n":      cty.NumberIntVal(3),
		"tags":   cty.ListVal([]cty.Value{cty.StringVal("a"), cty.StringVal("b")}),
		"unset":  cty.NullVal(cty.String),
	}
	return cfg, st, p, vars
}

func TestWriteThenReadKeepsEverythingReplayNeeds(t *testing.T) {
	_, _, p, vars := fixture(t)
	fs := afero.NewMemMapFs()
	if err := planfile.Write(fs, "/work/tfplan", p, vars); err != nil {
		t.Fatal(err)
	}
	fi, err := fs.Stat("/work/tfplan")
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode = %v, want 0600", fi.Mode().Perm())
	}
	f, err := planfile.Read(fs, "/work/tfplan")
	if err != nil {
		t.Fatal(err)
	}
	if f.Lineage != lineage || f.Serial != 3 || f.ConfigHash != "sha256:cfg" || f.LlorchVersion != "0.1.0" || f.FormatVersion != planfile.FormatVersion {
		t.Errorf("header = %+v", f)
	}
	saved := f.Saved()
	if !reflect.DeepEqual(saved.Options, p.Options) {
		t.Errorf("options = %+v, want %+v", saved.Options, p.Options)
	}
	if !reflect.DeepEqual(saved.Observations, p.Observations) {
		t.Errorf("observations = %+v\nwant %+v", saved.Observations, p.Observations)
	}
	if !reflect.DeepEqual(saved.Warnings, p.Warnings) || len(saved.Warnings) != 2 {
		t.Errorf("warnings = %q", saved.Warnings)
	}
	want := p.Planned()
	if len(saved.Planned) != len(want) {
		t.Fatalf("planned = %v, want %v", saved.Planned, want)
	}
	for addr, pp := range want {
		got := saved.Planned[addr]
		if got.EngineVersion != pp.EngineVersion || !reflect.DeepEqual(got.Model, pp.Model) || len(got.RequiresReplace) != 2 {
			t.Errorf("%s planned = %+v, want %+v", addr, got, pp)
			continue
		}
		for i := range pp.RequiresReplace {
			if !got.RequiresReplace[i].Equals(pp.RequiresReplace[i]) {
				t.Errorf("%s requires_replace[%d] = %#v, want %#v", addr, i, got.RequiresReplace[i], pp.RequiresReplace[i])
			}
		}
	}
	if f.Changes == nil || len(f.Changes.ResourceChanges) == 0 {
		t.Error("JSON rendering missing")
	}
}

func TestSavedPlanReplaysExactly(t *testing.T) {
	cfg, st, p, vars := fixture(t)
	fs := afero.NewMemMapFs()
	if err := planfile.Write(fs, "plan.out", p, vars); err != nil {
		t.Fatal(err)
	}
	f, err := planfile.Read(fs, "plan.out")
	if err != nil {
		t.Fatal(err)
	}
	if err := f.CheckCurrent(st, cfg.Hash); err != nil {
		t.Fatal(err)
	}
	// A new planner: its provider would now plan something else, and the
	// refresher sees every replica healthy. The replay must not care.
	fake := &providertest.Provider{PlanPoolFunc: func(context.Context, providers.PlanPoolRequest) (*providers.PlannedPool, providers.Diagnostics) {
		return &providers.PlannedPool{EngineVersion: "fake-3"}, nil
	}}
	pl := &plan.Planner{Providers: providertest.NewResolver(fake, "llamacpp"), Refresher: refresher{}}
	replayed, diags := pl.Replay(t.Context(), cfg, st, f.Saved())
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	if len(fake.CallsTo("PlanPool")) != 0 {
		t.Error("replay asked the provider to plan again")
	}
	if err := f.CheckReplay(replayed); err != nil {
		t.Fatal(err)
	}
	if len(replayed.Changes) != len(p.Changes) {
		t.Fatalf("replayed %d changes, planned %d", len(replayed.Changes), len(p.Changes))
	}
	for i := range p.Changes {
		if replayed.Changes[i].Addr != p.Changes[i].Addr || replayed.Changes[i].Action != p.Changes[i].Action {
			t.Errorf("change %d: replayed %s %c, planned %s %c", i, replayed.Changes[i].Addr, replayed.Changes[i].Action, p.Changes[i].Addr, p.Changes[i].Action)
		}
	}
}

func TestCheckReplayRefusesAPlanThatChanged(t *testing.T) {
	_, _, p, vars := fixture(t)
	f, err := planfile.New(p, vars)
	if err != nil {
		t.Fatal(err)
	}
	p.Changes = p.Changes[1:]
	err = f.CheckReplay(p)
	if err == nil || err.Error() != "the saved plan no longer replays to the same changes (saved 2, now 1); run llorch plan again" {
		t.Fatalf("err = %v", err)
	}
}

func TestCheckCurrent(t *testing.T) {
	_, st, p, _ := fixture(t)
	f, err := planfile.New(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		mut      func(st *state.State) string // returns the config hash
		wantKind planfile.StaleKind
		wantErr  string
	}{
		{"current", func(*state.State) string { return "sha256:cfg" }, 0, ""},
		{
			"another lineage",
			func(st *state.State) string { st.Lineage = other; return "sha256:cfg" },
			planfile.StaleLineage,
			"Saved plan is for a different state: The plan was made against lineage " + lineage + ", but the current state has lineage " + other + ". Run llorch plan again.",
		},
		{
			"state written since",
			func(st *state.State) string { st.Serial = 5; return "sha256:cfg" },
			planfile.StaleSerial,
			"Saved plan is stale: The state changed (serial 3 → 5) after the plan was made. Run llorch plan again.",
		},
		{
			"configuration changed",
			func(*state.State) string { return "sha256:other" },
			planfile.StaleConfig,
			"Saved plan is stale: The configuration changed after the plan was made (files or variable values differ). Run llorch plan again.",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := st.DeepCopy()
			hash := tc.mut(s)
			err := f.CheckCurrent(s, hash)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var se *planfile.StaleError
			if !errors.As(err, &se) || se.Kind != tc.wantKind || err.Error() != tc.wantErr {
				t.Fatalf("err = %v\nwant  %s", err, tc.wantErr)
			}
		})
	}
}

func TestReadRefusesWhatIsNotACurrentPlan(t *testing.T) {
	tests := []struct {
		name, content, wantErr string
	}{
		{"not JSON", "PK\x03\x04 zip", "plan.out is not a llorch plan file (it is not JSON); save a plan with llorch plan -out=FILE"},
		{"a state file", `{"format_version":1,"lineage":"x","serial":1,"pools":{}}`, `plan.out is not a llorch plan file (it has no "kind": "llorch-plan"); save a plan with llorch plan -out=FILE`},
		{"bad version", `{"kind":"llorch-plan","format_version":"one"}`, `plan.out is not a llorch plan file (format_version "one" is not a positive whole number); save a plan with llorch plan -out=FILE`},
		{"newer format", `{"kind":"llorch-plan","format_version":9,"llorch_version":"3.0.0"}`, "plan.out was written by llorch 3.0.0 in plan format 9, but this llorch reads format 1 at most; apply it with that llorch or a newer one, or run llorch plan again"},
		{"damaged", `{"kind":"llorch-plan","format_version":1,"serial":"x"}`, "plan.out is a damaged plan file: json: cannot unmarshal string into Go struct field File.serial of type uint64; run llorch plan again"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fs := afero.NewMemMapFs()
			afero.WriteFile(fs, "plan.out", []byte(tc.content), 0o600)
			_, err := planfile.Read(fs, "plan.out")
			if err == nil || err.Error() != tc.wantErr {
				t.Fatalf("err = %v\nwant  %s", err, tc.wantErr)
			}
		})
	}
	_, err := planfile.Read(afero.NewMemMapFs(), "missing.out")
	if !errors.Is(err, os.ErrNotExist) || !strings.HasPrefix(err.Error(), "reading saved plan: open missing.out") {
		t.Fatalf("missing file: %v", err)
	}
}

func TestWriteFailureSaysWhere(t *testing.T) {
	_, _, p, _ := fixture(t)
	err := planfile.Write(afero.NewReadOnlyFs(afero.NewMemMapFs()), "/x/plan.out", p, nil)
	if err == nil || !strings.HasPrefix(err.Error(), "saving plan: cannot create temporary file to update /x/plan.out") {
		t.Fatalf("err = %v", err)
	}
}

func TestVariablesComeBackAsGiven(t *testing.T) {
	_, _, p, vars := fixture(t)
	fs := afero.NewMemMapFs()
	if err := planfile.Write(fs, "plan.out", p, vars); err != nil {
		t.Fatal(err)
	}
	f, _ := planfile.Read(fs, "plan.out")
	got, err := f.VariableValues()
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range vars {
		g := got[name]
		if g.HasMark(config.SensitiveMark) != want.HasMark(config.SensitiveMark) {
			t.Errorf("%s: sensitive mark not kept", name)
		}
		gu, _ := g.Unmark()
		wu, _ := want.Unmark()
		if !gu.RawEquals(wu) {
			t.Errorf("%s = %#v, want %#v", name, gu, wu)
		}
	}
	args, err := f.VarArgs()
	if err != nil {
		t.Fatal(err)
	}
	var flat []string
	for _, a := range args {
		flat = append(flat, a.Name+"="+a.Value)
	}
	want := []string{"key=" + secret, "models=/srv/models", "n=3", `tags=["a", "b"]`}
	if !reflect.DeepEqual(flat, want) {
		t.Errorf("VarArgs = %q, want %q", flat, want)
	}
}

func TestSavedPlanHoldsSecretsOnlyInItsVariables(t *testing.T) {
	_, _, p, vars := fixture(t)
	f, err := planfile.New(p, vars)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := f.Encode()
	if !strings.Contains(string(b), secret) {
		t.Fatal("the sensitive variable is not saved, so the plan could not be replayed")
	}
	f.Variables = nil
	b, _ = f.Encode()
	if strings.Contains(string(b), secret) {
		t.Fatalf("the secret appears outside the variables:\n%s", b)
	}
}
