package llamacpp

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/llorch/llorch/providers"
	"github.com/llorch/llorch/providers/llamacpp/gguf"
)

// stagedModel is a model ready for llama-server: a local GGUF file, its
// digest and metadata.
type stagedModel struct {
	Path   string
	SHA256 string
	Size   int64
	Meta   *gguf.Metadata
}

// stageModel makes ref available locally: a file: model is checked in
// place, a download is fetched into the cache unless already there. The
// file is verified against want (lower-case hex, "" for none) and checked
// to be GGUF.
func (p *Provider) stageModel(ctx context.Context, cfg *providerConfig, ref modelRef, want string,
	progress func(providers.Event)) (*stagedModel, error) {
	if ref.Kind == modelFile {
		return p.stageLocal(ctx, ref, want, progress)
	}
	dest := ref.downloadPath(cfg.CacheDir)
	unlock, err := lockFile(ctx, dest+".lock", func() {
		progress(providers.Event{Stage: "download", Message: "waiting for another llorch process downloading " + ref.Raw})
	})
	if err != nil {
		return nil, err
	}
	defer unlock()

	fi, err := os.Stat(dest)
	switch {
	case err == nil:
		m, err := p.checkCached(ctx, ref, dest, fi, want, progress)
		if err != nil || m != nil {
			return m, err
		}
		// The cached copy was stale and is gone: download it again.
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("checking the cached model %s: %w", dest, err)
	}

	src := p.downloadSource(ref)
	progress(providers.Event{Stage: "download", Message: fmt.Sprintf("downloading %s from %s", ref.Raw, src.shown())})
	sum, err := p.fetch(ctx, src, dest, want, progress)
	if err != nil {
		return nil, err
	}
	fi, err = os.Stat(dest)
	if err != nil {
		return nil, fmt.Errorf("checking the downloaded model %s: %w", dest, err)
	}
	_, digests := p.caches()
	if err := digests.put(ctx, dest, fi, sum); err != nil {
		return nil, fmt.Errorf("recording the digest of %s: %w", dest, err)
	}
	meta, err := gguf.ReadFile(dest)
	if err != nil {
		return nil, fmt.Errorf("reading the downloaded model: %w", err)
	}
	return &stagedModel{Path: dest, SHA256: sum, Size: fi.Size(), Meta: meta}, nil
}

// stageLocal checks a file: model: it exists, is GGUF, and matches want.
// The user's file is never modified or removed.
func (p *Provider) stageLocal(ctx context.Context, ref modelRef, want string, progress func(providers.Event)) (*stagedModel, error) {
	fi, err := os.Stat(ref.Path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, withDiag("Model File Not Found", modelRefPath, fmt.Errorf(
			"model file %s not found (model ref %q); check the path, or use an hf: or https:// ref to have llorch download it",
			ref.Path, ref.Raw))
	case err != nil:
		return nil, withDiag("Model File Unreadable", modelRefPath, fmt.Errorf("checking model file %s: %w", ref.Path, err))
	case !fi.Mode().IsRegular():
		return nil, withDiag("Model File Not Found", modelRefPath, fmt.Errorf(
			"model ref %q names %s, which is not a regular file; point it at a .gguf file", ref.Raw, ref.Path))
	}
	meta, err := readMeta(ref.Path)
	if err != nil {
		return nil, err
	}
	sum, err := p.digest(ctx, ref.Path, fi, progress)
	if err != nil {
		return nil, err
	}
	if want != "" && sum != want {
		return nil, withDiag("Model Checksum Mismatch", modelSHA256Path, fmt.Errorf(
			"sha256 mismatch for model file %s: expected %s, got %s; fix sha256 in the pool's model block, or point the ref at the intended file",
			ref.Path, want, sum))
	}
	return &stagedModel{Path: ref.Path, SHA256: sum, Size: fi.Size(), Meta: meta}, nil
}

// checkCached verifies a model downloaded by an earlier Ensure. A cached
// copy that no longer matches want (the configured digest changed, or a
// moving revision was pinned anew) or is no longer readable GGUF is removed,
// and checkCached returns nil, nil so that the caller downloads it again.
func (p *Provider) checkCached(ctx context.Context, ref modelRef, dest string, fi fs.FileInfo, want string,
	progress func(providers.Event)) (*stagedModel, error) {
	meta, err := readMeta(dest)
	if err != nil {
		progress(providers.Event{Stage: "verify", Message: fmt.Sprintf("the cached copy of %s is unusable (%v); downloading it again", ref.Raw, err)})
		if err := os.Remove(dest); err != nil {
			return nil, fmt.Errorf("removing the unusable cached model %s: %w", dest, err)
		}
		return nil, nil
	}
	sum, err := p.digest(ctx, dest, fi, progress)
	if err != nil {
		return nil, err
	}
	if want != "" && sum != want {
		progress(providers.Event{Stage: "verify", Message: fmt.Sprintf(
			"the cached copy of %s has sha256 %s, not %s; removing it and downloading again", ref.Raw, sum, want)})
		if err := os.Remove(dest); err != nil {
			return nil, fmt.Errorf("removing the mismatched cached model %s: %w", dest, err)
		}
		return nil, nil
	}
	return &stagedModel{Path: dest, SHA256: sum, Size: fi.Size(), Meta: meta}, nil
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

// digest returns path's sha256, from the digest cache when its size and
// mtime are unchanged, else by hashing it (with progress events ending at
// 100 %). Concurrent callers asking about one version of a file share one
// hashing: a thousand pools usually share one binary and a few models.
func (p *Provider) digest(ctx context.Context, path string, fi fs.FileInfo, progress func(providers.Event)) (string, error) {
	_, digests := p.caches()
	if sum, ok := digests.get(path, fi); ok {
		return sum, nil
	}
	key := fileKey{path: path, size: fi.Size(), mtime: fi.ModTime().UnixNano()}
	return p.digestRuns.do(ctx, key, func(ctx context.Context) (string, bool, error) {
		sum, err := hashFile(ctx, path, fi, progress)
		if err != nil {
			return "", false, err
		}
		if err := digests.put(ctx, path, fi, sum); err != nil {
			return "", false, fmt.Errorf("recording the digest of %s: %w", path, err)
		}
		return sum, false, nil // the digest cache remembers it
	})
}

// fileDigest is digest for a path not stat'ed yet.
func (p *Provider) fileDigest(ctx context.Context, path string, progress func(providers.Event)) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("hashing %s: %w", path, err)
	}
	return p.digest(ctx, path, fi, progress)
}

// hashFile computes path's sha256, reporting progress every 5 % (at least
// every 64 MiB) from 0 to 100 %.
func hashFile(ctx context.Context, path string, fi fs.FileInfo, progress func(providers.Event)) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("hashing %s: %w", path, err)
	}
	defer f.Close()
	h := sha256.New()
	total := fi.Size()
	step := max(total/20, 64<<20)
	last := int64(0)
	msg := "computing the sha256 of " + path
	progress(providers.Event{Stage: "verify", Message: msg, Total: total})
	n, err := copyCtx(ctx, h, f, func(n int64) {
		if n-last >= step {
			last = n
			progress(providers.Event{Stage: "verify", Message: msg, Current: n, Total: total})
		}
	})
	if err != nil {
		return "", fmt.Errorf("hashing %s: %w", path, err)
	}
	if n != total {
		return "", fmt.Errorf("hashing %s: it changed while being read (%d bytes, expected %d); try again once nothing writes it", path, n, total)
	}
	if last != total && total > 0 {
		progress(providers.Event{Stage: "verify", Message: msg, Current: total, Total: total})
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
