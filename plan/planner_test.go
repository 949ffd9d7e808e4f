package plan

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"

	"github.com/llorch/llorch/config"
	"github.com/llorch/llorch/plan/plantest"
	"github.com/llorch/llorch/providers"
	"github.com/llorch/llorch/providers/providertest"
	"github.com/llorch/llorch/state"
)

// poolSrc is a pool as written in a file; poolFromHCL gives its
// config.Pool with real source ranges. Line numbers matter to the tests.
const poolSrc = `pool "chat" {
  engine = "llamacpp"
  flags  = ["--parallel", "4"]
  model {
    ref = "file:/models/chat.gguf"
  }
  llamacpp {
    n_gpu_layers = 99
    extra_args   = ["--a", "--b"]
    api_key      = var.key
    source {
      ref = "b1"
    }
  }
}
`

func poolFromHCL(t *testing.T, src string, vars map[string]cty.Value, sensitive ...string) *config.Pool {
	t.Helper()
	f, diags := hclsyntax.ParseConfig([]byte(src), "main.llorch.hcl", hcl.InitialPos)
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	blk := f.Body.(*hclsyntax.Body).Blocks[0]
	p := plantest.Pool("pool." + blk.Labels[0])
	p.DeclRange = blk.DefRange()
	p.EvalCtx = plantest.EvalContext(vars, sensitive...)
	for name, a := range blk.Body.Attributes {
		p.AttrRanges[name] = a.Expr.Range()
	}
	for _, b := range blk.Body.Blocks {
		switch b.Type {
		case "model":
			p.AttrRanges["model"] = b.DefRange()
			for name, a := range b.Body.Attributes {
				p.AttrRanges["model."+name] = a.Expr.Range()
			}
		case p.Engine:
			p.ProviderBody = b.Body
			p.AttrRanges[p.Engine] = b.DefRange()
		}
	}
	p.Flags = []string{"--parallel", "4"}
	return p
}

func where(r *hcl.Range) string {
	if r == nil {
		return "(no range)"
	}
	return fmt.Sprintf("%s:%d:%d", r.Filename, r.Start.Line, r.Start.Column)
}

func newPlanner(fake *providertest.Provider) *Planner {
	return &Planner{Providers: providertest.NewResolver(fake, "llamacpp"), LlorchVersion: "0.1.0-test"}
}

func TestPlannerPlansNewPools(t *testing.T) {
	fake := &providertest.Provider{}
	pl := newPlanner(fake)
	cfg := plantest.Config("sha256:cfg", plantest.Pool("pool.a"), plantest.Pool("pool.b"))
	p, diags := pl.Plan(t.Context(), cfg, state.New("lin"), Options{Refresh: true})
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	if len(p.Changes) != 2 || p.Changes[0].Action != Create || p.Changes[1].Addr != "pool.b" {
		t.Fatalf("changes = %v", p.Changes)
	}
	if p.ConfigHash != "sha256:cfg" || p.LlorchVersion != "0.1.0-test" || p.Lineage != "lin" {
		t.Errorf("plan header = %q %q %q", p.ConfigHash, p.LlorchVersion, p.Lineage)
	}
	if n := len(fake.CallsTo("Configure")); n != 1 {
		t.Errorf("Configure called %d times, want once for both pools", n)
	}
	if n := len(fake.CallsTo("PlanPool")); n != 2 {
		t.Errorf("PlanPool called %d times, want 2", n)
	}
	cc := fake.CallsTo("Configure")[0]
	if !cc.Config.IsNull() || !cc.Config.Type().Equals(providertest.Schema().Provider.ImpliedType()) {
		t.Errorf("Configure without a provider block got %#v, want a null of the block type", cc.Config)
	}
}

func TestPlannerConfiguresProviderWithItsBlock(t *testing.T) {
	fake := &providertest.Provider{}
	cfg := plantest.Config("h", plantest.Pool("pool.a"))
	plantest.SetProvider(t, cfg, "llamacpp", `binary = var.bin`, map[string]cty.Value{"bin": cty.StringVal("/opt/llama-server")})
	_, diags := newPlanner(fake).Plan(t.Context(), cfg, nil, Options{})
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	got := fake.CallsTo("Configure")[0].Config
	if got.GetAttr("binary").AsString() != "/opt/llama-server" || !got.GetAttr("cache_dir").IsNull() {
		t.Errorf("Configure got %#v", got)
	}
}

func TestPlannerTellsProvidersTheConfigurationAndCacheDirectories(t *testing.T) {
	var got providers.ConfigureRequest
	fake := &providertest.Provider{ConfigureFunc: func(_ context.Context, req providers.ConfigureRequest) providers.Diagnostics {
		got = req
		return nil
	}}
	cfg := plantest.Config("h", plantest.Pool("pool.a"))
	cfg.Dir = "conf" // relative, as config.Load keeps it
	pl := newPlanner(fake)
	pl.CacheDir = "/home/me/.cache/llorch"
	if _, diags := pl.Plan(t.Context(), cfg, nil, Options{}); diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	wd, _ := os.Getwd()
	if got.ConfigDir != filepath.Join(wd, "conf") || got.CacheDir != "/home/me/.cache/llorch" || got.LlorchVersion != "0.1.0-test" {
		t.Errorf("Configure got ConfigDir %q, CacheDir %q, LlorchVersion %q", got.ConfigDir, got.CacheDir, got.LlorchVersion)
	}
}

func TestPlannerPassesPoolSpecAndPriorToProvider(t *testing.T) {
	fake := &providertest.Provider{}
	p := poolFromHCL(t, poolSrc, map[string]cty.Value{"key": cty.StringVal(secret)}, "key")
	p.Devices = []int{}
	p.Env = map[string]string{"A": "1"}
	st := state.New("lin")
	st.Pools["pool.chat"] = &state.Pool{Engine: "llamacpp", Spec: &state.Spec{}, Prepared: &state.Prepared{EngineVersion: "old", BinaryPath: "/bin/x"}}
	_, diags := newPlanner(fake).Plan(t.Context(), plantest.Config("h", p), st, Options{})
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	call := fake.CallsTo("PlanPool")[0]
	if call.Pool.Addr != "pool.chat" || call.Pool.ID != "chat" || !call.Pool.CPUOnly() || call.Pool.Env["A"] != "1" ||
		!slices.Equal(call.Pool.Flags, []string{"--parallel", "4"}) || call.Pool.Replicas != 1 {
		t.Errorf("PoolSpec = %+v", call.Pool)
	}
	if call.Prior == nil || call.Prior.EngineVersion != "old" || call.Prior.BinaryPath != "/bin/x" || call.Prior.PoolID != "chat" {
		t.Errorf("Prior = %+v", call.Prior)
	}
	if got := call.Config.GetAttr("api_key"); got.IsMarked() || got.AsString() != secret {
		t.Errorf("the provider must get the real, unmarked secret; got %#v", got)
	}
	if got := call.Config.GetAttr("n_gpu_layers"); !got.RawEquals(cty.NumberIntVal(99)) {
		t.Errorf("n_gpu_layers = %#v", got)
	}
}

func TestProviderDiagnosticsPointAtTheSource(t *testing.T) {
	tests := []struct {
		name      string
		path      cty.Path
		severity  providers.Severity
		wantRange string
	}{
		{"attribute of the provider block", cty.GetAttrPath("n_gpu_layers"), providers.Error, "main.llorch.hcl:8:20"},
		{"list element in the provider block", cty.GetAttrPath("extra_args").IndexInt(1), providers.Error, "main.llorch.hcl:9:28"},
		{"attribute of a nested block", cty.GetAttrPath("source").GetAttr("ref"), providers.Error, "main.llorch.hcl:12:13"},
		{"nested block itself", cty.GetAttrPath("source"), providers.Error, "main.llorch.hcl:11:5"},
		{"provider attribute not written", cty.GetAttrPath("build_ref"), providers.Error, "main.llorch.hcl:7:3"},
		{"pool attribute model.ref", cty.GetAttrPath("model").GetAttr("ref"), providers.Error, "main.llorch.hcl:5:11"},
		{"pool attribute flags element", cty.GetAttrPath("flags").IndexInt(0), providers.Error, "main.llorch.hcl:3:12"},
		{"pool attribute not written", cty.GetAttrPath("ctx"), providers.Error, "main.llorch.hcl:1:1"},
		{"whole pool", nil, providers.Error, "main.llorch.hcl:1:1"},
		{"warning stays a warning", cty.GetAttrPath("n_gpu_layers"), providers.Warning, "main.llorch.hcl:8:20"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fake := &providertest.Provider{
				PlanPoolFunc: func(context.Context, providers.PlanPoolRequest) (*providers.PlannedPool, providers.Diagnostics) {
					return &providers.PlannedPool{}, providers.Diagnostics{{Severity: tc.severity, Summary: "Model does not fit", Detail: "It needs 9 GiB.", Attribute: tc.path}}
				},
			}
			p := poolFromHCL(t, poolSrc, map[string]cty.Value{"key": cty.StringVal("k")})
			plan, diags := newPlanner(fake).Plan(t.Context(), plantest.Config("h", p), nil, Options{})
			if len(diags) != 1 {
				t.Fatalf("want 1 diagnostic, got %v", diags)
			}
			d := diags[0]
			if got := where(d.Subject); got != tc.wantRange {
				t.Errorf("subject = %s, want %s", got, tc.wantRange)
			}
			if d.Summary != "Model does not fit" || d.Detail != "It needs 9 GiB." {
				t.Errorf("text = %q / %q", d.Summary, d.Detail)
			}
			if tc.severity == providers.Warning {
				if d.Severity != hcl.DiagWarning || plan == nil {
					t.Fatalf("a warning must not stop the plan: %v", diags)
				}
				want := "Model does not fit\n\n  on main.llorch.hcl line 8, in pool.chat\n\nIt needs 9 GiB."
				if !slices.Equal(plan.Warnings, []string{want}) {
					t.Errorf("Warnings = %q, want %q", plan.Warnings, want)
				}
			} else if d.Severity != hcl.DiagError || plan != nil {
				t.Errorf("an error must stop the plan")
			}
		})
	}
}

func TestPlannerReportsProvidersThatFailToStart(t *testing.T) {
	r := &providertest.Resolver{Errors: map[string]error{"llamacpp": errors.New("plugin llorch-provider-llamacpp not found in .llorch/plugins")}}
	p1 := poolFromHCL(t, poolSrc, map[string]cty.Value{"key": cty.StringVal("k")})
	p2 := plantest.Pool("pool.other")
	p2.AttrRanges["engine"] = hcl.Range{Filename: "other.llorch.hcl", Start: hcl.Pos{Line: 3, Column: 12}}
	pl := &Planner{Providers: r}
	_, diags := pl.Plan(t.Context(), plantest.Config("h", p1, p2), nil, Options{})
	if len(diags) != 2 {
		t.Fatalf("want one diagnostic per pool, got %v", diags)
	}
	wantDetail := `pool.chat uses engine "llamacpp", but its provider could not be started: plugin llorch-provider-llamacpp not found in .llorch/plugins. Run "llorch providers" to list the providers llorch can find.`
	if diags[0].Summary != "Failed to load provider" || diags[0].Detail != wantDetail {
		t.Errorf("diagnostic = %q / %q", diags[0].Summary, diags[0].Detail)
	}
	if got := where(diags[0].Subject); got != "main.llorch.hcl:2:12" {
		t.Errorf("subject = %s, want the engine attribute", got)
	}
	if got := where(diags[1].Subject); got != "other.llorch.hcl:3:12" {
		t.Errorf("subject = %s", got)
	}
	if r.Resolved("llamacpp") != 1 {
		t.Errorf("resolver asked %d times, want once", r.Resolved("llamacpp"))
	}
}

func TestPlannerStopsAtValidationErrors(t *testing.T) {
	fake := &providertest.Provider{
		ValidatePoolFunc: func(_ context.Context, req providers.ValidatePoolRequest) providers.Diagnostics {
			if req.Pool.Addr == "pool.bad" {
				return providers.Diagnostics{providers.AttributeErrorf(cty.GetAttrPath("model").GetAttr("ref"), "Unsupported model reference", "%q is not a file: or hf: reference.", req.Pool.Model.Ref)}
			}
			return nil
		},
	}
	bad := plantest.Pool("pool.bad")
	bad.Model.Ref = "ftp://x"
	p, diags := newPlanner(fake).Plan(t.Context(), plantest.Config("h", bad, plantest.Pool("pool.good")), nil, Options{})
	if p != nil || !diags.HasErrors() {
		t.Fatal("want errors and no plan")
	}
	if diags[0].Detail != `"ftp://x" is not a file: or hf: reference.` {
		t.Errorf("detail = %q", diags[0].Detail)
	}
	for _, c := range fake.CallsTo("PlanPool") {
		if c.Pool.Addr == "pool.bad" {
			t.Error("PlanPool called for a pool that failed validation")
		}
	}
}

func TestPlannerReportsDecodeErrorsInProviderBlocks(t *testing.T) {
	tests := []struct {
		name, block, wantSummary, wantRange string
		sensitive                           bool
	}{
		{"wrong type", `n_gpu_layers = "many"`, "Incorrect attribute value type", "main.llorch.hcl:2:16", false},
		{"unknown attribute", `n_gpu_layer = 9`, "Unsupported argument", "main.llorch.hcl:2:1", false},
		{"wrong type from a sensitive variable", `n_gpu_layers = var.k`, "Incorrect attribute value type", "main.llorch.hcl:2:16", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := plantest.Pool("pool.a")
			if tc.sensitive {
				plantest.SetProviderBlock(t, p, tc.block, map[string]cty.Value{"k": cty.StringVal(secret)}, "k")
			} else {
				plantest.SetProviderBlock(t, p, tc.block, nil)
			}
			_, diags := newPlanner(&providertest.Provider{}).Plan(t.Context(), plantest.Config("h", p), nil, Options{})
			if len(diags) != 1 || diags[0].Summary != tc.wantSummary || where(diags[0].Subject) != tc.wantRange {
				t.Fatalf("diags = %v (at %s)", diags, where(diags[0].Subject))
			}
			if tc.sensitive && (diags[0].EvalContext != nil || diags[0].Expression != nil) {
				t.Error("a diagnostic about a sensitive value keeps the context a renderer would print it from")
			}
			if !tc.sensitive && diags[0].EvalContext == nil && tc.wantSummary == "Incorrect attribute value type" {
				t.Error("the evaluation context was dropped although nothing is sensitive")
			}
		})
	}
}

func TestPlannerRequiredProviderAttributeMissingPointsAtThePool(t *testing.T) {
	schema := providertest.Schema()
	schema.Pool.Attributes["model_family"] = &providers.Attribute{Type: cty.String, Required: true}
	fake := &providertest.Provider{SchemaValue: schema}
	p := plantest.Pool("pool.a")
	p.DeclRange = hcl.Range{Filename: "main.llorch.hcl", Start: hcl.Pos{Line: 4, Column: 1}}
	_, diags := newPlanner(fake).Plan(t.Context(), plantest.Config("h", p), nil, Options{})
	if len(diags) != 1 || diags[0].Summary != "Missing required argument" || where(diags[0].Subject) != "main.llorch.hcl:4:1" {
		t.Fatalf("diags = %v", diags)
	}
}

func TestProviderMessagesNeverEchoSecrets(t *testing.T) {
	fake := &providertest.Provider{
		ValidatePoolFunc: func(_ context.Context, req providers.ValidatePoolRequest) providers.Diagnostics {
			k := req.Config.GetAttr("api_key").AsString()
			return providers.Diagnostics{providers.Warnf("Weak key "+k, "The key %s is short; HF_TOKEN=%s.", k, req.Pool.Env["HF_TOKEN"])}
		},
	}
	p := poolFromHCL(t, poolSrc, map[string]cty.Value{"key": cty.StringVal(secret)}, "key")
	p.Env = map[string]string{"HF_TOKEN": "hf_abcdefgh"}
	p.SensitivePaths = []string{"env.HF_TOKEN"}
	plan, diags := newPlanner(fake).Plan(t.Context(), plantest.Config("h", p), nil, Options{})
	if plan == nil {
		t.Fatal(diags.Error())
	}
	text := diags[0].Summary + diags[0].Detail + strings.Join(plan.Warnings, "")
	if strings.Contains(text, secret) || strings.Contains(text, "hf_abcdefgh") {
		t.Fatalf("secret in diagnostics: %s", text)
	}
	if diags[0].Detail != "The key (sensitive value) is short; HF_TOKEN=(sensitive value)." {
		t.Errorf("detail = %q", diags[0].Detail)
	}
}

func TestPlannerReportsConfigureAndSchemaErrorsOnce(t *testing.T) {
	tests := []struct {
		name        string
		fake        *providertest.Provider
		wantSummary string
		wantRange   string
	}{
		{
			name: "configure error on a provider block attribute",
			fake: &providertest.Provider{ConfigureFunc: func(context.Context, providers.ConfigureRequest) providers.Diagnostics {
				return providers.Diagnostics{providers.AttributeErrorf(cty.GetAttrPath("binary"), "Binary not found", "llama-server is not on PATH.")}
			}},
			wantSummary: "Binary not found",
			wantRange:   "providers.llorch.hcl:2:10",
		},
		{
			name:        "schema error",
			fake:        &providertest.Provider{SchemaDiags: providers.Diagnostics{providers.Errorf("Plugin did not respond", "The plugin exited.")}},
			wantSummary: "Plugin did not respond",
			wantRange:   "providers.llorch.hcl:1:1",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := plantest.Config("h", plantest.Pool("pool.a"), plantest.Pool("pool.b"))
			plantest.SetProvider(t, cfg, "llamacpp", `binary = "llama-server"`, nil)
			_, diags := newPlanner(tc.fake).Plan(t.Context(), cfg, nil, Options{})
			if len(diags) != 1 || diags[0].Summary != tc.wantSummary || where(diags[0].Subject) != tc.wantRange {
				t.Fatalf("diags = %v at %s", diags, where(diags[0].Subject))
			}
		})
	}
}

// fakeRefresher answers from a table, and records which replicas it was
// asked about.
type fakeRefresher struct {
	obs  map[string]Observed
	errs map[string]error
	mu   sync.Mutex
	seen []string
}

func (f *fakeRefresher) Refresh(_ context.Context, pool *state.Pool, r *state.Replica) (Observed, error) {
	addr := pool.Spec.Model.Ref + "/" + r.ID // the model ref names the pool in these tests
	f.mu.Lock()
	f.seen = append(f.seen, addr)
	f.mu.Unlock()
	if err := f.errs[addr]; err != nil {
		return Observed{}, err
	}
	return f.obs[addr], nil
}

func TestPlannerRefreshesRecordedReplicas(t *testing.T) {
	fake := &providertest.Provider{}
	p := plantest.Pool("pool.chat")
	p.Replicas = 2
	d := testDesired(t, p, nil)
	st := stateWith(map[string]*state.Pool{"pool.chat": recorded(t, d)})
	ref := p.Model.Ref
	rf := &fakeRefresher{
		obs:  map[string]Observed{ref + "/r0": {Status: state.StatusFailed, Reason: "circuit breaker open"}},
		errs: map[string]error{ref + "/r1": errors.New("dial unix .llorch/run/chat-r1/sock: connection refused")},
	}
	pl := newPlanner(fake)
	pl.Refresher = rf

	t.Run("refresh on", func(t *testing.T) {
		plan, diags := pl.Plan(t.Context(), plantest.Config("h", p), st, Options{Refresh: true})
		if plan == nil {
			t.Fatal(diags.Error())
		}
		if len(diags) != 1 || diags[0].Severity != hcl.DiagWarning || diags[0].Summary != "Failed to refresh replica" ||
			diags[0].Detail != `llorch could not read the live status of pool.chat/r1: dial unix .llorch/run/chat-r1/sock: connection refused. The plan assumes it is as recorded; run "llorch status" to look at it.` {
			t.Errorf("diags = %v", diags)
		}
		if len(plan.Changes) != 1 || plan.Changes[0].Addr != "pool.chat/r0" || plan.Changes[0].Action != Restart {
			t.Errorf("changes = %v", plan.Changes)
		}
		if _, ok := plan.Observations["pool.chat/r1"]; ok {
			t.Error("a replica that could not be refreshed has an observation")
		}
		if len(plan.Warnings) != 1 {
			t.Errorf("Warnings = %q", plan.Warnings)
		}
	})
	t.Run("refresh off", func(t *testing.T) {
		rf.seen = nil
		plan, diags := pl.Plan(t.Context(), plantest.Config("h", p), st, Options{Refresh: false})
		if diags.HasErrors() || !plan.Empty() || len(rf.seen) != 0 {
			t.Errorf("refresh off: changes %v, refresher asked about %v", plan.Changes, rf.seen)
		}
	})
	t.Run("destroy does not refresh", func(t *testing.T) {
		rf.seen = nil
		plan, _ := pl.Plan(t.Context(), plantest.Config("h", p), st, Options{Refresh: true, Destroy: true})
		if len(rf.seen) != 0 || len(plan.Changes) != 1 || plan.Changes[0].Action != Delete {
			t.Errorf("destroy: refresher asked %v, changes %v", rf.seen, plan.Changes)
		}
	})
}

func TestPlannerBoundsConcurrentProviderCalls(t *testing.T) {
	var running, peak atomic.Int32
	release := make(chan struct{})
	entered := make(chan struct{}, 12)
	fake := &providertest.Provider{
		PlanPoolFunc: func(ctx context.Context, _ providers.PlanPoolRequest) (*providers.PlannedPool, providers.Diagnostics) {
			entered <- struct{}{}
			n := running.Add(1)
			defer running.Add(-1)
			for {
				old := peak.Load()
				if n <= old || peak.CompareAndSwap(old, n) {
					break
				}
			}
			<-release
			return &providers.PlannedPool{}, nil
		},
	}
	var pools []*config.Pool
	for i := range 12 {
		pools = append(pools, plantest.Pool(fmt.Sprintf("pool.p%02d", i)))
	}
	pl := newPlanner(fake)
	pl.Parallelism = 3
	done := make(chan struct{})
	go func() {
		defer close(done)
		pl.Plan(t.Context(), plantest.Config("h", pools...), nil, Options{})
	}()
	// Hold the first calls until as many as allowed have started, so that
	// a planner ignoring the bound would have more running at once.
	for range 3 {
		<-entered
	}
	close(release)
	<-done
	if p := peak.Load(); p > 3 {
		t.Fatalf("peak concurrent PlanPool calls = %d, want at most 3", p)
	}
	if n := len(fake.CallsTo("PlanPool")); n != 12 {
		t.Fatalf("PlanPool called %d times", n)
	}
}

func TestPlannerStopsWhenCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	fake := &providertest.Provider{
		PlanPoolFunc: func(context.Context, providers.PlanPoolRequest) (*providers.PlannedPool, providers.Diagnostics) {
			cancel()
			return &providers.PlannedPool{}, nil
		},
	}
	pl := newPlanner(fake)
	pl.Parallelism = 1
	p, diags := pl.Plan(ctx, plantest.Config("h", plantest.Pool("pool.a"), plantest.Pool("pool.b"), plantest.Pool("pool.c")), nil, Options{})
	if p != nil || len(diags) != 1 || diags[0].Summary != "Planning interrupted" ||
		diags[0].Detail != "Planning stopped before it was complete (context canceled); no plan was made." {
		t.Fatalf("plan %v, diags %v", p, diags)
	}
	if n := len(fake.CallsTo("PlanPool")); n != 1 {
		t.Errorf("PlanPool called %d times after cancellation, want 1", n)
	}
}

func TestValidateChecksWithoutPlanning(t *testing.T) {
	fake := &providertest.Provider{}
	cfg := plantest.Config("h", plantest.Pool("pool.a"))
	plantest.SetProvider(t, cfg, "llamacpp", `binary = 3`, nil)
	plantest.SetProvider(t, cfg, "vllm", `x = 1`, nil)
	diags := newPlanner(fake).Validate(t.Context(), cfg)
	var got []string
	for _, d := range diags {
		got = append(got, d.Summary+" at "+where(d.Subject))
	}
	// binary = 3 converts to a string; the vllm block names a provider that
	// does not exist, and pool.a still validates.
	want := []string{"Failed to load provider at providers.llorch.hcl:1:1"}
	if !slices.Equal(got, want) {
		t.Errorf("diags = %q, want %q", got, want)
	}
	if len(fake.CallsTo("ValidatePool")) != 1 || len(fake.CallsTo("PlanPool")) != 0 {
		t.Errorf("calls = %v", fake.Calls())
	}
}

func TestReplayRebuildsTheSamePlanWithoutAskingProviders(t *testing.T) {
	planned := &providers.PlannedPool{EngineVersion: "fake-2", Model: &providers.ModelInfo{Architecture: "llama"}}
	fake := &providertest.Provider{
		PlanPoolFunc: func(context.Context, providers.PlanPoolRequest) (*providers.PlannedPool, providers.Diagnostics) {
			return planned, providers.Diagnostics{providers.Warnf("Slow model", "It is big.")}
		},
	}
	chat := plantest.Pool("pool.chat")
	chat.Replicas = 2
	st := stateWith(map[string]*state.Pool{"pool.chat": recorded(t, testDesired(t, chat, nil))})
	cfg := plantest.Config("h", chat, plantest.Pool("pool.new"))
	rf := &fakeRefresher{obs: map[string]Observed{chat.Model.Ref + "/r1": {Status: state.StatusFailed}}}
	pl := newPlanner(fake)
	pl.Refresher = rf
	opts := Options{Refresh: true, Targets: []string{"pool.chat"}}
	first, diags := pl.Plan(t.Context(), cfg, st, opts)
	if first == nil {
		t.Fatal(diags.Error())
	}

	again := &providertest.Provider{}
	pl2 := newPlanner(again)
	saved := Saved{Options: first.Options, Observations: first.Observations, Planned: first.Planned(), Warnings: first.Warnings}
	replayed, diags := pl2.Replay(t.Context(), cfg, st, saved)
	if replayed == nil {
		t.Fatal(diags.Error())
	}
	if len(again.CallsTo("PlanPool")) != 0 || len(again.CallsTo("ValidatePool")) != 0 {
		t.Errorf("Replay asked the provider: %v", again.Calls())
	}
	var a, b []string
	for _, c := range first.Changes {
		a = append(a, describe(c))
	}
	for _, c := range replayed.Changes {
		b = append(b, describe(c))
	}
	if !slices.Equal(a, b) || len(a) != 1 {
		t.Errorf("replayed changes %q, planned %q", b, a)
	}
	if !slices.Equal(first.Warnings, replayed.Warnings) || replayed.ConfigHash != "h" {
		t.Errorf("replayed warnings %q, hash %q", replayed.Warnings, replayed.ConfigHash)
	}

	delete(saved.Planned, "pool.new")
	_, diags = pl2.Replay(t.Context(), cfg, st, saved)
	if !diags.HasErrors() || diags[0].Detail != "The saved plan has nothing planned for pool.new. Run llorch plan again." {
		t.Errorf("diags = %v", diags)
	}
}

func TestPlannerSaysWhenItNeedsTheProvidersNoMore(t *testing.T) {
	fake := &providertest.Provider{}
	pl := newPlanner(fake)
	var done int
	var callsAtDone int
	pl.ProvidersDone = func() {
		done++
		callsAtDone = len(fake.Calls())
	}
	cfg := plantest.Config("sha256:cfg", plantest.Pool("pool.a"), plantest.Pool("pool.b"))
	if _, diags := pl.Plan(t.Context(), cfg, state.New("lin"), Options{Refresh: true}); diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	if done != 1 {
		t.Fatalf("ProvidersDone called %d times, want once", done)
	}
	if n := len(fake.Calls()); n == 0 || n != callsAtDone {
		t.Errorf("the provider had %d calls when ProvidersDone was called and %d after the plan; want all before", callsAtDone, n)
	}
}
