package providers

// MemoryEstimate is what one replica of a pool needs in memory, by device,
// as its provider estimates it at plan time from the model's metadata and
// the engine's settings. Core adds the replicas up per device and compares
// them with what the machine has (the fit table of `llorch plan`).
type MemoryEstimate struct {
	// GPUs lists what the replica puts on each GPU it uses. Index is the
	// GPU's index as the pool's devices name it (nvidia-smi's numbering);
	// when devices is unset it is the engine's device ordinal.
	GPUs []DeviceMemory
	// Host is what the replica needs in host RAM (Index is -1).
	Host DeviceMemory
	// MappedFile, when set, is the file whose pages Host.Weights are: the
	// engine mmaps it, so the weights sit in the page cache, shared by
	// every replica on the machine that maps the same file, and are
	// counted once per file rather than once per replica.
	MappedFile string
	// Inputs are the numbers the estimate was computed from, shown by
	// `plan -json` so that a surprising figure can be checked.
	Inputs MemoryInputs
}

// DeviceMemory is one device's share of a replica, in bytes.
type DeviceMemory struct {
	Index   int
	Weights int64 // model tensors held on the device
	KVCache int64 // K and V cache for the context
	Compute int64 // compute (scratch) buffers for one batch
	Other   int64 // the rest: output buffer, tokenizer, load overhead
}

// Total is every part of d added up.
func (d DeviceMemory) Total() int64 { return d.Weights + d.KVCache + d.Compute + d.Other }

// MemoryInputs are the inputs of a memory estimate: the model's shape and
// the engine settings that size the memory. Zero values mean "not used".
type MemoryInputs struct {
	Estimator      string // what computed it ("gguf-parser-go v0.28.2")
	Layers         int    // the model's transformer blocks
	GPULayers      int    // layers offloaded (n_gpu_layers as the engine gets it)
	Ctx            int    // context size in tokens, all slots together
	Parallel       int    // slots (llama-server --parallel)
	CacheTypeK     string // "f16", "q8_0", …
	CacheTypeV     string
	TensorSplit    []float64 // shares of the GPUs, in device order
	FlashAttention bool
	Mmap           bool
	BatchSize      int // logical batch (-b)
	UBatchSize     int // physical batch (-ub)
}
