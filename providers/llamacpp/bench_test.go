package llamacpp

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	ggufparser "github.com/gpustack/gguf-parser-go"

	"github.com/llorch/llorch/internal/testgguf"
	"github.com/llorch/llorch/providers"
	"github.com/llorch/llorch/providers/sdk/gguf"
	"github.com/llorch/llorch/providers/sdk/sdktest"
)

// BenchmarkEnsureCached is the Ensure of an apply that changes nothing: the
// binary's version and the model's digest are cached, so it neither runs
// --version nor hashes the model (the test fails if it does).
func BenchmarkEnsureCached(b *testing.B) {
	bin := b.TempDir()
	_, counter := fakeServer(b, bin, "llama-server", "version: 4748 (c392e5094)")
	p := newTestProvider(b, testEnv(b, bin), "")
	pool := testPool("file:" + tinyLlama(b))
	pool.Model.SHA256 = sha256Hex(tinyLlamaBytes(b))
	req := providers.EnsureRequest{Pool: pool, Config: poolBlock(b, "n_gpu_layers = 99")}
	if _, diags := p.Ensure(context.Background(), req); diags.HasErrors() {
		b.Fatal(describe(diags))
	}
	var ev sdktest.Events
	req.Progress = ev.Add
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, diags := p.Ensure(context.Background(), req); diags.HasErrors() {
			b.Fatal(describe(diags))
		}
	}
	b.StopTimer()
	if n := runs(b, counter); n != 1 {
		b.Fatalf("--version ran %d times, want 1", n)
	}
	if n := ev.Stages()["verify"]; n != 0 {
		b.Fatalf("the model was hashed %d times", n)
	}
}

// BenchmarkPlanPool plans a binary-mode pool with a local model.
func BenchmarkPlanPool(b *testing.B) {
	bin := b.TempDir()
	fakeServer(b, bin, "llama-server", "version: 4748 (c392e5094)")
	p := newTestProvider(b, testEnv(b, bin), "")
	req := providers.PlanPoolRequest{Pool: testPool("file:" + tinyLlama(b)), Config: poolBlock(b, "")}
	if _, diags := p.PlanPool(context.Background(), req); diags.HasErrors() {
		b.Fatal(describe(diags))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, diags := p.PlanPool(context.Background(), req); diags.HasErrors() {
			b.Fatal(describe(diags))
		}
	}
}

// BenchmarkPlanPoolRepeated is the provider's share of a no-change plan of
// 1000 binary-mode pools over 10 distinct local models, with nvidia-smi on
// PATH and the engine version already in the cache directory. "command"
// starts each plan with a fresh provider, as each llorch command does (so
// each op reads 10 model headers and runs nvidia-smi once); "warm" plans
// again with the same provider.
func BenchmarkPlanPoolRepeated(b *testing.B) {
	const pools, models = 1000, 10
	bin := b.TempDir()
	_, versionRuns := fakeServer(b, bin, "llama-server", "version: 4748 (c392e5094)")
	smiRuns := filepath.Join(bin, "nvidia-smi.runs")
	writeFile(b, bin, "nvidia-smi", []byte("#!/bin/sh\necho run >> '"+smiRuns+"'\nprintf '0, 81920\\n1, 81920\\n'\n"), 0o755)
	env := testEnv(b, bin)
	cache := filepath.Join(b.TempDir(), "cache")
	// Each model is a copy of the generated TinyLlama's metadata, tokenizer
	// included, so reading it costs what reading a real header costs.
	meta, err := gguf.ReadFile(tinyLlama(b))
	if err != nil {
		b.Fatal(err)
	}
	header := tinyLlamaBytes(b)[:meta.HeaderSize]
	dir := b.TempDir()
	for i := range models {
		writeFile(b, dir, fmt.Sprintf("model-%d.gguf", i), header, 0o644)
	}
	block := poolBlock(b, "")
	prior := &providers.PreparedEngine{EngineVersion: "llamacpp-b4748-c392e5094"}
	reqs := make([]providers.PlanPoolRequest, pools)
	for i := range reqs {
		pool := testPool("file:" + filepath.Join(dir, fmt.Sprintf("model-%d.gguf", i%models)))
		pool.ID, pool.Port = fmt.Sprintf("pool-%d", i), 8000+i
		reqs[i] = providers.PlanPoolRequest{Pool: pool, Config: block, Prior: prior}
	}
	newProvider := func(b *testing.B) *Provider { return newTestProvider(b, env, "", WithCacheDir(cache)) }
	planAll := func(b *testing.B, p *Provider) {
		for _, req := range reqs {
			planned, diags := p.PlanPool(context.Background(), req)
			if len(diags) > 0 || planned.Model == nil || len(planned.RequiresReplace) > 0 {
				b.Fatalf("%s: %+v %s", req.Pool.ID, planned, describe(diags))
			}
		}
	}
	b.Run("command", func(b *testing.B) {
		planAll(b, newProvider(b)) // records the engine version in the cache directory
		os.Remove(smiRuns)
		b.ReportAllocs()
		b.ResetTimer()
		for b.Loop() {
			planAll(b, newProvider(b))
		}
		b.StopTimer()
		b.ReportMetric(float64(runs(b, smiRuns))/float64(b.N), "nvidia-smi/op")
	})
	b.Run("warm", func(b *testing.B) {
		p := newProvider(b)
		planAll(b, p)
		os.Remove(smiRuns)
		b.ReportAllocs()
		b.ResetTimer()
		for b.Loop() {
			planAll(b, p)
		}
		b.StopTimer()
		b.ReportMetric(float64(runs(b, smiRuns))/float64(b.N), "nvidia-smi/op")
	})
	if n := runs(b, versionRuns); n != 1 {
		b.Fatalf("--version ran %d times, want 1", n)
	}
}

// BenchmarkMemoryEstimate is what the memory estimate adds to planning one
// pool shape: parsing a 7B model's GGUF header (a command parses each file
// once) and running the estimator. Pools of the same shape share PlanPool's
// answer, so a thousand-pool plan of a few models pays this a few times.
func BenchmarkMemoryEstimate(b *testing.B) {
	path := testgguf.HeaderOnlyFile(b, testgguf.Llama7B(), "7b.gguf")
	p := New()
	pool := providers.PoolSpec{Addr: "pool.chat", Model: providers.ModelRef{Ref: "file:" + path}, Ctx: 4096, Devices: []int{0}}
	n := 99
	info := &providers.ModelInfo{Path: path}
	for b.Loop() {
		p.parsed = flight[fileKey, *ggufparser.GGUFFile]{max: maxParsed}
		if m, why := p.memoryEstimate(b.Context(), pool, poolConfig{NGPULayers: &n}, info); m == nil {
			b.Fatal(why)
		}
	}
}
