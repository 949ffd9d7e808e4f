package plantest_test

import (
	"testing"

	"github.com/zclconf/go-cty/cty"

	"github.com/llorch/llorch/config"
	"github.com/llorch/llorch/plan/plantest"
)

func TestPoolDerivesNameKeyAndID(t *testing.T) {
	tests := []struct {
		addr, name, id string
		key            cty.Value
	}{
		{"pool.chat", "chat", "chat", cty.NilVal},
		{`pool.embed["bge"]`, "embed", "embed-bge", cty.StringVal("bge")},
		{"pool.x[2]", "x", "x-2", cty.NumberIntVal(2)},
	}
	for _, tc := range tests {
		p := plantest.Pool(tc.addr)
		if p.Name != tc.name || p.ID != tc.id || p.Addr != tc.addr || !p.Key.RawEquals(tc.key) {
			t.Errorf("Pool(%s) = name %q id %q key %#v", tc.addr, p.Name, p.ID, p.Key)
		}
		if p.Health != config.DefaultHealth || p.Restart != config.DefaultRestart || p.Replicas != 1 {
			t.Errorf("Pool(%s) lacks defaults", tc.addr)
		}
	}
}

func TestSetProviderBlockMarksSensitiveVariables(t *testing.T) {
	p := plantest.Pool("pool.chat")
	plantest.SetProviderBlock(t, p, "api_key = var.k", map[string]cty.Value{"k": cty.StringVal("s"), "o": cty.StringVal("x")}, "k")
	vars := p.EvalCtx.Variables["var"]
	if !vars.GetAttr("k").HasMark(config.SensitiveMark) || vars.GetAttr("o").IsMarked() {
		t.Errorf("marks wrong: %#v", vars)
	}
	if _, ok := p.AttrRanges["llamacpp"]; !ok || p.ProviderBody == nil {
		t.Error("provider block not attached")
	}
}
