package providertest_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/zclconf/go-cty/cty"

	"github.com/llorch/llorch/providers"
	"github.com/llorch/llorch/providers/providertest"
)

func TestZeroProviderWorks(t *testing.T) {
	p := &providertest.Provider{}
	ctx := t.Context()
	s, diags := p.GetSchema(ctx)
	if diags.HasErrors() || s.Pool.Attributes["api_key"] == nil || !s.Pool.Attributes["api_key"].Sensitive ||
		!s.Pool.Attributes["build_ref"].ForcesReplacement || !s.Pool.Blocks["source"].Attributes["ref"].ForcesReplacement {
		t.Fatalf("schema = %+v, %v", s, diags)
	}
	pool := providers.PoolSpec{Addr: "pool.chat", ID: "chat", Model: providers.ModelRef{Ref: "file:/m/q.gguf"}, Host: "127.0.0.1", Port: 8080, Ctx: 512, Flags: []string{"--parallel", "2"}, Devices: []int{0, 1}}
	if d := p.Configure(ctx, providers.ConfigureRequest{}); d.HasErrors() {
		t.Fatal(d)
	}
	if d := p.ValidatePool(ctx, providers.ValidatePoolRequest{Pool: pool}); d.HasErrors() {
		t.Fatal(d)
	}
	pp, d := p.PlanPool(ctx, providers.PlanPoolRequest{Pool: pool})
	if d.HasErrors() || pp.EngineVersion != providertest.EngineVersion {
		t.Fatalf("PlanPool = %+v, %v", pp, d)
	}
	var events []providers.Event
	p.Events = []providers.Event{{Stage: "download", Current: 1, Total: 2}, {Stage: "verify"}}
	pe, d := p.Ensure(ctx, providers.EnsureRequest{Pool: pool, Progress: func(e providers.Event) { events = append(events, e) }})
	if d.HasErrors() {
		t.Fatal(d)
	}
	want := []string{"-m", "/m/q.gguf", "--host", "127.0.0.1", "--port", "8080", "-c", "512", "--parallel", "2"}
	if !slices.Equal(pe.Args, want) || pe.ModelPath != "/m/q.gguf" || pe.DeviceMask != "0,1" || pe.PoolID != "chat" {
		t.Errorf("Ensure = %+v", pe)
	}
	if len(events) != 2 || events[0].Stage != "download" {
		t.Errorf("events = %+v", events)
	}
	if d := p.Cleanup(ctx, providers.CleanupRequest{Pool: pool, Prepared: pe}); d.HasErrors() {
		t.Fatal(d)
	}
	p.Close()
	var methods []string
	for _, c := range p.Calls() {
		methods = append(methods, c.Method)
	}
	if !slices.Equal(methods, []string{"GetSchema", "Configure", "ValidatePool", "PlanPool", "Ensure", "Cleanup", "Close"}) || !p.Closed() {
		t.Errorf("calls = %v", methods)
	}
	if c := p.CallsTo("Cleanup")[0]; c.Prepared != pe || c.Pool.Addr != "pool.chat" {
		t.Errorf("Cleanup call = %+v", c)
	}
}

func TestHooksReplaceResults(t *testing.T) {
	boom := providers.Diagnostics{providers.AttributeErrorf(cty.GetAttrPath("model").GetAttr("ref"), "Model not found", "no such file")}
	p := &providertest.Provider{
		EnsureFunc: func(context.Context, providers.EnsureRequest) (*providers.PreparedEngine, providers.Diagnostics) {
			return nil, boom
		},
		PlanPoolFunc: func(_ context.Context, req providers.PlanPoolRequest) (*providers.PlannedPool, providers.Diagnostics) {
			return &providers.PlannedPool{EngineVersion: req.Prior.EngineVersion + "+1"}, nil
		},
	}
	if _, d := p.Ensure(t.Context(), providers.EnsureRequest{}); d.Error() != "Model not found: no such file" {
		t.Errorf("Ensure diags = %v", d)
	}
	pp, _ := p.PlanPool(t.Context(), providers.PlanPoolRequest{Prior: &providers.PreparedEngine{EngineVersion: "v1"}})
	if pp.EngineVersion != "v1+1" {
		t.Errorf("PlanPool = %+v", pp)
	}
}

func TestCancelledContextFailsEveryCall(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	p := &providertest.Provider{}
	if _, d := p.Ensure(ctx, providers.EnsureRequest{}); d.Error() != "Ensure cancelled: context canceled" {
		t.Errorf("Ensure = %v", d)
	}
	if _, d := p.PlanPool(ctx, providers.PlanPoolRequest{}); !d.HasErrors() {
		t.Error("PlanPool ignored a cancelled context")
	}
}

func TestResolver(t *testing.T) {
	p := &providertest.Provider{}
	r := providertest.NewResolver(p, "llamacpp", "vllm")
	r.Errors = map[string]error{"broken": errors.New("plugin did not respond")}
	if got := r.Names(); !slices.Equal(got, []string{"broken", "llamacpp", "vllm"}) {
		t.Errorf("Names = %v", got)
	}
	got, err := r.Provider(t.Context(), "vllm")
	if err != nil || got != p {
		t.Errorf("Provider(vllm) = %v, %v", got, err)
	}
	if _, err := r.Provider(t.Context(), "broken"); err == nil || err.Error() != "plugin did not respond" {
		t.Errorf("Provider(broken) err = %v", err)
	}
	if _, err := r.Provider(t.Context(), "nope"); !errors.Is(err, providertest.ErrNoProvider) || err.Error() != `provider "nope": no such provider` {
		t.Errorf("Provider(nope) err = %v", err)
	}
	if r.Resolved("vllm") != 1 || r.Resolved("nope") != 1 {
		t.Errorf("Resolved counts wrong")
	}
}
