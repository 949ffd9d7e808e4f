package plan_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/spf13/afero"
	"github.com/zclconf/go-cty/cty"

	"github.com/llorch/llorch/config"
	"github.com/llorch/llorch/plan"
	"github.com/llorch/llorch/plan/planfile"
	"github.com/llorch/llorch/plan/render"
	"github.com/llorch/llorch/providers"
	"github.com/llorch/llorch/providers/providertest"
	"github.com/llorch/llorch/state"
)

const loadedSecret = "hf_SECRET_token_value_123"

const mainHCL = `variable "api_key" {
  type      = string
  sensitive = true
}

variable "hf_token" {
  type      = string
  sensitive = true
}

pool "chat" {
  engine   = "llamacpp"
  replicas = 2
  port     = 8080
  model {
    ref = "file:/srv/models/qwen.gguf"
  }
  env = {
    HF_TOKEN = var.hf_token
  }
  llamacpp {
    api_key      = var.api_key
    n_gpu_layers = 99
  }
}

pool "embed" {
  for_each = toset(["bge", "e5"])
  engine   = "llamacpp"
  model {
    ref = "file:/srv/models/${each.key}.gguf"
  }
}
`

// TestPlanFromLoadedConfiguration runs the planner on a configuration
// loaded from HCL, as the CLI does, and checks what reaches the provider,
// the diagnostics and every output.
func TestPlanFromLoadedConfiguration(t *testing.T) {
	fs := afero.NewMemMapFs()
	afero.WriteFile(fs, "/w/main.llorch.hcl", []byte(mainHCL), 0o644)
	cfg, diags := config.Load(fs, "/w", config.LoadOptions{
		Engines: []string{"llamacpp"},
		Vars:    []config.VarArg{{Name: "api_key", Value: "sk-" + loadedSecret}, {Name: "hf_token", Value: loadedSecret}},
		Environ: []string{},
	})
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	fake := &providertest.Provider{
		PlanPoolFunc: func(_ context.Context, req providers.PlanPoolRequest) (*providers.PlannedPool, providers.Diagnostics) {
			if req.Pool.Addr != "pool.chat" {
				return &providers.PlannedPool{}, nil
			}
			return &providers.PlannedPool{}, providers.Diagnostics{
				{Severity: providers.Warning, Summary: "GPU layers", Detail: "key " + req.Config.GetAttr("api_key").AsString(), Attribute: cty.GetAttrPath("n_gpu_layers")},
				{Severity: providers.Warning, Summary: "Model", Detail: "checked", Attribute: cty.GetAttrPath("model").GetAttr("ref")},
			}
		},
	}
	pl := &plan.Planner{Providers: providertest.NewResolver(fake, "llamacpp"), LlorchVersion: "0.1.0"}
	p, diags := pl.Plan(t.Context(), cfg, state.New("5b0d6c1e-8a8e-4d8e-9d4c-2f0a1b2c3d4e"), plan.Options{Refresh: true})
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}

	// The provider sees real values; the plan sees hashes.
	for _, c := range fake.CallsTo("PlanPool") {
		if c.Pool.Addr == "pool.chat" && (c.Config.GetAttr("api_key").AsString() != "sk-"+loadedSecret || c.Pool.Env["HF_TOKEN"] != loadedSecret) {
			t.Errorf("the provider did not get the real secrets: %#v %v", c.Config, c.Pool.Env)
		}
	}
	at := func(d *hcl.Diagnostic) string {
		return fmt.Sprintf("%d:%d", d.Subject.Start.Line, d.Subject.Start.Column)
	}
	if diags[0].Detail != "key (sensitive value)" {
		t.Errorf("detail = %q", diags[0].Detail)
	}
	if len(diags) != 2 || at(diags[0]) != "23:20" || at(diags[1]) != "16:11" {
		t.Errorf("diagnostics = %v at %s, %s; want 23:20 (n_gpu_layers) and 16:11 (model.ref)", diags, at(diags[0]), at(diags[1]))
	}
	if got := []string{p.Changes[0].Addr, p.Changes[1].Addr, p.Changes[2].Addr}; strings.Join(got, " ") != `pool.chat pool.embed["bge"] pool.embed["e5"]` {
		t.Errorf("changes = %v", got)
	}

	var human, js bytes.Buffer
	render.Human(&human, p, render.Options{})
	render.JSON(&js, p)
	f, err := planfile.New(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	saved, _ := f.Encode()
	diagText := ""
	for _, d := range diags {
		diagText += d.Summary + d.Detail
	}
	for name, out := range map[string]string{"human": human.String(), "json": js.String(), "saved plan": string(saved), "diagnostics": diagText} {
		if strings.Contains(out, loadedSecret) {
			t.Errorf("%s output holds the secret", name)
		}
	}
	for _, want := range []string{`"HF_TOKEN" = (sensitive value)`, "api_key      = (sensitive value)"} {
		if !strings.Contains(human.String(), want) {
			t.Errorf("human output lacks %q:\n%s", want, human.String())
		}
	}
}
