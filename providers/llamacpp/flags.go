package llamacpp

import (
	"strconv"
	"strings"

	"github.com/zclconf/go-cty/cty"

	"github.com/llorch/llorch/providers"
)

// flagRole is what a llama-server flag means to llorch.
type flagRole int

const (
	roleModel       flagRole = iota + 1 // -m: the pool's model
	roleModelSource                     // -hf, -mu, …: llama-server's own downloads
	roleHost
	rolePort
	roleCtx
	roleSecret  // --api-key, --api-key-file
	roleHFToken // -hft
	roleGPULayers
	roleTensorSplit
	roleThreads
	roleParallel
	roleMetrics
)

type flagSpec struct {
	role       flagRole
	takesValue bool
}

// knownFlags are the llama-server flags llorch reads or forbids, in every
// spelling llama-server accepts (build 10573 --help) plus the legacy GPU
// layer spellings.
var knownFlags = map[string]flagSpec{
	"-m": {roleModel, true}, "--model": {roleModel, true},
	"-mu": {roleModelSource, true}, "--model-url": {roleModelSource, true},
	"-hf": {roleModelSource, true}, "-hfr": {roleModelSource, true}, "--hf-repo": {roleModelSource, true},
	"-hff": {roleModelSource, true}, "--hf-file": {roleModelSource, true},
	"-dr": {roleModelSource, true}, "--docker-repo": {roleModelSource, true},
	"--host": {roleHost, true},
	"--port": {rolePort, true},
	"-c":     {roleCtx, true}, "--ctx-size": {roleCtx, true},
	"--api-key": {roleSecret, true}, "--api-key-file": {roleSecret, true},
	"-hft": {roleHFToken, true}, "--hf-token": {roleHFToken, true},
	"-ngl": {roleGPULayers, true}, "--ngl": {roleGPULayers, true},
	"--gpu-layers": {roleGPULayers, true}, "--n-gpu-layers": {roleGPULayers, true},
	"-ts": {roleTensorSplit, true}, "--tensor-split": {roleTensorSplit, true},
	"-t": {roleThreads, true}, "--threads": {roleThreads, true},
	"-np": {roleParallel, true}, "--parallel": {roleParallel, true},
	"--metrics": {roleMetrics, false},
}

// flagUse is one known flag found in a pool's flags.
type flagUse struct {
	Index    int    // position of the flag in flags
	Spelling string // as written, without any "=value"
	Value    string
	HasValue bool
	Inline   bool // written "--flag=value"
	Role     flagRole
}

// canonicalFlag is the name llama-server looks up: it turns "_" into "-"
// in "--" flags (--n_gpu_layers is --n-gpu-layers).
func canonicalFlag(name string) string {
	if strings.HasPrefix(name, "--") {
		return strings.ReplaceAll(name, "_", "-")
	}
	return name
}

// scanFlags finds the known flags in flags. Values of known flags are
// skipped, so a value is never mistaken for a flag; unknown flags are left
// alone (their arity is not known, and llama-server reports them).
func scanFlags(flags []string) []flagUse {
	var uses []flagUse
	for i := 0; i < len(flags); i++ {
		arg := flags[i]
		if !strings.HasPrefix(arg, "-") || arg == "-" {
			continue
		}
		name, value, inline := strings.Cut(arg, "=")
		spec, ok := knownFlags[canonicalFlag(name)]
		if !ok {
			continue
		}
		u := flagUse{Index: i, Spelling: name, Role: spec.role, Inline: inline, Value: value, HasValue: inline}
		if spec.takesValue && !inline && i+1 < len(flags) {
			u.Value, u.HasValue = flags[i+1], true
			i++
		}
		uses = append(uses, u)
	}
	return uses
}

func flagPath(i int) cty.Path { return cty.GetAttrPath("flags").IndexInt(i) }

// poolOwned says, for flags the pool sets itself, which pool attribute to
// use instead.
var poolOwned = map[flagRole]string{
	roleModel:       `the model block (model { ref = "file:/path/model.gguf" })`,
	roleModelSource: `the model block (model { ref = "hf:org/repo/file.gguf" }), so llorch downloads, verifies and caches the model`,
	roleHost:        "the pool's host attribute",
	rolePort:        "the pool's port attribute (replica i listens on port+i)",
	roleCtx:         "the pool's ctx attribute",
}

// poolAttrFlags are the llamacpp block attributes that have a flag form.
var poolAttrFlags = map[flagRole]string{
	roleGPULayers:   "n_gpu_layers",
	roleTensorSplit: "tensor_split",
	roleThreads:     "threads",
	roleParallel:    "parallel",
}

// validateFlags checks the pool's flags against what the pool and its
// llamacpp block set.
func validateFlags(pool providers.PoolSpec, pc poolConfig) providers.Diagnostics {
	var diags providers.Diagnostics
	set := map[flagRole]bool{
		roleGPULayers:   pc.NGPULayers != nil,
		roleTensorSplit: pc.TensorSplit != nil,
		roleThreads:     pc.Threads != nil,
		roleParallel:    pc.Parallel != nil,
	}
	for _, u := range scanFlags(pool.Flags) {
		spec := knownFlags[canonicalFlag(u.Spelling)]
		if spec.takesValue && !u.HasValue {
			diags = append(diags, providers.AttributeErrorf(flagPath(u.Index), "Missing Flag Value",
				"flags[%d] is %q, which takes a value, but nothing follows it.", u.Index, u.Spelling))
			continue
		}
		switch u.Role {
		case roleModel, roleModelSource, roleHost, rolePort, roleCtx:
			diags = append(diags, providers.AttributeErrorf(flagPath(u.Index), "Flag Set By The Pool",
				"flags[%d] is %q, which llorch sets from %s. Remove it from flags and use that instead.",
				u.Index, u.Spelling, poolOwned[u.Role]))
		case roleSecret:
			diags = append(diags, providers.AttributeErrorf(flagPath(u.Index), "Secret In Engine Flags",
				"flags[%d] is %q. Command-line arguments are readable by every local user (/proc/PID/cmdline), so "+
					"llorch does not pass keys that way. Remove it and set api_key in the pool's llamacpp block: "+
					"llorch hands it to llama-server in the LLAMA_API_KEY environment variable.", u.Index, u.Spelling))
		case roleHFToken:
			diags = append(diags, providers.AttributeErrorf(flagPath(u.Index), "Secret In Engine Flags",
				"flags[%d] is %q. Command-line arguments are readable by every local user (/proc/PID/cmdline). "+
					"Remove it, use an hf: model ref, and set HF_TOKEN in llorch's environment.", u.Index, u.Spelling))
		case roleGPULayers, roleTensorSplit, roleThreads, roleParallel:
			name := poolAttrFlags[u.Role]
			if set[u.Role] {
				diags = append(diags, providers.AttributeErrorf(flagPath(u.Index), "Setting Given Twice",
					"flags[%d] is %q and the pool's llamacpp block sets %s too. Set it in one place; %s in the llamacpp block is preferred.",
					u.Index, u.Spelling, name, name))
				continue
			}
			if u.Role == roleGPULayers && pool.CPUOnly() && u.Value != "0" {
				diags = append(diags, providers.AttributeErrorf(flagPath(u.Index), "GPU Layers On A CPU-Only Pool",
					"flags[%d] is %q with %s, but devices = [] makes this pool CPU-only. Remove the flag, or list the GPUs in devices.",
					u.Index, u.Spelling, u.Value))
			}
			if u.Role == roleTensorSplit && pool.CPUOnly() {
				diags = append(diags, providers.AttributeErrorf(flagPath(u.Index), "Tensor Split On A CPU-Only Pool",
					"flags[%d] is %q, but devices = [] makes this pool CPU-only. Remove the flag, or list the GPUs in devices.",
					u.Index, u.Spelling))
			}
		}
	}
	return diags
}

// normalizeFlags rewrites the legacy GPU-layer spellings (-ngl, --ngl,
// --gpu-layers, their "=" forms and underscore variants) as
// "--n-gpu-layers N", the spelling every llama-server build accepts.
func normalizeFlags(flags []string) []string {
	uses := scanFlags(flags)
	out := make([]string, 0, len(flags))
	next := 0
	for _, u := range uses {
		if u.Role != roleGPULayers || !u.HasValue {
			continue
		}
		out = append(out, flags[next:u.Index]...)
		out = append(out, "--n-gpu-layers", u.Value)
		next = u.Index + 1
		if !u.Inline {
			next++
		}
	}
	return append(out, flags[next:]...)
}

// buildArgs is llama-server's command line for pool: the pool-owned flags,
// the llamacpp block's settings, --metrics (drain reads in-flight work from
// /metrics, off by default in llama-server), then the pool's own flags.
func buildArgs(pool providers.PoolSpec, pc poolConfig, modelPath string) []string {
	host := pool.Host
	if host == "" {
		host = "127.0.0.1"
	}
	args := []string{"-m", modelPath, "--host", host, "--port", strconv.Itoa(pool.Port)}
	if pool.Ctx > 0 {
		args = append(args, "-c", strconv.Itoa(pool.Ctx))
	}
	uses := scanFlags(pool.Flags)
	hasRole := func(r flagRole) bool {
		for _, u := range uses {
			if u.Role == r {
				return true
			}
		}
		return false
	}
	switch {
	case pool.CPUOnly() && !hasRole(roleGPULayers):
		// a CPU-only pool must not offload, whatever the build's default
		args = append(args, "--n-gpu-layers", "0")
	case !pool.CPUOnly() && pc.NGPULayers != nil:
		args = append(args, "--n-gpu-layers", strconv.Itoa(*pc.NGPULayers))
	}
	if len(pc.TensorSplit) > 0 {
		parts := make([]string, len(pc.TensorSplit))
		for i, f := range pc.TensorSplit {
			parts[i] = strconv.FormatFloat(f, 'f', -1, 64)
		}
		args = append(args, "--tensor-split", strings.Join(parts, ","))
	}
	if pc.Threads != nil {
		args = append(args, "--threads", strconv.Itoa(*pc.Threads))
	}
	if pc.Parallel != nil {
		args = append(args, "--parallel", strconv.Itoa(*pc.Parallel))
	}
	if !hasRole(roleMetrics) {
		args = append(args, "--metrics")
	}
	return append(args, normalizeFlags(pool.Flags)...)
}
