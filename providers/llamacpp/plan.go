package llamacpp

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"

	"github.com/zclconf/go-cty/cty"

	"github.com/llorch/llorch/providers"
)

// PlanPool reports the engine version Ensure will produce, whether it
// forces a replacement, the model's metadata when the model is already
// local, and warnings (a context above the trained length, a model larger
// than the free GPU memory). It never builds, downloads or hashes: the
// version comes from the version cache or one `--version` run (binary
// mode) or `git ls-remote` (source mode, none for a commit id), and the
// digest only from the digest cache.
func (p *Provider) PlanPool(ctx context.Context, req providers.PlanPoolRequest) (*providers.PlannedPool, providers.Diagnostics) {
	pc, ref, diags := p.validatePool(req.Pool, req.Config)
	if diags.HasErrors() {
		return nil, diags
	}
	cfg, err := p.config()
	if err != nil {
		return nil, append(diags, providers.FromError("Provider Not Configured", err)...)
	}
	planned := &providers.PlannedPool{}

	version, d := p.plannedVersion(ctx, cfg)
	diags = append(diags, d...)
	planned.EngineVersion = version
	if req.Prior != nil && req.Prior.EngineVersion != "" && version != "" && version != req.Prior.EngineVersion {
		planned.RequiresReplace = append(planned.RequiresReplace, cty.GetAttrPath("engine_version"))
	}

	info, err := p.plannedModel(ref, cfg, wantSHA256(req.Pool))
	if err != nil {
		return planned, append(diags, toDiags("Model Unavailable", err)...)
	}
	planned.Model = info
	diags = append(diags, contextWarning(req.Pool, info)...)
	diags = append(diags, p.gpuFitWarnings(ctx, req.Pool, pc, info)...)
	return planned, diags
}

func (p *Provider) plannedVersion(ctx context.Context, cfg *providerConfig) (string, providers.Diagnostics) {
	if cfg.Source == nil {
		path, err := p.resolveBinary(cfg.Binary)
		if err != nil {
			return "", toDiags("Engine Binary Not Found", err)
		}
		v, err := p.binaryVersion(ctx, path)
		if err != nil {
			return "", toDiags("Engine Version Unknown", err)
		}
		return v, nil
	}
	commit, err := p.plannedCommit(ctx, cfg)
	switch {
	case errors.Is(err, errRefNotFound):
		return "", toDiags("Git Ref Not Found", err)
	case err != nil:
		return "", providers.Diagnostics{providers.Warnf("Engine Version Unknown",
			"Could not resolve ref %q of %s, so this plan cannot tell whether it moved to another commit: %v",
			cfg.Source.Ref, cfg.Source.Git, err)}
	case commit == "":
		return "", nil // an abbreviated commit id, resolved by Ensure's clone
	}
	kind := "cpu"
	if p.wantCUDA(cfg.Source) {
		kind = "cuda"
	}
	return sourceVersion(cfg.Source.Ref, commit, kind), nil
}

// plannedModel reads the metadata of a local or already downloaded model;
// nil, nil when the model is still to be downloaded.
func (p *Provider) plannedModel(ref modelRef, cfg *providerConfig, want string) (*providers.ModelInfo, error) {
	path := ref.downloadPath(cfg.CacheDir)
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist) && ref.Kind != modelFile:
		return nil, nil
	case errors.Is(err, fs.ErrNotExist):
		return nil, withDiag("Model File Not Found", modelRefPath, fmt.Errorf(
			"model file %s not found (model ref %q); check the path, or use an hf: or https:// ref to have llorch download it",
			path, ref.Raw))
	case err != nil:
		return nil, withDiag("Model File Unreadable", modelRefPath, fmt.Errorf("checking model file %s: %w", path, err))
	case !fi.Mode().IsRegular():
		return nil, withDiag("Model File Not Found", modelRefPath, fmt.Errorf(
			"model ref %q names %s, which is not a regular file; point it at a .gguf file", ref.Raw, path))
	}
	meta, err := readMeta(path)
	if err != nil {
		if ref.Kind != modelFile {
			return nil, nil // Ensure replaces an unusable cached download
		}
		return nil, err
	}
	_, digests := p.caches()
	sum, _ := digests.get(path, fi)
	if ref.Kind == modelFile && want != "" && sum != "" && sum != want {
		return nil, withDiag("Model Checksum Mismatch", modelSHA256Path, fmt.Errorf(
			"sha256 mismatch for model file %s: expected %s, got %s; fix sha256 in the pool's model block, or point the ref at the intended file",
			path, want, sum))
	}
	return &providers.ModelInfo{
		Path:          path,
		SizeBytes:     fi.Size(),
		Architecture:  meta.Architecture,
		Parameters:    meta.Parameters,
		Quantization:  meta.Quantization,
		ContextLength: int(meta.ContextLength),
		SHA256:        sum,
	}, nil
}

// contextWarning warns when the pool's ctx exceeds the model's trained
// context length.
func contextWarning(pool providers.PoolSpec, info *providers.ModelInfo) providers.Diagnostics {
	if info == nil || info.ContextLength <= 0 || pool.Ctx <= info.ContextLength {
		return nil
	}
	return providers.Diagnostics{{
		Severity: providers.Warning,
		Summary:  "Context Above Trained Length",
		Detail: fmt.Sprintf("ctx = %d is above the context length this %s model was trained with (%d tokens). "+
			"llama-server starts, but output usually degrades past the trained length unless the model supports RoPE scaling; "+
			"consider ctx = %d or less.", pool.Ctx, info.Architecture, info.ContextLength, info.ContextLength),
		Attribute: cty.GetAttrPath("ctx"),
	}}
}

// gpuFitWarnings compares the model file with the free memory of the
// pool's GPUs (all of them when devices is unset), where nvidia-smi exists.
func (p *Provider) gpuFitWarnings(ctx context.Context, pool providers.PoolSpec, pc poolConfig, info *providers.ModelInfo) providers.Diagnostics {
	if info == nil || pool.CPUOnly() || (pc.NGPULayers != nil && *pc.NGPULayers == 0) {
		return nil
	}
	gpus, ok := p.queryGPUs(ctx)
	if !ok {
		return nil
	}
	var diags providers.Diagnostics
	byIndex := map[int]gpu{}
	var all []string
	for _, g := range gpus {
		byIndex[g.Index] = g
		all = append(all, strconv.Itoa(g.Index))
	}
	var path cty.Path
	selected := gpus
	if pool.Devices != nil {
		path = cty.GetAttrPath("devices")
		selected = nil
		for i, d := range pool.Devices {
			g, found := byIndex[d]
			if !found {
				diags = append(diags, providers.Diagnostic{Severity: providers.Warning, Summary: "GPU Not Found",
					Detail:    fmt.Sprintf("devices[%d] is GPU %d, but nvidia-smi lists GPUs %s.", i, d, strings.Join(all, ", ")),
					Attribute: cty.GetAttrPath("devices").IndexInt(i)})
				continue
			}
			selected = append(selected, g)
		}
	}
	if len(selected) == 0 {
		return diags
	}
	var free int64
	var names []string
	for _, g := range selected {
		free += g.FreeMiB << 20
		names = append(names, strconv.Itoa(g.Index))
	}
	if info.SizeBytes > free {
		which := "GPU " + names[0] + " has"
		if len(names) > 1 {
			which = "GPUs " + strings.Join(names, ", ") + " have"
		}
		diags = append(diags, providers.Diagnostic{Severity: providers.Warning, Summary: "Model Larger Than Free GPU Memory",
			Detail: fmt.Sprintf("The model file is %s but %s %s free (nvidia-smi). Layers that do not fit stay on the CPU "+
				"or loading fails; lower n_gpu_layers, pick a smaller quantization, or add GPUs to devices.",
				humanBytes(info.SizeBytes), which, humanBytes(free)),
			Attribute: path})
	}
	return diags
}
