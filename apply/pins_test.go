package apply_test

import (
	"context"
	"strings"
	"testing"

	"github.com/llorch/llorch/apply"
	"github.com/llorch/llorch/plan"
	"github.com/llorch/llorch/providers"
	"github.com/llorch/llorch/providers/providertest"
)

// Ensure may download or build what the plan could not know: apply checks
// what it prepared against the lock file before it starts anything, and
// PinsOf then says what runs.
func TestApplyRefusesWhatEnsurePreparedUnlessPinned(t *testing.T) {
	const binSum, modelSum, other = "aaaaaaaaaaaa0000000000000000000000000000000000000000000000000000",
		"bbbbbbbbbbbb0000000000000000000000000000000000000000000000000000",
		"cccccccccccc0000000000000000000000000000000000000000000000000000"
	pinned := &providers.Pins{
		Engines: map[string]providers.EnginePin{"llamacpp": {SHA256: binSum}},
		Models:  map[string]providers.ModelPin{"file:m.gguf": {SHA256: modelSum}},
	}
	// An hf: ref resolved to another commit than the lock file recorded.
	pinnedRev := &providers.Pins{
		Engines: map[string]providers.EnginePin{"llamacpp": {SHA256: binSum}},
		Models:  map[string]providers.ModelPin{"file:m.gguf": {SHA256: modelSum, Revision: "1111111111112222"}},
	}
	tests := []struct {
		name       string
		bin, model string
		revision   string
		pins       *providers.Pins
		mode       providers.LockMode
		want       string // "" when the pool starts
	}{
		{name: "as pinned", bin: binSum, model: modelSum, pins: pinned},
		{name: "nothing pinned", bin: binSum, model: modelSum, revision: "5555", pins: &providers.Pins{}},
		{name: "other binary", bin: other, model: modelSum, pins: pinned,
			want: "the llamacpp engine binary /opt/llama-server has sha256 cccccccccccc, but .llorch.lock.hcl pins aaaaaaaaaaaa, so it is not started; if it is the one you want, run llorch apply -lockfile=upgrade to pin it"},
		{name: "other model", bin: binSum, model: "sha256:" + other, pins: pinned,
			want: "the model file:m.gguf has sha256 cccccccccccc, but .llorch.lock.hcl pins bbbbbbbbbbbb, so it is not served; if these are the bytes you want, run llorch apply -lockfile=upgrade to pin them"},
		{name: "a moved revision", bin: binSum, model: "sha256:" + other, revision: "3333333333334444", pins: pinnedRev,
			want: "the model file:m.gguf has sha256 cccccccccccc (revision 333333333333), but .llorch.lock.hcl pins bbbbbbbbbbbb (revision 111111111111), so it is not served"},
		{name: "other binary, upgrade", bin: other, model: other, pins: pinned, mode: providers.LockUpgrade},
		{name: "binary not pinned, readonly", bin: binSum, model: modelSum, pins: &providers.Pins{}, mode: providers.LockReadonly,
			want: "the llamacpp engine binary /opt/llama-server (sha256 aaaaaaaaaaaa) is not pinned in .llorch.lock.hcl, and with -lockfile=readonly only pinned engine binaries run"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.prov.EnsureFunc = func(_ context.Context, req providers.EnsureRequest) (*providers.PreparedEngine, providers.Diagnostics) {
				pe := providertest.DefaultEngine(req.Pool)
				pe.BinaryPath, pe.BinarySHA256, pe.ModelSHA256, pe.ModelRevision = "/opt/llama-server", tc.bin, tc.model, tc.revision
				return &pe, nil
			}
			cfg := configOf(pool("pool.chat", model("file:m.gguf")))
			opts := e.options(cfg, 0)
			opts.Pins, opts.LockMode = tc.pins, tc.mode
			st, err := apply.Run(e.ctx, e.plan(cfg, plan.Options{}), e.deps(), opts)
			if tc.want != "" {
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("Run = %v\nwant an error containing %q", err, tc.want)
				}
				if len(e.fake.launches) != 0 {
					t.Errorf("%d engines launched, want none", len(e.fake.launches))
				}
				return
			}
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			got := apply.PinsOf(st)
			if got.Engines["llamacpp"].SHA256 != tc.bin || got.Models["file:m.gguf"].SHA256 != strings.TrimPrefix(tc.model, "sha256:") ||
				got.Models["file:m.gguf"].Revision != tc.revision {
				t.Errorf("PinsOf = %+v, want what was prepared", got)
			}
		})
	}
}
