package llamacpp

import (
	"context"
	"strings"

	"github.com/zclconf/go-cty/cty"

	"github.com/llorch/llorch/providers"
	"github.com/llorch/llorch/providers/sdk/stage"
)

var (
	modelRefPath    = cty.GetAttrPath("model").GetAttr("ref")
	modelSHA256Path = cty.GetAttrPath("model").GetAttr("sha256")
)

// ValidatePool checks a pool without touching the network or the cache:
// the llamacpp block, the flags, the model ref and the sha256 format.
func (p *Provider) ValidatePool(ctx context.Context, req providers.ValidatePoolRequest) providers.Diagnostics {
	if err := ctx.Err(); err != nil {
		return providers.FromError("Validation Cancelled", err)
	}
	_, _, diags := p.validatePool(req.Pool, req.Config)
	return diags
}

// validatePool decodes and checks a pool, returning what Ensure and
// PlanPool build on.
func (p *Provider) validatePool(pool providers.PoolSpec, config cty.Value) (poolConfig, stage.Ref, providers.Diagnostics) {
	pc, diags := decodePoolConfig(config)

	if pc.NGPULayers != nil && *pc.NGPULayers > 0 && pool.CPUOnly() {
		diags = append(diags, providers.AttributeErrorf(cty.GetAttrPath("n_gpu_layers"), "GPU Layers On A CPU-Only Pool",
			"n_gpu_layers = %d, but devices = [] makes this pool CPU-only, so llorch runs it with --n-gpu-layers 0. "+
				"Remove n_gpu_layers, or list the GPUs to use in devices.", *pc.NGPULayers))
	}
	if len(pc.TensorSplit) > 0 {
		switch {
		case pool.CPUOnly():
			diags = append(diags, providers.AttributeErrorf(cty.GetAttrPath("tensor_split"), "Tensor Split On A CPU-Only Pool",
				"tensor_split spreads the model over GPUs, but devices = [] makes this pool CPU-only. Remove tensor_split, or list the GPUs in devices."))
		case len(pool.Devices) > 0 && len(pc.TensorSplit) > len(pool.Devices):
			diags = append(diags, providers.AttributeErrorf(cty.GetAttrPath("tensor_split"), "Tensor Split Longer Than Devices",
				"tensor_split has %d entries but devices lists %d GPU(s); give one share per GPU, in the order of devices.",
				len(pc.TensorSplit), len(pool.Devices)))
		}
	}
	diags = append(diags, validateFlags(pool, pc)...)

	for _, k := range providers.SortedKeys(pool.Env) {
		path := cty.GetAttrPath("env").Index(cty.StringVal(k))
		switch {
		case k == "CUDA_VISIBLE_DEVICES" && pool.Devices != nil:
			diags = append(diags, providers.AttributeErrorf(path, "GPU Selection Given Twice",
				"env sets CUDA_VISIBLE_DEVICES and the pool sets devices, from which llorch sets CUDA_VISIBLE_DEVICES. Remove it from env."))
		case k == "LLAMA_API_KEY":
			diags = append(diags, providers.AttributeErrorf(path, "Secret In Engine Environment",
				"env sets LLAMA_API_KEY, but env values are recorded in the state file in clear text. "+
					"Remove it and set api_key in the pool's llamacpp block, which is sensitive."))
		}
	}

	ref, err := stage.ParseRef(pool.Model.Ref, p.workDir())
	if err != nil {
		diags = append(diags, providers.AttributeErrorf(modelRefPath, "Invalid Model Reference", "%s.", err))
	}
	if s := pool.Model.SHA256; s != "" && !stage.ValidSHA256(s) {
		diags = append(diags, providers.AttributeErrorf(modelSHA256Path, "Invalid SHA-256 Digest",
			"sha256 = %q is not a SHA-256 digest: it must be 64 hexadecimal characters (it has %d). "+
				"Compute one with: sha256sum model.gguf", s, len(s)))
	}
	return pc, ref, diags
}

// wantSHA256 is the pool's expected digest in lower case ("" when unset).
func wantSHA256(pool providers.PoolSpec) string {
	return strings.ToLower(pool.Model.SHA256)
}
