package llamacpp

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"

	"github.com/zclconf/go-cty/cty"

	"github.com/llorch/llorch/providers"
	"github.com/llorch/llorch/providers/sdk/gguf"
	"github.com/llorch/llorch/providers/sdk/stage"
)

// PlanPool reports the engine version Ensure will produce, whether it
// forces a replacement, the model's metadata when the model is already
// local, a memory estimate per replica (memory.go; core compares it with
// the machine's devices), and warnings (a context above the trained
// length). It never builds or downloads: the version
// comes from the version cache or one `--version` run (binary mode) or
// `git ls-remote` (source mode, none for a commit id), and the digests of
// the binary and the model from the digest cache. The one file it hashes
// is one that Prior was prepared from and whose size or mtime changed since
// it was last hashed: only its bytes tell a touch, a `git checkout` or an
// identical rebuild (no change) from new contents (a replacement).
//
// A configuration may hold a thousand pools sharing one engine and a few
// models, so what they share is learnt once per command (see memo.go):
// the binary's place on PATH, the commit a ref names, and each model
// file's metadata and parsed header (per size and mtime, so a changed file is
// read again). What remains per pool is a stat of the binary and of the
// model (and, for a model not hashed yet, of the digest cache file).
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

	version, sum, d := p.plannedVersion(ctx, cfg, req.PinnedBinarySHA256)
	diags = append(diags, d...)
	if d.HasErrors() {
		return planned, diags
	}
	planned.EngineVersion, planned.BinarySHA256 = version, sum
	if req.Prior != nil && req.Prior.EngineVersion != "" && version != "" && version != req.Prior.EngineVersion {
		planned.RequiresReplace = append(planned.RequiresReplace, cty.GetAttrPath("engine_version"))
	}

	info, err := p.plannedModel(ctx, ref, cfg, wantSHA256(req.Pool), req.Prior)
	if err != nil {
		return planned, append(diags, toDiags("Model Unavailable", err)...)
	}
	planned.Model = info
	planned.Memory, planned.MemoryUnknown = p.memoryEstimate(ctx, req.Pool, pc, info)
	diags = append(diags, contextWarning(req.Pool, info)...)
	return planned, diags
}

// plannedEngine is PlanPool's answer about a source-mode engine, the same
// for every pool of one configuration.
type plannedEngine struct {
	version string
	diags   providers.Diagnostics
}

// plannedVersion is the engine version Ensure will produce. Its inputs are
// learnt once per command: the binary's place on PATH (the binary itself is
// still stat'ed for each pool, so one replaced in place shows its new
// version), and in source mode the whole answer.
//
// A binary is run (for its --version) only when its digest is pinned, the
// one the lock file holds: the configuration may come from a pull request.
// The binary's digest is returned either way ("" in source mode).
func (p *Provider) plannedVersion(ctx context.Context, cfg *providerConfig, pinned string) (version, sum string, _ providers.Diagnostics) {
	if cfg.Source == nil {
		path, err := p.binaries.do(ctx, cfg.Binary, func(context.Context) (string, bool, error) {
			path, err := p.resolveBinary(cfg.Binary)
			return path, true, err
		})
		switch {
		case err != nil && ctx.Err() != nil:
			return "", "", providers.FromError("Planning Cancelled", ctx.Err())
		case err != nil:
			return "", "", toDiags("Engine Binary Not Found", err)
		}
		sum, err := p.binaryDigest(ctx, path)
		if err != nil {
			return "", "", providers.FromError("Engine Binary Unreadable", err)
		}
		if sum != pinned {
			return "", sum, nil
		}
		v, err := p.binaryVersion(ctx, path)
		if err != nil {
			return "", sum, toDiags("Engine Version Unknown", err)
		}
		return v, sum, nil
	}
	pe, err := p.sourcePlans.do(ctx, cfg, func(ctx context.Context) (plannedEngine, bool, error) {
		v, diags := p.plannedSourceVersion(ctx, cfg)
		// An abbreviated commit that is not cloned yet gets a name once
		// Ensure has cloned it: ask again then.
		return plannedEngine{version: v, diags: diags}, v != "" || len(diags) > 0, nil
	})
	if err != nil {
		return "", "", providers.FromError("Planning Cancelled", err)
	}
	return pe.version, "", slices.Clone(pe.diags)
}

func (p *Provider) plannedSourceVersion(ctx context.Context, cfg *providerConfig) (string, providers.Diagnostics) {
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

// binaryDigest is the digest of the engine binary at path, from the digest
// cache when the file is unchanged since it was last hashed.
func (p *Provider) binaryDigest(ctx context.Context, path string) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("checking llama-server binary %q: %w", path, err)
	}
	return p.plannedDigest(ctx, path, fi, true)
}

// plannedDigest is path's digest from the digest cache, or, when the
// cache does not know this version of the file and rehash is set (a
// replica runs it), by hashing it now.
func (p *Provider) plannedDigest(ctx context.Context, path string, fi fs.FileInfo, rehash bool) (string, error) {
	_, digests := p.caches()
	if sum, ok := digests.Cached(path, fi); ok || !rehash {
		return sum, nil
	}
	return digests.SHA256(ctx, path, fi, func(providers.Event) {})
}

// plannedModel reads the metadata of a local or already downloaded model;
// nil, nil when the model is still to be downloaded.
func (p *Provider) plannedModel(ctx context.Context, ref stage.Ref, cfg *providerConfig, want string,
	prior *providers.PreparedEngine) (*providers.ModelInfo, error) {
	path := ref.LocalPath(cfg.CacheDir)
	fi, err := ref.StatLocal(cfg.CacheDir)
	switch {
	case errors.Is(err, fs.ErrNotExist) && ref.Kind != stage.File:
		return nil, nil
	case err != nil:
		return nil, err
	}
	meta, err := p.modelMeta(ctx, path, fi)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("reading model metadata: %w", ctx.Err())
		}
		if ref.Kind != stage.File {
			return nil, nil // Ensure replaces an unusable cached download
		}
		return nil, err
	}
	sum, err := p.plannedDigest(ctx, path, fi, prior != nil && prior.ModelPath == path && prior.ModelSHA256 != "")
	if err != nil {
		return nil, withDiag("Model File Unreadable", modelRefPath, err)
	}
	if ref.Kind == stage.File && want != "" && sum != "" && sum != want {
		return nil, stage.ChecksumMismatch(path, want, sum)
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

// fileKey names one version of a file: a file whose size or modification
// time changes is another key.
type fileKey struct {
	path        string
	size, mtime int64
}

// modelMeta reads the GGUF metadata of path, whose stat is fi, once per
// command and version of the file, however many pools use it.
func (p *Provider) modelMeta(ctx context.Context, path string, fi fs.FileInfo) (*gguf.Metadata, error) {
	key := fileKey{path: path, size: fi.Size(), mtime: fi.ModTime().UnixNano()}
	return p.metas.do(ctx, key, func(context.Context) (*gguf.Metadata, bool, error) {
		meta, err := p.metaReader(path)
		// What the file holds is kept; a failure to read it (permissions,
		// I/O) may pass, and is not.
		return meta, err == nil || isContentError(err), err
	})
}

// isContentError tells a model that is not valid GGUF from one that could
// not be read.
func isContentError(err error) bool {
	for _, target := range []error{gguf.ErrNotGGUF, gguf.ErrUnsupportedVersion, gguf.ErrTruncated, gguf.ErrCorrupt} {
		if errors.Is(err, target) {
			return true
		}
	}
	return false
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
