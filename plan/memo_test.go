package plan

import (
	"context"
	"fmt"
	"testing"

	"github.com/llorch/llorch/config"
	"github.com/llorch/llorch/plan/plantest"
	"github.com/llorch/llorch/providers"
	"github.com/llorch/llorch/providers/providertest"
	"github.com/llorch/llorch/state"
)

// samePools returns n pools that differ only in name, port and replica
// count, all on model m.
func samePools(n int, m string) []*config.Pool {
	var out []*config.Pool
	for i := range n {
		p := plantest.Pool(fmt.Sprintf("pool.%s%03d", m, i))
		p.Model.Ref = "file:/models/" + m + ".gguf"
		p.Port = 10000 + 2*i
		p.Replicas = 1 + i%3
		out = append(out, p)
	}
	return out
}

func TestPoolsOfOneShareValidateAndPlanCalls(t *testing.T) {
	fake := &providertest.Provider{}
	pools := append(samePools(50, "a"), samePools(30, "b")...)
	cfg := plantest.Config("h", pools...)
	p, diags := newPlanner(fake).Plan(t.Context(), cfg, state.New("lin"), Options{})
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	if len(p.Changes) != 80 {
		t.Fatalf("%d changes, want 80", len(p.Changes))
	}
	for _, method := range []string{"ValidatePool", "PlanPool"} {
		if n := len(fake.CallsTo(method)); n != 2 {
			t.Errorf("%s called %d times for 80 pools of 2 shapes, want 2", method, n)
		}
	}
	// Every pool still gets its own answer, not one another pool can change.
	d0, d1 := p.Desired["pool.a000"], p.Desired["pool.a001"]
	if d0.Planned == d1.Planned || d0.Planned.EngineVersion != providertest.EngineVersion {
		t.Errorf("planned answers are shared or wrong: %p %p %q", d0.Planned, d1.Planned, d0.Planned.EngineVersion)
	}
}

func TestPoolsThatDifferInWhatProvidersSeeAreAskedSeparately(t *testing.T) {
	changes := map[string]func(p *config.Pool){
		"model sha256": func(p *config.Pool) { p.Model.SHA256 = "ab" },
		"ctx":          func(p *config.Pool) { p.Ctx = 4096 },
		"flags":        func(p *config.Pool) { p.Flags = []string{"--parallel", "4"} },
		"env":          func(p *config.Pool) { p.Env = map[string]string{"A": "1"} },
		"cpu only":     func(p *config.Pool) { p.Devices = []int{} },
		"devices":      func(p *config.Pool) { p.Devices = []int{0} },
		"host":         func(p *config.Pool) { p.Host = "0.0.0.0" },
		"provider block": func(p *config.Pool) {
			plantest.SetProviderBlock(t, p, "n_gpu_layers = 10", nil)
		},
	}
	for name, change := range changes {
		t.Run(name, func(t *testing.T) {
			fake := &providertest.Provider{}
			pools := samePools(2, "a")
			change(pools[1])
			_, diags := newPlanner(fake).Plan(t.Context(), plantest.Config("h", pools...), nil, Options{})
			if diags.HasErrors() {
				t.Fatal(diags.Error())
			}
			if n := len(fake.CallsTo("PlanPool")); n != 2 {
				t.Errorf("PlanPool called %d times, want 2", n)
			}
		})
	}
}

func TestAnswersWithDiagnosticsAreNotShared(t *testing.T) {
	fake := &providertest.Provider{
		PlanPoolFunc: func(_ context.Context, req providers.PlanPoolRequest) (*providers.PlannedPool, providers.Diagnostics) {
			return &providers.PlannedPool{EngineVersion: "v1"},
				providers.Diagnostics{providers.Warnf("Context too long", "%s asks for more context than its model has.", req.Pool.Addr)}
		},
	}
	_, diags := newPlanner(fake).Plan(t.Context(), plantest.Config("h", samePools(3, "a")...), nil, Options{})
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	if n := len(fake.CallsTo("PlanPool")); n != 3 {
		t.Errorf("PlanPool called %d times, want once per pool when it warns", n)
	}
	for _, addr := range []string{"pool.a000", "pool.a001", "pool.a002"} {
		found := false
		for _, d := range diags {
			found = found || d.Detail == addr+" asks for more context than its model has."
		}
		if !found {
			t.Errorf("no warning names %s: %v", addr, diags)
		}
	}
}
