package llamacpp

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/llorch/llorch/providers"
	"github.com/llorch/llorch/providers/sdk/gguf"
	"github.com/llorch/llorch/providers/sdk/stage"
)

// stagedModel is a model ready for llama-server: a local GGUF file, its
// digest and metadata.
type stagedModel struct {
	stage.Staged
	Meta *gguf.Metadata
}

// stager stages models into cfg's cache directory, checking that each is
// GGUF.
func (p *Provider) stager(cfg *providerConfig) *stage.Stager {
	_, digests := p.caches()
	return &stage.Stager{
		CacheDir:     cfg.CacheDir,
		Client:       p.httpClient,
		Getenv:       p.env.get,
		UserAgent:    "llorch-llamacpp/" + Version,
		StallTimeout: p.stallTimeout,
		Digests:      digests,
		Check:        p.checkModel,
	}
}

// checkModel is the Stager's check: the file is GGUF that llama-server
// can load. The metadata read is remembered for stageModel.
func (p *Provider) checkModel(ctx context.Context, path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("checking the model %s: %w", path, err)
	}
	_, err = p.modelMeta(ctx, path, fi)
	var de *diagError
	if errors.As(err, &de) {
		return &stage.Error{Summary: de.summary, Field: stage.FieldRef, Err: err}
	}
	return err
}

// stageModel makes ref available locally (see stage.Stager.Stage) and
// reads its GGUF metadata.
func (p *Provider) stageModel(ctx context.Context, cfg *providerConfig, ref stage.Ref, want string,
	progress func(providers.Event)) (*stagedModel, error) {
	m, err := p.stager(cfg).Stage(ctx, ref, want, progress)
	if err != nil {
		return nil, err
	}
	fi, err := os.Stat(m.Path)
	if err != nil {
		return nil, fmt.Errorf("checking the model %s: %w", m.Path, err)
	}
	meta, err := p.modelMeta(ctx, m.Path, fi)
	if err != nil {
		return nil, err
	}
	return &stagedModel{Staged: *m, Meta: meta}, nil
}

// readMeta reads GGUF metadata, explaining a file that is not a model.
func readMeta(path string) (*gguf.Metadata, error) {
	meta, err := gguf.ReadFile(path)
	switch {
	case err == nil:
		return meta, nil
	case errors.Is(err, gguf.ErrNotGGUF), errors.Is(err, gguf.ErrUnsupportedVersion):
		return nil, withDiag("Model Is Not GGUF", modelRefPath, fmt.Errorf(
			"model %w; llama-server loads only GGUF models (version 2 or 3): convert it with llama.cpp's convert_hf_to_gguf.py, or pick a .gguf file", err))
	case errors.Is(err, gguf.ErrTruncated), errors.Is(err, gguf.ErrCorrupt):
		return nil, withDiag("Model Is Damaged", modelRefPath, fmt.Errorf(
			"model %w; the file is incomplete or damaged: download or copy it again", err))
	}
	return nil, withDiag("Model File Unreadable", modelRefPath, fmt.Errorf("reading model metadata: %w", err))
}
