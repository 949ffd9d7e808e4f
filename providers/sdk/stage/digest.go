package stage

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"sync"

	"github.com/llorch/llorch/providers"
)

// Digests computes and remembers the sha256 of big local files (models,
// engine binaries) keyed by path, size and modification time, in a
// FileCache, so that a multi-GB model is hashed once and not on every
// apply. Concurrent callers asking about one version of a file share one
// hashing: a thousand pools usually share one binary and a few models.
type Digests struct {
	cache *FileCache

	mu   sync.Mutex
	runs map[fileKey]*digestRun
}

// fileKey names one version of a file: a file whose size or modification
// time changes is another key.
type fileKey struct {
	path        string
	size, mtime int64
}

type digestRun struct {
	done chan struct{} // closed when sum and err are set
	sum  string
	err  error
	// abandoned: the run ended with its caller's context, so the callers
	// waiting for it hash the file themselves.
	abandoned bool
}

// NewDigests remembers digests in the JSON file path (shared by every
// process using it); "" keeps them in memory only.
func NewDigests(path string) *Digests {
	return &Digests{cache: NewFileCache(path), runs: map[fileKey]*digestRun{}}
}

// Cached returns the digest recorded for path when fi still matches it,
// without hashing anything.
func (d *Digests) Cached(path string, fi fs.FileInfo) (string, bool) { return d.cache.Get(path, fi) }

// Record remembers sum as the digest of path at fi, e.g. one computed
// while downloading.
func (d *Digests) Record(ctx context.Context, path string, fi fs.FileInfo, sum string) error {
	if err := d.cache.Put(ctx, path, fi, sum); err != nil {
		return fmt.Errorf("recording the digest of %s: %w", path, err)
	}
	return nil
}

// SHA256 returns path's sha256, from the cache when its size and mtime
// are unchanged, else by hashing it (with "verify" progress events ending
// at 100 %).
func (d *Digests) SHA256(ctx context.Context, path string, fi fs.FileInfo, progress func(providers.Event)) (string, error) {
	if sum, ok := d.cache.Get(path, fi); ok {
		return sum, nil
	}
	key := fileKey{path: path, size: fi.Size(), mtime: fi.ModTime().UnixNano()}
	for {
		d.mu.Lock()
		r, running := d.runs[key]
		if !running {
			r = &digestRun{done: make(chan struct{})}
			d.runs[key] = r
		}
		d.mu.Unlock()
		if !running {
			r.sum, r.err = d.hash(ctx, path, fi, progress)
			r.abandoned = ctx.Err() != nil
			d.mu.Lock()
			delete(d.runs, key) // the cache remembers a success
			d.mu.Unlock()
			close(r.done)
			return r.sum, r.err
		}
		select {
		case <-r.done:
		case <-ctx.Done():
			return "", ctx.Err()
		}
		if !r.abandoned {
			return r.sum, r.err
		}
	}
}

// FileSHA256 is SHA256 for a path not stat'ed yet.
func (d *Digests) FileSHA256(ctx context.Context, path string, progress func(providers.Event)) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("hashing %s: %w", path, err)
	}
	return d.SHA256(ctx, path, fi, progress)
}

func (d *Digests) hash(ctx context.Context, path string, fi fs.FileInfo, progress func(providers.Event)) (string, error) {
	sum, err := hashFile(ctx, path, fi, progress)
	if err != nil {
		return "", err
	}
	return sum, d.Record(ctx, path, fi, sum)
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
