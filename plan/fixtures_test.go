package plan

import (
	"encoding/json"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hcldec"
	"github.com/hashicorp/hcl/v2/hclsyntax"

	"github.com/llorch/llorch/config"
	"github.com/llorch/llorch/providers"
	"github.com/llorch/llorch/providers/providertest"
	"github.com/llorch/llorch/state"
)

// testDesired evaluates p against the fake provider's schema, as the
// Planner does, without calling a provider.
func testDesired(t testing.TB, p *config.Pool, planned *providers.PlannedPool) *Desired {
	t.Helper()
	schema := providertest.Schema().Pool
	var body hcl.Body = p.ProviderBody
	if body == nil {
		body = &hclsyntax.Body{SrcRange: p.DeclRange, EndRange: p.DeclRange}
	}
	val, diags := hcldec.Decode(body, schema.DecoderSpec(), p.EvalCtx)
	if diags.HasErrors() {
		t.Fatalf("decoding provider block: %s", diags.Error())
	}
	val, marks := val.UnmarkDeepWithPaths()
	bs, err := buildSpec(p, val, marks, newBlockSchema(schema))
	if err != nil {
		t.Fatalf("buildSpec: %v", err)
	}
	if planned == nil {
		planned = &providers.PlannedPool{EngineVersion: providertest.EngineVersion}
	}
	return &Desired{
		Addr: p.Addr, Pool: p, Spec: bs.spec, SpecHash: bs.hash,
		ProviderConfig: val, ProviderSchema: schema, Planned: planned, Sensitive: bs.sensitive,
	}
}

// recorded is d as apply records it after a successful apply: the spec read
// back from an indented state file, the engine version prepared, every
// replica ready.
func recorded(t testing.TB, d *Desired) *state.Pool {
	t.Helper()
	b, err := json.MarshalIndent(d.Spec, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	var spec state.Spec
	if err := json.Unmarshal(b, &spec); err != nil {
		t.Fatal(err)
	}
	sp := &state.Pool{
		Engine:   d.Spec.Engine,
		SpecHash: d.SpecHash,
		Spec:     &spec,
		Prepared: &state.Prepared{EngineVersion: providertest.EngineVersion, Host: d.Spec.Host, Port: d.Spec.Port},
	}
	for i := range d.Spec.Replicas {
		sp.Replicas = append(sp.Replicas, &state.Replica{ID: ReplicaID(i), PID: 4000 + i, Port: d.Spec.Port + i, Status: state.StatusReady})
	}
	return sp
}

func stateWith(pools map[string]*state.Pool) *state.State {
	st := state.New("5b0d6c1e-8a8e-4d8e-9d4c-2f0a1b2c3d4e")
	st.Serial = 7
	for a, p := range pools {
		st.Pools[a] = p
	}
	return st
}
