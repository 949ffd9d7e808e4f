package stage

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/llorch/llorch/providers"
)

// Stager stages models into a cache directory. The zero value of every
// field but CacheDir is usable; a Stager is safe for concurrent use, and
// several processes may share one cache directory (lock files keep them
// from downloading one file twice).
type Stager struct {
	// CacheDir is where downloads go, under models/. Use
	// ConfigureRequest.CacheDir, or a directory of the provider's block.
	CacheDir string
	// Client sends the downloads; nil uses one with connect, TLS and
	// response-header timeouts and the proxy from the environment.
	Client *http.Client
	// Getenv reads HF_ENDPOINT, HF_TOKEN, HF_TOKEN_PATH, HF_HOME,
	// XDG_CACHE_HOME and HOME, as huggingface_hub does; nil is os.Getenv.
	Getenv func(string) string
	// UserAgent is sent with downloads, e.g. "llorch-vllm/0.1".
	UserAgent string
	// StallTimeout abandons a download that receives nothing for this long
	// (the partial file is kept for the next attempt); 0 is 2 minutes.
	StallTimeout time.Duration
	// Digests remembers the sha256 of files by path, size and mtime; nil
	// hashes a local or cached file on every Stage.
	Digests *Digests
	// Check, when set, vets a model file before it is used: a finished
	// download before it moves into the cache, a cached copy before it is
	// reused, and a local file. A download that fails is removed; a cached
	// copy that fails is removed and downloaded again; a local file's
	// failure is returned. Return an *Error to choose the summary.
	Check func(ctx context.Context, path string) error
}

// Staged is a model ready to load: a local file and its sha256.
type Staged struct {
	Path   string
	SHA256 string // lower-case hex
	Size   int64
	// Revision is the commit an hf: ref resolved to when it was downloaded
	// (Hugging Face's X-Repo-Commit), "" when the server named none.
	Revision string
}

// revisionFile keeps the revision of a downloaded model beside it, so that
// a later Stage served from the cache still knows it.
func revisionFile(dest string) string { return dest + ".revision" }

// noteRevision records the revision a download of dest is served from.
// Best effort: a revision not recorded is only missing from the lock file.
func (st *Stager) noteRevision(dest, rev string) {
	_ = WriteFileAtomic(revisionFile(dest), []byte(rev+"\n"), 0o644)
}

func cachedRevision(dest string) string {
	b, err := os.ReadFile(revisionFile(dest))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// Field is the part of the pool's model block an Error is about.
type Field int

const (
	// FieldRef is the model ref.
	FieldRef Field = iota
	// FieldSHA256 is the expected digest.
	FieldSHA256
)

// Error is a staging failure the user can fix in the configuration: it
// carries a diagnostic summary ("Model Download Failed") and the field to
// point at. Map it with errors.As, as in
//
//	var se *stage.Error
//	if errors.As(err, &se) { /* Summary: se.Summary, Detail: err.Error(), Attribute: path of se.Field */ }
type Error struct {
	Summary string
	Field   Field
	Err     error
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// summary is the Summary of the *Error in err's chain, or fallback.
func summary(err error, fallback string) string {
	var se *Error
	if errors.As(err, &se) {
		return se.Summary
	}
	return fallback
}

func (st *Stager) getenv(key string) string {
	if st.Getenv != nil {
		return st.Getenv(key)
	}
	return os.Getenv(key)
}

var defaultClient = &http.Client{Transport: &http.Transport{
	Proxy:                 http.ProxyFromEnvironment,
	DialContext:           (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
	TLSHandshakeTimeout:   30 * time.Second,
	ResponseHeaderTimeout: 60 * time.Second,
	ForceAttemptHTTP2:     true,
}}

func (st *Stager) client() *http.Client {
	if st.Client != nil {
		return st.Client
	}
	return defaultClient
}

func (st *Stager) stallTimeout() time.Duration {
	if st.StallTimeout > 0 {
		return st.StallTimeout
	}
	return 2 * time.Minute
}

func (st *Stager) check(ctx context.Context, path string) error {
	if st.Check == nil {
		return nil
	}
	return st.Check(ctx, path)
}

func (st *Stager) digests() *Digests {
	if st.Digests != nil {
		return st.Digests
	}
	return NewDigests("")
}

// Stage makes ref available locally: a file: model is checked in place
// (never modified or removed), a download is fetched into the cache unless
// a good copy is already there. The file is verified against want
// (lower-case hex, "" for none) and vetted by Check. Progress events have
// the stages "download" and "verify"; progress may not be nil.
func (st *Stager) Stage(ctx context.Context, ref Ref, want string, progress func(providers.Event)) (*Staged, error) {
	if ref.Kind == File {
		return st.stageLocal(ctx, ref, want, progress)
	}
	if !filepath.IsAbs(st.CacheDir) {
		return nil, fmt.Errorf("staging %s: the cache directory %q is not an absolute path, so there is nowhere to download it to", ref.Raw, st.CacheDir)
	}
	dest := ref.LocalPath(st.CacheDir)
	unlock, err := LockFile(ctx, dest+".lock", func() {
		progress(providers.Event{Stage: "download", Message: "waiting for another llorch process downloading " + ref.Raw})
	})
	if err != nil {
		return nil, err
	}
	defer unlock()

	digests := st.digests()
	fi, err := os.Stat(dest)
	switch {
	case err == nil:
		m, err := st.checkCached(ctx, ref, dest, fi, want, digests, progress)
		if err != nil || m != nil {
			return m, err
		}
		// The cached copy was stale and is gone: download it again.
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("checking the cached model %s: %w", dest, err)
	}

	src := st.downloadSource(ref)
	progress(providers.Event{Stage: "download", Message: fmt.Sprintf("downloading %s from %s", ref.Raw, src.shown())})
	sum, err := st.fetch(ctx, src, dest, want, progress)
	if err != nil {
		return nil, err
	}
	fi, err = os.Stat(dest)
	if err != nil {
		return nil, fmt.Errorf("checking the downloaded model %s: %w", dest, err)
	}
	if err := digests.Record(ctx, dest, fi, sum); err != nil {
		return nil, err
	}
	return &Staged{Path: dest, SHA256: sum, Size: fi.Size(), Revision: cachedRevision(dest)}, nil
}

// StatLocal stats the file ref stands for on this machine (LocalPath). A
// missing or irregular file: model is an *Error that says what to fix; a
// download not there yet is an error that matches fs.ErrNotExist.
func (m Ref) StatLocal(cacheDir string) (fs.FileInfo, error) {
	path := m.LocalPath(cacheDir)
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist) && m.Kind != File:
		return nil, err
	case errors.Is(err, fs.ErrNotExist):
		return nil, &Error{Summary: "Model File Not Found", Field: FieldRef, Err: fmt.Errorf(
			"model file %s not found (model ref %q); check the path, or use an hf: or https:// ref to have llorch download it",
			path, m.Raw)}
	case err != nil:
		return nil, &Error{Summary: "Model File Unreadable", Field: FieldRef, Err: fmt.Errorf("checking model file %s: %w", path, err)}
	case !fi.Mode().IsRegular():
		return nil, &Error{Summary: "Model File Not Found", Field: FieldRef, Err: fmt.Errorf(
			"model ref %q names %s, which is not a regular file; point it at a model file", m.Raw, path)}
	}
	return fi, nil
}

// ChecksumMismatch is the error for a file: model whose digest got is not
// the configured want.
func ChecksumMismatch(path, want, got string) error {
	return &Error{Summary: "Model Checksum Mismatch", Field: FieldSHA256, Err: fmt.Errorf(
		"sha256 mismatch for model file %s: expected %s, got %s; fix sha256 in the pool's model block, or point the ref at the intended file",
		path, want, got)}
}

// stageLocal checks a file: model: it exists, passes Check, and matches
// want. The user's file is never modified or removed.
func (st *Stager) stageLocal(ctx context.Context, ref Ref, want string, progress func(providers.Event)) (*Staged, error) {
	fi, err := ref.StatLocal(st.CacheDir)
	if err != nil {
		return nil, err
	}
	if err := st.check(ctx, ref.Path); err != nil {
		return nil, err
	}
	sum, err := st.digests().SHA256(ctx, ref.Path, fi, progress)
	if err != nil {
		return nil, err
	}
	if want != "" && sum != want {
		return nil, ChecksumMismatch(ref.Path, want, sum)
	}
	return &Staged{Path: ref.Path, SHA256: sum, Size: fi.Size()}, nil
}

// checkCached verifies a model downloaded by an earlier Stage. A cached
// copy that no longer matches want (the configured digest changed, or a
// moving revision was pinned anew) or fails Check is removed, and
// checkCached returns nil, nil so that the caller downloads it again.
func (st *Stager) checkCached(ctx context.Context, ref Ref, dest string, fi fs.FileInfo, want string, digests *Digests,
	progress func(providers.Event)) (*Staged, error) {
	if err := st.check(ctx, dest); err != nil {
		if ctx.Err() != nil {
			return nil, err
		}
		progress(providers.Event{Stage: "verify", Message: fmt.Sprintf("the cached copy of %s is unusable (%v); downloading it again", ref.Raw, err)})
		_ = os.Remove(revisionFile(dest))
		if err := os.Remove(dest); err != nil {
			return nil, fmt.Errorf("removing the unusable cached model %s: %w", dest, err)
		}
		return nil, nil
	}
	sum, err := digests.SHA256(ctx, dest, fi, progress)
	if err != nil {
		return nil, err
	}
	if want != "" && sum != want {
		progress(providers.Event{Stage: "verify", Message: fmt.Sprintf(
			"the cached copy of %s has sha256 %s, not %s; removing it and downloading again", ref.Raw, sum, want)})
		_ = os.Remove(revisionFile(dest))
		if err := os.Remove(dest); err != nil {
			return nil, fmt.Errorf("removing the mismatched cached model %s: %w", dest, err)
		}
		return nil, nil
	}
	return &Staged{Path: dest, SHA256: sum, Size: fi.Size(), Revision: cachedRevision(dest)}, nil
}
