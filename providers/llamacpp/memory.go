package llamacpp

import (
	"context"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"

	ggufparser "github.com/gpustack/gguf-parser-go"

	"github.com/llorch/llorch/providers"
)

// estimatorName names the estimator in the plan's formula inputs.
const estimatorName = "gguf-parser-go v0.28.2 (EstimateLLaMACppRun)"

// The defaults of llama-server for the settings that size memory, where a
// pool does not set them. They are build 4748's (common_params): -c 4096,
// -np 1, -ngl unset (no offload), -b 2048, -ub 512, f16 caches, mmap on,
// no flash attention. Newer builds changed some of them (-np auto, -ngl
// auto); a pool that sets them explicitly gets an estimate that does not
// depend on the build.
const (
	defaultCtx        = 4096
	defaultParallel   = 1
	defaultBatch      = 2048
	defaultUBatch     = 512
	defaultCacheType  = "f16"
	notStagedYetShort = "model not staged yet; run apply once or use a file: ref"
)

// memorySettings are the engine settings that size memory, read from the
// arguments the engine will get, so the estimate and the engine never
// disagree about them.
type memorySettings struct {
	ctx, parallel, batch, ubatch int
	gpuLayers                    int // -1: not set
	tensorSplit                  []float64
	cacheK, cacheV               string
	flashAttn, noMmap            bool
	splitNone                    bool // --split-mode none: everything on the main GPU
}

// readMemorySettings scans args (buildArgs' output) for the settings that
// size memory; the last spelling of a flag wins, as in llama-server.
func readMemorySettings(args []string) (memorySettings, error) {
	s := memorySettings{ctx: defaultCtx, parallel: defaultParallel, batch: defaultBatch, ubatch: defaultUBatch,
		gpuLayers: -1, cacheK: defaultCacheType, cacheV: defaultCacheType}
	for i := 0; i < len(args); i++ {
		name, value, inline := strings.Cut(args[i], "=")
		name = canonicalFlag(name)
		next := func() string {
			if inline {
				return value
			}
			if i+1 < len(args) {
				i++
				return args[i]
			}
			return ""
		}
		intVal := func(dst *int) error {
			v := next()
			n, err := strconv.Atoi(v)
			if err != nil {
				return fmt.Errorf("%s %q is not a whole number", name, v)
			}
			*dst = n
			return nil
		}
		var err error
		switch name {
		case "-c", "--ctx-size":
			err = intVal(&s.ctx)
		case "-np", "--parallel":
			err = intVal(&s.parallel)
		case "-b", "--batch-size":
			err = intVal(&s.batch)
		case "-ub", "--ubatch-size":
			err = intVal(&s.ubatch)
		case "-ngl", "--ngl", "--gpu-layers", "--n-gpu-layers":
			v := next()
			switch v {
			case "auto", "all":
				s.gpuLayers = math.MaxInt32
			default:
				n, perr := strconv.Atoi(v)
				if perr != nil {
					err = fmt.Errorf("%s %q is not a whole number", name, v)
				}
				s.gpuLayers = n
			}
		case "-ts", "--tensor-split":
			v := next()
			s.tensorSplit = nil
			for _, part := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == '/' }) {
				f, perr := strconv.ParseFloat(strings.TrimSpace(part), 64)
				if perr != nil || f < 0 {
					err = fmt.Errorf("%s %q is not a list of shares", name, v)
					break
				}
				s.tensorSplit = append(s.tensorSplit, f)
			}
		case "-ctk", "--cache-type-k":
			s.cacheK = strings.ToLower(next())
		case "-ctv", "--cache-type-v":
			s.cacheV = strings.ToLower(next())
		case "-fa", "--flash-attn":
			// Build 4748 takes no value; newer builds take on|off|auto.
			s.flashAttn = true
			v := value
			if !inline && i+1 < len(args) && !strings.HasPrefix(args[i+1], "-") {
				i++
				v = args[i]
			}
			if v == "off" || v == "false" || v == "0" {
				s.flashAttn = false
			}
		case "--no-mmap":
			s.noMmap = true
		case "-sm", "--split-mode":
			s.splitNone = next() == "none"
		}
		if err != nil {
			return s, err
		}
	}
	if s.ubatch > s.batch {
		s.ubatch = s.batch
	}
	return s, nil
}

// cacheTypes are the KV cache types llama-server accepts (-ctk, -ctv).
var cacheTypes = map[string]ggufparser.GGMLType{
	"f32": ggufparser.GGMLTypeF32, "f16": ggufparser.GGMLTypeF16, "bf16": ggufparser.GGMLTypeBF16,
	"q8_0": ggufparser.GGMLTypeQ8_0, "q4_0": ggufparser.GGMLTypeQ4_0, "q4_1": ggufparser.GGMLTypeQ4_1,
	"iq4_nl": ggufparser.GGMLTypeIQ4_NL, "q5_0": ggufparser.GGMLTypeQ5_0, "q5_1": ggufparser.GGMLTypeQ5_1,
}

// memoryEstimate estimates what one replica of pool needs, by device, from
// the model's GGUF header (parsed once per command and file version) and
// the engine arguments. It returns nil and the reason when it cannot.
//
// The numbers are gguf-parser-go's llama.cpp estimator's, mapped onto
// llorch's parts: weights, KV cache, compute buffers, and "other" (the
// estimator's footprint: output buffer, tokenizer, load overhead). Devices
// follow the pool: devices = [] or no offloaded layer is host only (the
// few MiB of GPU compute buffer a CUDA build allocates even at -ngl 0 are
// left out); otherwise one GPU per entry of devices (one when unset).
func (p *Provider) memoryEstimate(ctx context.Context, pool providers.PoolSpec, pc poolConfig, info *providers.ModelInfo) (*providers.MemoryEstimate, string) {
	if info == nil {
		return nil, notStagedYetShort
	}
	st, err := readMemorySettings(buildArgs(pool, pc, info.Path))
	if err != nil {
		return nil, "cannot read the engine settings: " + err.Error()
	}
	gf, err := p.parsedGGUF(ctx, info.Path)
	if err != nil {
		return nil, "cannot parse the model's GGUF header: " + err.Error()
	}
	arch := gf.Architecture()
	if arch.Type != "model" {
		return nil, fmt.Sprintf("the GGUF file is a %s, not a model", arch.Type)
	}
	layers := int(arch.BlockCount)

	gpus := 1
	switch {
	case pool.CPUOnly():
		gpus = 0
		st.gpuLayers = 0
	case len(pool.Devices) > 0:
		gpus = len(pool.Devices)
	case len(st.tensorSplit) > 0:
		gpus = len(st.tensorSplit)
	}
	if st.splitNone && gpus > 1 {
		gpus = 1
	}
	ngl := max(st.gpuLayers, 0)
	ngl = min(ngl, layers+1) // blocks plus the output layer
	if gpus == 0 || ngl == 0 {
		gpus, ngl = 0, 0
	}

	opts := []ggufparser.GGUFRunEstimateOption{
		ggufparser.WithLLaMACppContextSize(int32(min(st.ctx, math.MaxInt32))),
		ggufparser.WithParallelSize(int32(max(st.parallel, 1))),
		ggufparser.WithLLaMACppLogicalBatchSize(int32(st.batch)),
		ggufparser.WithLLaMACppPhysicalBatchSize(int32(st.ubatch)),
		ggufparser.WithLLaMACppOffloadLayers(uint64(ngl)),
	}
	for _, c := range []struct {
		name string
		opt  func(ggufparser.GGMLType) ggufparser.GGUFRunEstimateOption
	}{{st.cacheK, ggufparser.WithLLaMACppCacheKeyType}, {st.cacheV, ggufparser.WithLLaMACppCacheValueType}} {
		t, ok := cacheTypes[c.name]
		if !ok {
			return nil, fmt.Sprintf("unknown KV cache type %q", c.name)
		}
		opts = append(opts, c.opt(t))
	}
	if st.flashAttn {
		opts = append(opts, ggufparser.WithFlashAttention())
	}
	split := shares(st.tensorSplit, gpus)
	if gpus > 1 {
		opts = append(opts, ggufparser.WithTensorSplitFraction(cumulative(split)))
	}
	est := gf.EstimateLLaMACppRun(opts...)

	part := func(d ggufparser.LLaMACppRunDeviceUsage, index int) providers.DeviceMemory {
		return providers.DeviceMemory{
			Index:   index,
			Weights: int64(d.Weight.Sum()),
			KVCache: int64(d.KVCache.Sum()),
			Compute: int64(d.Computation.Sum()),
			Other:   int64(d.Footprint),
		}
	}
	host := part(est.Devices[0], -1)
	if gpus == 0 {
		calibrateCPU(&host, arch, est, st)
	}
	if !est.Devices[0].HandleOutputLayer {
		// The estimator counts the output layer on the host too, as part
		// of the mapped file; llama.cpp's CPU buffer does not hold it once
		// it is offloaded.
		host.Weights -= int64(est.Devices[0].Weight.Output)
	}
	out := &providers.MemoryEstimate{
		Host: host,
		Inputs: providers.MemoryInputs{
			Estimator: estimatorName, Layers: layers, GPULayers: ngl, Ctx: int(est.ContextSize),
			Parallel: max(st.parallel, 1), CacheTypeK: st.cacheK, CacheTypeV: st.cacheV,
			FlashAttention: est.FlashAttention, Mmap: !st.noMmap,
			BatchSize: int(est.LogicalBatchSize), UBatchSize: int(est.PhysicalBatchSize),
		},
	}
	if gpus > 1 {
		out.Inputs.TensorSplit = split
	}
	if !st.noMmap {
		out.MappedFile = info.Path
	}
	for j := 0; j < gpus && j+1 < len(est.Devices); j++ {
		index := j
		if j < len(pool.Devices) {
			index = pool.Devices[j]
		}
		out.GPUs = append(out.GPUs, part(est.Devices[j+1], index))
	}
	return out, ""
}

// calibrateCPU replaces the estimator's compute buffer and "other" of a
// replica that runs on the CPU alone with figures measured on llama.cpp
// build 4748 (docs/memory-fit.md): the estimator sizes the host's compute
// buffer as if a GPU took the large matrix products (off by -70 % to -81 %
// at ctx 4096 on Llama 2 7B to 70B shapes), and charges a logits buffer
// for a whole batch (62.5 MiB for a 32000-token vocabulary) where the
// server reserves one row per slot.
//
// The CPU compute buffer is the largest of three stages of the graph, in
// f32: attention scores (ctx × ubatch × heads) plus about 4.75 embedding
// rows per token, the feed-forward (gate and up, 2 × ubatch × n_ff) plus 3
// embedding rows, and the logits (ubatch × vocab) plus 1. It matched the
// eight measured loads within 3 %. It holds for dense, causal models
// without flash attention; others keep the estimator's figures.
func calibrateCPU(host *providers.DeviceMemory, arch ggufparser.GGUFArchitecture, est ggufparser.LLaMACppRunEstimate, st memorySettings) {
	if st.flashAttn || arch.ExpertCount > 0 || !arch.AttentionCausal || arch.EmbeddingLength == 0 || arch.AttentionHeadCount == 0 {
		return
	}
	var ff uint64
	for _, f := range arch.FeedForwardLength {
		ff = max(ff, f)
	}
	ub := min(uint64(max(est.PhysicalBatchSize, 1)), est.ContextSize)
	e := float64(ub * arch.EmbeddingLength * 4)
	kq := float64(est.ContextSize * ub * arch.AttentionHeadCount * 4)
	ffn := float64(2 * ub * ff * 4)
	logits := float64(ub * arch.VocabularyLength * 4)
	host.Compute = int64(max(kq+4.75*e, ffn+3*e, logits+e))

	// The estimator's footprint holds an output buffer of a batch of
	// embeddings and logits; llama-server reserves logits for one token
	// per slot.
	batchOutputs := (arch.EmbeddingLength + arch.VocabularyLength) * ub * 4
	slotOutputs := arch.VocabularyLength * uint64(max(st.parallel, 1)) * 4
	if uint64(host.Other) >= batchOutputs {
		host.Other += int64(slotOutputs) - int64(batchOutputs)
	}
}

// shares is the pool's tensor split normalized to sum 1 over n GPUs; an
// even split when it sets none (llama.cpp splits by free memory then).
func shares(split []float64, n int) []float64 {
	if n <= 0 {
		return nil
	}
	out := make([]float64, n)
	var sum float64
	for i := range out {
		if i < len(split) {
			out[i] = split[i]
		}
		sum += out[i]
	}
	if sum == 0 {
		for i := range out {
			out[i] = 1 / float64(n)
		}
		return out
	}
	for i := range out {
		out[i] /= sum
	}
	return out
}

// cumulative turns shares into the cumulative fractions the estimator
// takes, ending in exactly 1.
func cumulative(s []float64) []float64 {
	out := make([]float64, len(s))
	var acc float64
	for i, f := range s {
		acc += f
		out[i] = acc
	}
	out[len(out)-1] = 1
	return out
}

// parsedGGUF parses path's GGUF header once per command and version of
// the file, however many pools use it.
func (p *Provider) parsedGGUF(ctx context.Context, path string) (*ggufparser.GGUFFile, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	key := fileKey{path: path, size: fi.Size(), mtime: fi.ModTime().UnixNano()}
	return p.parsed.do(ctx, key, func(context.Context) (*ggufparser.GGUFFile, bool, error) {
		// SkipLargeMetadata leaves the tokenizer's token lists unread: the
		// estimate needs their lengths only. Skipping them through a
		// mapping, not read calls, is fifteen times faster (2 ms for a 7B
		// header, BenchmarkMemoryEstimate); the file is a staged model
		// nothing writes to while a command runs.
		gf, err := ggufparser.ParseGGUFFile(path, ggufparser.SkipLargeMetadata(), ggufparser.UseMMap())
		if err != nil {
			return nil, false, fmt.Errorf("parsing %s: %w", path, err)
		}
		return gf, true, nil
	})
}
