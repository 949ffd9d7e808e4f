package plantest

import (
	"fmt"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"

	"github.com/llorch/llorch/config"
)

// Pool returns the pool instance at addr (pool.chat, pool.embed["bge"],
// pool.x[0]) as config.Load would give it for a block with only engine
// "llamacpp" and model ref "file:/models/<name>.gguf": every default
// filled in.
func Pool(addr string) *config.Pool {
	name, key, _ := strings.Cut(strings.TrimPrefix(addr, "pool."), "[")
	id := name
	var k cty.Value
	if key != "" {
		key = strings.TrimSuffix(key, "]")
		unq := strings.Trim(key, `"`)
		id = name + "-" + unq
		if strings.HasPrefix(key, `"`) {
			k = cty.StringVal(unq)
		} else {
			var n int64
			fmt.Sscan(unq, &n)
			k = cty.NumberIntVal(n)
		}
	}
	rng := hcl.Range{Filename: "main.llorch.hcl", Start: hcl.Pos{Line: 1, Column: 1, Byte: 0}, End: hcl.Pos{Line: 1, Column: 12, Byte: 11}}
	return &config.Pool{
		Addr:     addr,
		Name:     name,
		Key:      k,
		ID:       id,
		Engine:   "llamacpp",
		Replicas: 1,
		Model:    config.Model{Ref: "file:/models/" + name + ".gguf"},
		Host:     config.DefaultHost,
		Health:   config.DefaultHealth,
		Restart:  config.DefaultRestart,
		Drain:    config.DefaultDrain,
		Update:   config.DefaultUpdate,
		EvalCtx:  &hcl.EvalContext{},

		DeclRange:  rng,
		AttrRanges: map[string]hcl.Range{},
	}
}

// SetProviderBlock parses src as the body of p's provider block
// ("llamacpp { <src> }"), with var.NAME bound to vars and the variables
// named in sensitive marked the way config marks sensitive variables. The
// block's source ranges are in file "main.llorch.hcl".
func SetProviderBlock(t testing.TB, p *config.Pool, src string, vars map[string]cty.Value, sensitive ...string) {
	t.Helper()
	file := fmt.Sprintf("%s {\n%s\n}\n", p.Engine, src)
	f, diags := hclsyntax.ParseConfig([]byte(file), "main.llorch.hcl", hcl.InitialPos)
	if diags.HasErrors() {
		t.Fatalf("parsing provider block: %s", diags.Error())
	}
	body := f.Body.(*hclsyntax.Body)
	if len(body.Blocks) != 1 {
		t.Fatalf("provider block source must hold one block, got %d", len(body.Blocks))
	}
	blk := body.Blocks[0]
	p.ProviderBody = blk.Body
	p.AttrRanges[p.Engine] = blk.DefRange()
	p.EvalCtx = EvalContext(vars, sensitive...)
}

// EvalContext binds var.NAME to vars, marking the sensitive ones.
func EvalContext(vars map[string]cty.Value, sensitive ...string) *hcl.EvalContext {
	vals := map[string]cty.Value{}
	for n, v := range vars {
		for _, s := range sensitive {
			if s == n {
				v = v.Mark(config.SensitiveMark)
			}
		}
		vals[n] = v
	}
	ctx := &hcl.EvalContext{Variables: map[string]cty.Value{}}
	if len(vals) > 0 {
		ctx.Variables["var"] = cty.ObjectVal(vals)
	}
	return ctx
}

// Config returns a configuration holding pools (sorted as given) and hash.
func Config(hash string, pools ...*config.Pool) *config.Config {
	return &config.Config{
		Dir:       ".",
		Settings:  config.Settings{StateDir: config.DefaultStateDir},
		Variables: map[string]*config.Variable{},
		Providers: map[string]*config.ProviderBlock{},
		Pools:     pools,
		Hash:      hash,
	}
}

// SetProvider adds a provider "NAME" {} block with body src to cfg, with
// var.NAME bound to vars (the sensitive ones marked).
func SetProvider(t testing.TB, cfg *config.Config, name, src string, vars map[string]cty.Value, sensitive ...string) {
	t.Helper()
	file := fmt.Sprintf("provider %q {\n%s\n}\n", name, src)
	f, diags := hclsyntax.ParseConfig([]byte(file), "providers.llorch.hcl", hcl.InitialPos)
	if diags.HasErrors() {
		t.Fatalf("parsing provider block: %s", diags.Error())
	}
	blk := f.Body.(*hclsyntax.Body).Blocks[0]
	cfg.Providers[name] = &config.ProviderBlock{
		Name:      name,
		Body:      blk.Body,
		EvalCtx:   EvalContext(vars, sensitive...),
		DeclRange: blk.DefRange(),
	}
}
