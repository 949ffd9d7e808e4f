package plan_test

import (
	"context"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/spf13/afero"

	"github.com/llorch/llorch/config"
	"github.com/llorch/llorch/plan"
	"github.com/llorch/llorch/plan/render"
	"github.com/llorch/llorch/providers"
	"github.com/llorch/llorch/providers/providertest"
	"github.com/llorch/llorch/state"
)

// poolsHCL writes n pools the way an operator would: a provider block, and
// pools with a model, a port range, labels and a provider-specific block.
func poolsHCL(n int) string {
	var b strings.Builder
	b.WriteString("variable \"models\" {\n  default = \"/srv/models\"\n}\n\nprovider \"llamacpp\" {\n  binary = \"llama-server\"\n}\n")
	for i := range n {
		fmt.Fprintf(&b, `
pool "p%04d" {
  engine   = "llamacpp"
  replicas = 2
  port     = %d
  ctx      = 4096
  flags    = ["--parallel", "4"]
  labels   = { team = "search", index = "%d" }
  model {
    ref = "file:${var.models}/m%d.gguf"
  }
  health {
    start_timeout = "300s"
  }
  llamacpp {
    n_gpu_layers = 99
    api_key      = "secret-%d"
  }
}
`, i, 10000+2*i, i, i%7, i)
	}
	return b.String()
}

const benchLineage = "5b0d9a4e-1c2f-4e8a-9b7c-0d1e2f3a4b5c"

// readyRefresher observes every recorded replica as ready, as live
// supervisors would answer.
type readyRefresher struct{}

func (readyRefresher) Refresh(_ context.Context, _ *state.Pool, r *state.Replica) (plan.Observed, error) {
	return plan.Observed{Status: state.StatusReady, Alive: true, PID: r.PID}, nil
}

// applied builds the state a successful apply of p would leave.
func applied(p *plan.Plan) *state.State {
	st := state.New(benchLineage)
	st.Serial = 1
	for addr, d := range p.Desired {
		pe := providertest.DefaultEngine(providertestPoolSpec(d))
		sp := &state.Pool{Engine: d.Pool.Engine, Spec: d.Spec, SpecHash: d.SpecHash,
			Prepared: &state.Prepared{BinaryPath: pe.BinaryPath, Args: pe.Args, Host: pe.Host, Port: pe.Port,
				ModelPath: pe.ModelPath, EngineVersion: pe.EngineVersion}}
		for i := range d.Pool.Replicas {
			sp.Replicas = append(sp.Replicas, &state.Replica{ID: plan.ReplicaID(i), Port: d.Pool.Port + i,
				PID: 1000 + i, SupervisorPID: 900 + i, Status: state.StatusReady, RunDir: "/run/" + d.Pool.ID})
		}
		st.Pools[addr] = sp
	}
	return st
}

func providertestPoolSpec(d *plan.Desired) providers.PoolSpec {
	return providers.PoolSpec{ID: d.Pool.ID, Addr: d.Addr, Host: d.Pool.Host, Port: d.Pool.Port,
		Model: providers.ModelRef{Ref: d.Pool.Model.Ref}, Ctx: d.Pool.Ctx, Flags: d.Pool.Flags}
}

// BenchmarkPipeline measures what `llorch plan` does in process: parse and
// evaluate the HCL, decode the state file, plan every pool through an
// (in-process) provider, refresh every replica, diff, and render the human
// output — at 10, 100 and 1000 pools of 2 replicas, against an empty and a
// fully-applied state. Process start, the provider plugin and the
// supervisors' files are left out: .ci/bench-process.sh times those.
func BenchmarkPipeline(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		fs := afero.NewMemMapFs()
		if err := afero.WriteFile(fs, "/cfg/main.llorch.hcl", []byte(poolsHCL(n)), 0o644); err != nil {
			b.Fatal(err)
		}
		run := func(b *testing.B, stored *state.State, wantEmpty bool) {
			file, err := state.Encode(stored)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				cfg, diags := config.Load(fs, "/cfg", config.LoadOptions{Engines: []string{"llamacpp"}})
				if diags.HasErrors() {
					b.Fatal(diags)
				}
				prior, err := state.Decode(file, "state.json", "")
				if err != nil {
					b.Fatal(err)
				}
				pl := &plan.Planner{Providers: providertest.NewResolver(&providertest.Provider{}, "llamacpp"), Refresher: readyRefresher{}}
				p, pdiags := pl.Plan(context.Background(), cfg, prior, plan.Options{Refresh: true})
				if pdiags.HasErrors() {
					b.Fatal(pdiags)
				}
				if p.Empty() != wantEmpty {
					b.Fatalf("plan empty = %v, want %v (%d changes)", p.Empty(), wantEmpty, len(p.Changes))
				}
				if err := render.Human(io.Discard, p, render.Options{}); err != nil {
					b.Fatal(err)
				}
			}
		}
		empty := state.New(benchLineage)
		b.Run(fmt.Sprintf("pools=%d/state=empty", n), func(b *testing.B) { run(b, empty, false) })

		cfg, _ := config.Load(fs, "/cfg", config.LoadOptions{Engines: []string{"llamacpp"}})
		pl := &plan.Planner{Providers: providertest.NewResolver(&providertest.Provider{}, "llamacpp")}
		first, diags := pl.Plan(context.Background(), cfg, empty, plan.Options{})
		if diags.HasErrors() {
			b.Fatal(diags)
		}
		full := applied(first)
		b.Run(fmt.Sprintf("pools=%d/state=applied", n), func(b *testing.B) { run(b, full, true) })
	}
}
