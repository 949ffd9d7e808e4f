package plan

import (
	"strings"
	"testing"

	"github.com/llorch/llorch/plan/plantest"
	"github.com/llorch/llorch/providers"
	"github.com/llorch/llorch/providers/providertest"
	"github.com/llorch/llorch/state"
)

// Refresh sees a file change on disk by its size and mtime; whether that
// is drift is up to its bytes: the digest the provider planned against the
// one recorded when the replicas started.
func TestDiffReplacesOnlyWhenTheBytesDiffer(t *testing.T) {
	const (
		binA  = "aaaaaaaaaaaa1111111111111111111111111111111111111111111111111111"
		binB  = "bbbbbbbbbbbb2222222222222222222222222222222222222222222222222222"
		mdlA  = "cccccccccccc3333333333333333333333333333333333333333333333333333"
		mdlB  = "dddddddddddd4444444444444444444444444444444444444444444444444444"
		bin   = "/opt/llama/llama-server"
		model = "/models/m.gguf"
	)
	tests := []struct {
		name              string
		recBin, recModel  string // recorded digests
		planBin, planMdl  string // planned digests
		binChanged, mdlCh bool   // what refresh saw
		wantDrift         []string
	}{
		{name: "touched binary, same bytes", recBin: binA, planBin: binA, binChanged: true},
		{name: "touched model, same bytes", recModel: mdlA, planMdl: mdlA, mdlCh: true},
		{name: "binary with new bytes", recBin: binA, planBin: binB, binChanged: true,
			wantDrift: []string{"the engine binary /opt/llama/llama-server changed on disk after the replica started (sha256 aaaaaaaaaaaa → bbbbbbbbbbbb)"}},
		{name: "model with new bytes", recModel: mdlA, planMdl: mdlB, mdlCh: true,
			wantDrift: []string{"the model file /models/m.gguf changed on disk after the replica started (sha256 cccccccccccc → dddddddddddd)"}},
		{name: "no recorded digest: the change on disk decides", planBin: binB, binChanged: true,
			wantDrift: []string{"the engine binary changed on disk after the replica started"}},
		{name: "no planned digest: the change on disk decides", recModel: mdlA, mdlCh: true,
			wantDrift: []string{"the model file changed on disk after the replica started"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			planned := &providers.PlannedPool{EngineVersion: providertest.EngineVersion, BinarySHA256: tt.planBin,
				Model: &providers.ModelInfo{Path: model, SHA256: tt.planMdl}}
			d := testDesired(t, plantest.Pool("pool.chat"), planned)
			sp := recorded(t, d)
			sp.Prepared.BinaryPath, sp.Prepared.BinarySHA256 = bin, tt.recBin
			sp.Prepared.ModelPath, sp.Prepared.ModelSHA256 = model, tt.recModel
			obs := Observations{"pool.chat/r0": {Status: state.StatusReady, Alive: true,
				BinaryChanged: tt.binChanged, ModelChanged: tt.mdlCh}}
			p, diags := Diff([]*Desired{d}, stateWith(map[string]*state.Pool{"pool.chat": sp}), obs, Options{})
			if diags.HasErrors() {
				t.Fatal(diags.Error())
			}
			var drift []string
			for _, dr := range p.Drift {
				drift = append(drift, dr.Reason)
			}
			if strings.Join(drift, "\n") != strings.Join(tt.wantDrift, "\n") {
				t.Errorf("drift %q, want %q", drift, tt.wantDrift)
			}
			if replaced := len(p.Changes) == 1 && p.Changes[0].Action.IsReplace(); replaced != (len(tt.wantDrift) > 0) {
				t.Errorf("changes %v, want a replacement: %v", p.Changes, len(tt.wantDrift) > 0)
			}
		})
	}
}
