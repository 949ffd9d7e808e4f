package config

import (
	"fmt"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// poolsConfig is n simple pools, a third of them with fixed ports, as one
// file, plus a variable and a local they use.
func poolsConfig(n int) map[string]string {
	var b strings.Builder
	b.WriteString(`variable "models" { default = "/srv/models" }
locals { ctx = 4096 }
`)
	for i := range n {
		fmt.Fprintf(&b, `
pool "p%d" {
  engine   = "llamacpp"
  replicas = 2
  ctx      = local.ctx
  flags    = ["--parallel", "4"]
  labels   = { team = "t%d" }
  model { ref = "file:${var.models}/m%d.gguf" }
`, i, i%7, i)
		if i%3 == 0 {
			fmt.Fprintf(&b, "  port     = %d\n", 10000+2*i)
		}
		b.WriteString("  health {\n    interval = \"200ms\"\n  }\n}\n")
	}
	return map[string]string{"main.llorch.hcl": b.String()}
}

func BenchmarkLoad(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		b.Run(fmt.Sprintf("pools=%d", n), func(b *testing.B) {
			fs := memFS(b, poolsConfig(n))
			opts := LoadOptions{Environ: []string{}}
			b.ReportAllocs()
			for b.Loop() {
				cfg, diags := Load(fs, ".", opts)
				if len(diags) > 0 || len(cfg.Pools) != n {
					b.Fatalf("%d pools, diagnostics: %v", len(cfg.Pools), diagStrings(diags))
				}
			}
		})
	}
}

// BenchmarkParseHCL is the share of BenchmarkLoad spent in the HCL parser
// alone, on the same files, for comparison.
func BenchmarkParseHCL(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		src := []byte(poolsConfig(n)["main.llorch.hcl"])
		b.Run(fmt.Sprintf("pools=%d", n), func(b *testing.B) {
			b.SetBytes(int64(len(src)))
			for b.Loop() {
				if _, diags := hclsyntax.ParseConfig(src, "main.llorch.hcl", hcl.InitialPos); diags.HasErrors() {
					b.Fatal(diags)
				}
			}
		})
	}
}

func TestBenchmarkConfigLoads(t *testing.T) {
	cfg := mustLoad(t, poolsConfig(30), LoadOptions{})
	if len(cfg.Pools) != 30 || cfg.Pools[0].Ctx != 4096 {
		t.Errorf("got %d pools, ctx %d", len(cfg.Pools), cfg.Pools[0].Ctx)
	}
}
