package llamacpp

import (
	"context"
	"fmt"

	"github.com/llorch/llorch/providers"
)

// Ensure prepares one pool's engine: it locates or builds llama-server,
// stages and verifies the model, and returns the command line and
// environment. It never starts the engine.
func (p *Provider) Ensure(ctx context.Context, req providers.EnsureRequest) (*providers.PreparedEngine, providers.Diagnostics) {
	progress := req.Progress
	if progress == nil {
		progress = func(providers.Event) {}
	}
	pc, ref, diags := p.validatePool(req.Pool, req.Config)
	if diags.HasErrors() {
		return nil, diags
	}
	cfg, err := p.config()
	if err != nil {
		return nil, append(diags, providers.FromError("Provider Not Configured", err)...)
	}

	pe := &providers.PreparedEngine{
		Host:       req.Pool.Host,
		Port:       req.Pool.Port,
		PoolID:     req.Pool.ID,
		DeviceMask: req.Pool.DeviceMask(),
		HealthPath: "/health",
	}
	if pe.Host == "" {
		pe.Host = "127.0.0.1"
	}

	if cfg.Source != nil {
		eng, err := p.ensureSource(ctx, cfg, progress)
		if err != nil {
			return nil, append(diags, toDiags("Engine Build Failed", err)...)
		}
		pe.BinaryPath, pe.EngineVersion, pe.ProvisioningMode = eng.Binary, eng.Version, "source"
	} else {
		path, err := p.resolveBinary(cfg.Binary)
		if err != nil {
			return nil, append(diags, toDiags("Engine Binary Not Found", err)...)
		}
		version, err := p.binaryVersion(ctx, path)
		if err != nil {
			return nil, append(diags, toDiags("Engine Version Unknown", err)...)
		}
		pe.BinaryPath, pe.EngineVersion, pe.ProvisioningMode = path, version, "binary"
	}
	progress(providers.Event{Stage: "engine", Message: fmt.Sprintf("using %s (%s)", pe.BinaryPath, pe.EngineVersion)})
	_, digests := p.caches()
	if pe.BinarySHA256, err = digests.FileSHA256(ctx, pe.BinaryPath, progress); err != nil {
		return nil, append(diags, providers.FromError("Engine Binary Unreadable", err)...)
	}

	m, err := p.stageModel(ctx, cfg, ref, wantSHA256(req.Pool), progress)
	if err != nil {
		return nil, append(diags, toDiags("Model Staging Failed", err)...)
	}
	pe.ModelPath, pe.ModelSHA256, pe.ModelRevision = m.Path, m.SHA256, m.Revision
	pe.Protocol = EngineProtocol(m.Path)
	progress(providers.Event{Stage: "inspect", Message: fmt.Sprintf("%s: %s, %s, %d parameters, trained context %d",
		m.Path, m.Meta.Architecture, m.Meta.Quantization, m.Meta.Parameters, m.Meta.ContextLength)})
	diags = append(diags, contextWarning(req.Pool, &providers.ModelInfo{
		Architecture: m.Meta.Architecture, ContextLength: int(m.Meta.ContextLength)})...)

	pe.Args = buildArgs(req.Pool, pc, m.Path)
	pe.Env = make(map[string]string, len(req.Pool.Env)+1)
	for k, v := range req.Pool.Env {
		pe.Env[k] = v
	}
	if req.Pool.Devices != nil {
		pe.Env["CUDA_VISIBLE_DEVICES"] = req.Pool.DeviceMask() // "" hides every GPU from a CPU-only pool
	}
	if pc.APIKey != nil {
		pe.SecretEnv = map[string]string{"LLAMA_API_KEY": *pc.APIKey}
		pe.ProbeToken = *pc.APIKey
	}
	return pe, diags
}
