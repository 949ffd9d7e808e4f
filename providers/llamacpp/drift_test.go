package llamacpp

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/llorch/llorch/providers"
)

// After Ensure, PlanPool tells a touched binary or model (same bytes,
// new mtime) from one with new bytes: it re-hashes a file a replica runs
// once its size or mtime changed, and reports the digest the plan compares
// with the recorded one.
func TestPlanPoolRehashesFilesThatChangedOnDisk(t *testing.T) {
	bin := t.TempDir()
	server, _ := fakeServer(t, bin, "llama-server", "version: 4748 (c392e5094)")
	p := newTestProvider(t, testEnv(t, bin), "")
	model := tinyLlama(t)
	pool := testPool("file:" + model)
	prior, diags := p.Ensure(context.Background(), providers.EnsureRequest{Pool: pool, Config: poolBlock(t, "")})
	if len(diags) > 0 {
		t.Fatal(describe(diags))
	}
	if prior.BinarySHA256 != sha256Hex(readFile(t, server)) {
		t.Fatalf("Ensure's binary digest %q, want the sha256 of %s", prior.BinarySHA256, server)
	}

	later := time.Now().Add(time.Hour)
	for _, f := range []string{server, model} {
		if err := os.Chtimes(f, later, later); err != nil {
			t.Fatal(err)
		}
	}
	planned, diags := planPool(t, p, pool, "", prior)
	if len(diags) > 0 {
		t.Fatal(describe(diags))
	}
	if planned.BinarySHA256 != prior.BinarySHA256 || planned.Model.SHA256 != prior.ModelSHA256 {
		t.Errorf("touched files: planned digests %q %q, want the prepared ones %q %q",
			planned.BinarySHA256, planned.Model.SHA256, prior.BinarySHA256, prior.ModelSHA256)
	}

	// New bytes, and a stat that the digest cache has not seen.
	newModel := append(tinyLlamaBytes(t), 0)
	if err := os.WriteFile(model, newModel, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(server, append(readFile(t, server), '\n'), 0o755); err != nil {
		t.Fatal(err)
	}
	planned, diags = planPool(t, p, pool, "", prior)
	if len(diags) > 0 {
		t.Fatal(describe(diags))
	}
	if want := sha256Hex(readFile(t, server)); planned.BinarySHA256 != want {
		t.Errorf("rewritten binary: planned digest %q, want %q", planned.BinarySHA256, want)
	}
	if want := sha256Hex(newModel); planned.Model.SHA256 != want {
		t.Errorf("rewritten model: planned digest %q, want %q", planned.Model.SHA256, want)
	}

	// Without a prior (a pool not applied yet), PlanPool hashes the
	// binary (the lock file pins it) but not the model.
	fresh := newTestProvider(t, testEnv(t, bin), "")
	planned, diags = planPool(t, fresh, pool, "", nil)
	if len(diags) > 0 {
		t.Fatal(describe(diags))
	}
	if planned.BinarySHA256 != sha256Hex(readFile(t, server)) || planned.Model.SHA256 != "" {
		t.Errorf("new pool: planned digests %q %q, want the binary's only", planned.BinarySHA256, planned.Model.SHA256)
	}
}
