package llamacpp

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/llorch/llorch/providers"
)

// planPool plans pool with the engine binary pinned, as the lock file
// pins it: whatever binary the provider finds is the one pinned.
func planPool(t *testing.T, p *Provider, pool providers.PoolSpec, block string, prior *providers.PreparedEngine) (*providers.PlannedPool, providers.Diagnostics) {
	t.Helper()
	req := providers.PlanPoolRequest{Pool: pool, Config: poolBlock(t, block), Prior: prior}
	if cfg, err := p.config(); err == nil {
		_, req.PinnedBinarySHA256, _ = p.plannedVersion(context.Background(), cfg, "")
	}
	return p.PlanPool(context.Background(), req)
}

// An engine binary whose digest is not the pinned one is not run while
// planning: its digest is reported, its version left unknown.
func TestPlanPoolRunsOnlyAPinnedBinary(t *testing.T) {
	bin := t.TempDir()
	server, counter := fakeServer(t, bin, "llama-server", "version: 4748 (c392e5094)")
	p := newTestProvider(t, testEnv(t, bin), "")
	pool := testPool("file:" + writeFile(t, t.TempDir(), "m.gguf", smallGGUF("llama", 512), 0o644))
	sum := sha256Hex(readFile(t, server))
	for _, pinned := range []string{"", strings.Repeat("0", 64)} {
		planned, diags := p.PlanPool(context.Background(), providers.PlanPoolRequest{Pool: pool, Config: poolBlock(t, ""), PinnedBinarySHA256: pinned})
		if len(diags) > 0 {
			t.Fatal(describe(diags))
		}
		if planned.BinarySHA256 != sum || planned.EngineVersion != "" {
			t.Errorf("pinned %q: planned digest %q version %q, want %q and no version", pinned, planned.BinarySHA256, planned.EngineVersion, sum)
		}
	}
	if n := runs(t, counter); n != 0 {
		t.Fatalf("--version ran %d times for a binary not pinned, want 0", n)
	}
	planned, diags := p.PlanPool(context.Background(), providers.PlanPoolRequest{Pool: pool, Config: poolBlock(t, ""), PinnedBinarySHA256: sum})
	if len(diags) > 0 || planned.EngineVersion != "llamacpp-b4748-c392e5094" || runs(t, counter) != 1 {
		t.Errorf("pinned: version %q after %d runs (%s), want the version from one run", planned.EngineVersion, runs(t, counter), describe(diags))
	}
}

func TestPlanPoolBinaryMode(t *testing.T) {
	bin := t.TempDir()
	_, counter := fakeServer(t, bin, "llama-server", "version: 4748 (c392e5094)")
	p := newTestProvider(t, testEnv(t, bin), "")
	model := tinyLlama(t)
	pool := testPool("file:" + model)

	planned, diags := planPool(t, p, pool, "", nil)
	if len(diags) > 0 {
		t.Fatal(describe(diags))
	}
	fi, _ := os.Stat(model)
	if planned.Memory == nil {
		t.Errorf("no memory estimate: %s", planned.MemoryUnknown)
	}
	want := &providers.PlannedPool{
		EngineVersion: "llamacpp-b4748-c392e5094",
		BinarySHA256:  planned.BinarySHA256,
		Memory:        planned.Memory, // memory_test.go checks it
		Model: &providers.ModelInfo{Path: model, SizeBytes: fi.Size(), Architecture: "llama", Parameters: tinyLlamaParams,
			Quantization: "F16", ContextLength: 256},
	}
	if !reflect.DeepEqual(planned, want) {
		t.Errorf("planned =\n %+v %+v\nwant\n %+v %+v", *planned, *planned.Model, *want, *want.Model)
	}
	if planned.BinarySHA256 == "" {
		t.Error("PlanPool did not report the binary's digest")
	}

	// After Ensure the digest is known to the plan, and --version is not run again.
	pe, diags := ensure(t, p, pool, nil)
	if len(diags) > 0 {
		t.Fatal(describe(diags))
	}
	planned, _ = planPool(t, p, pool, "", pe)
	if planned.Model.SHA256 != pe.ModelSHA256 || len(planned.RequiresReplace) != 0 {
		t.Errorf("second plan: sha %q, requires replace %v", planned.Model.SHA256, planned.RequiresReplace)
	}
	if n := runs(t, counter); n != 1 {
		t.Errorf("--version ran %d times over two plans and an Ensure, want 1", n)
	}

	// An upgraded binary forces replacement.
	planned, _ = planPool(t, p, pool, "", &providers.PreparedEngine{EngineVersion: "llamacpp-b4000-aaaaaaaaa"})
	if len(planned.RequiresReplace) != 1 || pathString(planned.RequiresReplace[0]) != "engine_version" {
		t.Errorf("RequiresReplace = %v, want [engine_version]", planned.RequiresReplace)
	}
}

func TestPlanPoolErrors(t *testing.T) {
	bin := t.TempDir()
	fakeServer(t, bin, "llama-server", "version: 4748 (c392e5094)")
	notGGUF := writeFile(t, t.TempDir(), "m.bin", []byte("PK\x03\x04zip"), 0o644)
	model := writeFile(t, t.TempDir(), "m.gguf", smallGGUF("llama", 512), 0o644)
	tests := []struct {
		name        string
		env         []string
		pool        providers.PoolSpec
		prepare     func(t *testing.T, p *Provider)
		wantSummary string
		want        []string
	}{
		{name: "a missing binary", env: testEnv(t, t.TempDir()), pool: testPool("file:" + model),
			wantSummary: "Engine Binary Not Found", want: []string{`llama-server binary "llama-server" not found (looked on PATH:`}},
		{name: "a missing model file", env: testEnv(t, bin), pool: testPool("file:/nonexistent/m.gguf"),
			wantSummary: "Model File Not Found", want: []string{"model file /nonexistent/m.gguf not found"}},
		{name: "a model file that is not GGUF", env: testEnv(t, bin), pool: testPool("file:" + notGGUF),
			wantSummary: "Model Is Not GGUF", want: []string{`it starts with "PK\x03\x04", not "GGUF"`}},
		{name: "a cached digest that contradicts sha256", env: testEnv(t, bin),
			pool: func() providers.PoolSpec {
				pool := testPool("file:" + model)
				pool.Model.SHA256 = strings.Repeat("e", 64)
				return pool
			}(),
			prepare: func(t *testing.T, p *Provider) {
				if _, diags := ensure(t, p, testPool("file:"+model), nil); len(diags) > 0 {
					t.Fatal(describe(diags))
				}
			},
			wantSummary: "Model Checksum Mismatch", want: []string{"expected " + strings.Repeat("e", 64), "got " + sha256Hex(smallGGUF("llama", 512))}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := newTestProvider(t, tc.env, "")
			if tc.prepare != nil {
				tc.prepare(t, p)
			}
			_, diags := planPool(t, p, tc.pool, "", nil)
			d := oneDiag(t, diags, providers.Error, tc.want...)
			if d.Summary != tc.wantSummary {
				t.Errorf("summary = %q, want %q", d.Summary, tc.wantSummary)
			}
		})
	}
}

func TestPlanPoolWarnings(t *testing.T) {
	bin := t.TempDir()
	fakeServer(t, bin, "llama-server", "version: 4748 (c392e5094)")
	model := tinyLlama(t)

	tests := []struct {
		name     string
		path     []string
		ctx      int
		devices  []int
		block    string
		want     []string // one detail fragment per expected warning, in order
		wantPath []string
	}{
		// Whether the model fits the GPUs is core's question (the plan's
		// fit table, from planned.Memory): no provider warning about it.
		{name: "a model on a GPU", path: []string{bin}, devices: []int{0}, block: "n_gpu_layers = 99"},
		{name: "a context above the trained length", path: []string{bin}, ctx: 8192,
			want:     []string{"ctx = 8192 is above the context length this llama model was trained with (256 tokens)"},
			wantPath: []string{"ctx"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := newTestProvider(t, testEnv(t, tc.path...), "")
			pool := testPool("file:" + model)
			pool.Ctx = tc.ctx
			pool.Devices = tc.devices
			planned, diags := planPool(t, p, pool, tc.block, nil)
			if planned == nil || planned.Model == nil {
				t.Fatalf("no model info: %s", describe(diags))
			}
			if len(diags) != len(tc.want) {
				t.Fatalf("got %d diagnostics, want %d:\n%s", len(diags), len(tc.want), describe(diags))
			}
			for i, d := range diags {
				if d.Severity != providers.Warning || !strings.Contains(d.Detail, tc.want[i]) || pathString(d.Attribute) != tc.wantPath[i] {
					t.Errorf("diagnostic %d = %s, want a warning containing %q at %q", i, describe(diags[i:i+1]), tc.want[i], tc.wantPath[i])
				}
			}
		})
	}
}

func TestPlanPoolShowsADownloadedModel(t *testing.T) {
	bin := t.TempDir()
	fakeServer(t, bin, "llama-server", "version: 4748 (c392e5094)")
	p := newTestProvider(t, testEnv(t, bin), "")
	cfg, _ := p.config()
	data := smallGGUF("qwen2", 32768)
	dest := writeFile(t, filepath.Join(cfg.CacheDir, "models", "hf", "org", "repo", "main"), "model.gguf", data, 0o644)

	planned, diags := planPool(t, p, testPool(hfRef), "", nil)
	if len(diags) > 0 {
		t.Fatal(describe(diags))
	}
	if planned.Model == nil || planned.Model.Path != dest || planned.Model.Architecture != "qwen2" || planned.Model.ContextLength != 32768 {
		t.Errorf("model = %+v", planned.Model)
	}
}
