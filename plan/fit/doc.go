// Package fit answers, at plan time, whether the planned replicas fit the
// memory of the machine: it learns the machine's devices (nvidia-smi's
// GPUs and /proc/meminfo, or the configuration's devices {} block), adds
// up each provider's per-replica estimate (providers.MemoryEstimate) per
// device, and reports a table and the diagnostics for devices that would
// be overcommitted, naming the biggest consumers and what would make them
// fit.
//
// The estimates are the providers': llama.cpp's meaning of n_gpu_layers,
// --parallel or cache types lives in the llamacpp provider, not here. A
// pool whose provider gives no estimate is "unknown" and never fails the
// plan.
//
// Host memory is MemTotal minus MemAvailable used by others, which leaves
// the page cache out; model weights a replica mmaps are page cache, so
// they are counted once per file and machine, shared by every replica that
// maps the file (see docs/memory-fit.md).
package fit
