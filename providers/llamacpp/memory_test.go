package llamacpp

import (
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/llorch/llorch/internal/testgguf"
	"github.com/llorch/llorch/providers"
)

const mib = 1 << 20

// planMemory plans pool (its llamacpp block is block) with a fake engine
// binary and returns the memory estimate, failing on diagnostics.
func planMemory(t *testing.T, pool providers.PoolSpec, block string) (*providers.MemoryEstimate, string) {
	t.Helper()
	bin := t.TempDir()
	fakeServer(t, bin, "llama-server", "version: 4748 (c392e5094)")
	p := newTestProvider(t, testEnv(t, bin), "")
	planned, diags := planPool(t, p, pool, block, nil)
	if diags.HasErrors() || planned == nil {
		t.Fatalf("PlanPool: %s", describe(diags))
	}
	return planned.Memory, planned.MemoryUnknown
}

// kvBytes is llama.cpp's KV cache for layers blocks of a llama model: K and
// V of n_embd_gqa values per token, ctx tokens, f16.
func kvBytes(m testgguf.Model, layers, ctx int) int64 {
	kvHeads := m.HeadsKV
	if kvHeads == 0 {
		kvHeads = m.Heads
	}
	gqa := m.Embedding / m.Heads * kvHeads
	return int64(layers) * int64(ctx) * int64(gqa) * 2 /* K and V */ * 2 /* f16 */
}

// TestMemoryEstimateShapes checks the estimate of header-only GGUFs with
// the shapes of Llama 2 7B, 13B and 70B on the CPU, against what llama.cpp
// (build 4748) allocates for them: the KV cache exactly (it is
// arithmetic), the weights as the file's tensor data.
func TestMemoryEstimateShapes(t *testing.T) {
	for _, tc := range []struct {
		name  string
		model testgguf.Model
		ctx   int
		flags []string
		// compute is the CPU compute buffer llama-server build 4748 printed
		// loading this shape (docs/memory-fit.md), in MiB.
		compute float64
	}{
		{"7B ctx 512", testgguf.Llama7B(), 512, nil, 70.50},
		{"7B ctx 4096 np 4", testgguf.Llama7B(), 4096, []string{"-np", "4"}, 296.01},
		{"13B ctx 4096", testgguf.Llama13B(), 4096, nil, 368.01},
		{"70B ctx 512, grouped-query attention", testgguf.Llama70B(), 512, nil, 161.01},
		{"70B ctx 4096 np 4", testgguf.Llama70B(), 4096, []string{"--parallel=4"}, 584.01},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := testgguf.HeaderOnlyFile(t, tc.model, "model.gguf")
			pool := testPool("file:" + path)
			pool.Ctx, pool.Flags, pool.Devices = tc.ctx, tc.flags, []int{}
			m, why := planMemory(t, pool, "")
			if m == nil {
				t.Fatalf("no estimate: %s", why)
			}
			if len(m.GPUs) != 0 {
				t.Errorf("a CPU-only pool has GPU shares: %+v", m.GPUs)
			}
			if want := kvBytes(tc.model, tc.model.Blocks, tc.ctx); m.Host.KVCache != want {
				t.Errorf("KV cache = %d, want %d (ctx %d, all slots share it)", m.Host.KVCache, want, tc.ctx)
			}
			data := tc.model.DataSize()
			if d := math.Abs(float64(m.Host.Weights-data)) / float64(data); d > 0.01 {
				t.Errorf("weights = %d, want the tensor data, %d (%.1f%% off)", m.Host.Weights, data, 100*d)
			}
			if got := float64(m.Host.Compute) / mib; math.Abs(got-tc.compute)/tc.compute > 0.03 {
				t.Errorf("compute = %.2f MiB, want within 3%% of the %.2f MiB llama.cpp allocates", got, tc.compute)
			}
			if m.MappedFile != path {
				t.Errorf("MappedFile = %q, want %q (mmap is on)", m.MappedFile, path)
			}
			in := m.Inputs
			if in.Layers != tc.model.Blocks || in.Ctx != tc.ctx || in.GPULayers != 0 || in.CacheTypeK != "f16" ||
				in.CacheTypeV != "f16" || !in.Mmap || in.UBatchSize != 512 || !strings.HasPrefix(in.Estimator, "gguf-parser-go") {
				t.Errorf("inputs = %+v", in)
			}
		})
	}
}

// TestMemoryEstimateOffload checks where the parts go when layers are
// offloaded: split over the pool's devices by tensor_split, the KV cache
// with its layers, the token embeddings on the host.
func TestMemoryEstimateOffload(t *testing.T) {
	model := testgguf.Llama7B()
	path := testgguf.HeaderOnlyFile(t, model, "7b.gguf")
	pool := testPool("file:" + path)
	pool.Ctx, pool.Devices = 4096, []int{2, 5}

	t.Run("every layer, split 1:3", func(t *testing.T) {
		m, why := planMemory(t, pool, "n_gpu_layers = 99\ntensor_split = [1, 3]")
		if m == nil {
			t.Fatalf("no estimate: %s", why)
		}
		if len(m.GPUs) != 2 || m.GPUs[0].Index != 2 || m.GPUs[1].Index != 5 {
			t.Fatalf("GPUs = %+v, want devices 2 and 5", m.GPUs)
		}
		kv := m.GPUs[0].KVCache + m.GPUs[1].KVCache
		if want := kvBytes(model, 32, 4096); kv != want || m.Host.KVCache != 0 {
			t.Errorf("KV on GPUs = %d, host %d; want %d on the GPUs", kv, m.Host.KVCache, want)
		}
		// llama.cpp splits the 33 offloaded layers (32 blocks and the
		// output) at the cumulative shares: 9 blocks on the first GPU.
		if m.GPUs[0].KVCache != kvBytes(model, 9, 4096) {
			t.Errorf("KV split %d / %d, want 9 and 23 blocks", m.GPUs[0].KVCache, m.GPUs[1].KVCache)
		}
		embd := int64(model.Embedding) * int64(model.VocabSize) * 2
		if m.Host.Weights != embd {
			t.Errorf("host weights = %d, want the token embeddings, %d", m.Host.Weights, embd)
		}
		if m.Inputs.GPULayers != 33 || !reflect.DeepEqual(m.Inputs.TensorSplit, []float64{0.25, 0.75}) {
			t.Errorf("inputs = %+v", m.Inputs)
		}
	})
	t.Run("half the layers, q8_0 K cache", func(t *testing.T) {
		pool := pool
		pool.Devices = []int{0}
		pool.Flags = []string{"-ctk", "q8_0"}
		m, why := planMemory(t, pool, "n_gpu_layers = 16")
		if m == nil {
			t.Fatalf("no estimate: %s", why)
		}
		if len(m.GPUs) != 1 || m.GPUs[0].Index != 0 {
			t.Fatalf("GPUs = %+v", m.GPUs)
		}
		// n_gpu_layers counts the output layer first: 16 is the output
		// and 15 blocks.
		v := kvBytes(model, 15, 4096) / 2
		k := v * 34 / 64 // q8_0: 34 bytes per 32 values, f16 64
		if m.GPUs[0].KVCache != k+v {
			t.Errorf("GPU KV = %d, want %d (15 blocks, K q8_0, V f16)", m.GPUs[0].KVCache, k+v)
		}
		if m.Inputs.CacheTypeK != "q8_0" || m.Inputs.GPULayers != 16 {
			t.Errorf("inputs = %+v", m.Inputs)
		}
	})
}

func TestMemoryEstimateUnknown(t *testing.T) {
	tiny := tinyLlama(t)
	for _, tc := range []struct {
		name  string
		pool  providers.PoolSpec
		flags []string
		want  string
	}{
		{"an hf: model not downloaded yet", testPool(hfRef), nil, "model not staged yet; run apply once or use a file: ref"},
		{"an unknown cache type", testPool("file:" + tiny), []string{"--cache-type-v", "q3_k"}, `unknown KV cache type "q3_k"`},
		{"a batch size that is not a number", testPool("file:" + tiny), []string{"-ub", "big"}, `-ub "big" is not a whole number`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.pool.Flags = tc.flags
			m, why := planMemory(t, tc.pool, "")
			if m != nil || !strings.Contains(why, tc.want) {
				t.Errorf("estimate %+v, reason %q; want none because %q", m, why, tc.want)
			}
		})
	}
}

func TestReadMemorySettings(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want memorySettings
	}{
		{nil, memorySettings{ctx: 4096, parallel: 1, batch: 2048, ubatch: 512, gpuLayers: -1, cacheK: "f16", cacheV: "f16"}},
		{[]string{"-c", "8192", "--parallel=4", "--n-gpu-layers", "99", "-ts", "3,1", "-ctk", "Q8_0", "-ctv=q4_0", "-fa", "--no-mmap", "-b", "256"},
			memorySettings{ctx: 8192, parallel: 4, batch: 256, ubatch: 256, gpuLayers: 99, tensorSplit: []float64{3, 1},
				cacheK: "q8_0", cacheV: "q4_0", flashAttn: true, noMmap: true}},
		{[]string{"--flash-attn", "off", "-ngl", "auto", "-sm", "none"},
			memorySettings{ctx: 4096, parallel: 1, batch: 2048, ubatch: 512, gpuLayers: math.MaxInt32, cacheK: "f16", cacheV: "f16", splitNone: true}},
	} {
		got, err := readMemorySettings(tc.args)
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("readMemorySettings(%q) = %+v, %v; want %+v", tc.args, got, err, tc.want)
		}
	}
	if _, err := readMemorySettings([]string{"--tensor-split", "1,-2"}); err == nil || !strings.Contains(err.Error(), `--tensor-split "1,-2" is not a list of shares`) {
		t.Errorf("a negative share: %v", err)
	}
}
