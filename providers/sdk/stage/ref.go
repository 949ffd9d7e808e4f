package stage

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/url"
	"path"
	"path/filepath"
	"strings"
)

// Kind is the form of a model reference.
type Kind int

const (
	// File is a local path: file:PATH.
	File Kind = iota
	// HTTPS is a URL: https://host/path/file.
	HTTPS
	// HF is a file in a Hugging Face repository: hf:ORG/REPO/FILE[@REV].
	HF
)

// Ref is a parsed model reference.
type Ref struct {
	Raw  string // as written
	Kind Kind
	// Path is the local file of a file: ref (absolute).
	Path string
	// URL is the https:// ref.
	URL *url.URL
	// HF fields of hf:org/repo/path/file.gguf[@revision].
	Org, Repo, File, Revision string
}

const refForms = "file:/path/model.gguf, https://host/model.gguf or hf:org/repo/file.gguf[@revision]"

// ParseRef parses a model reference: file:PATH, https://host/path/file or
// hf:org/repo/path/file[@revision]. A relative file: path resolves against
// dir, which should be ConfigureRequest.ConfigDir so that a ref means the
// same file to every provider, wherever llorch runs from.
func ParseRef(ref, dir string) (Ref, error) {
	m := Ref{Raw: ref}
	switch {
	case ref == "":
		return m, fmt.Errorf("the model ref is empty; use %s", refForms)
	case strings.HasPrefix(ref, "file:"):
		p := strings.TrimPrefix(ref, "file:")
		if strings.HasPrefix(p, "//") {
			// file:///abs is a URL with an empty host; file://host/x names another machine.
			if !strings.HasPrefix(p, "///") {
				return m, fmt.Errorf("model ref %q names a host; file: refs are local paths, like file:/srv/models/model.gguf", ref)
			}
			p = strings.TrimPrefix(p, "//")
		}
		if p == "" {
			return m, fmt.Errorf("model ref %q has no path; use file:/path/model.gguf (absolute, or relative to the configuration directory)", ref)
		}
		m.Kind = File
		m.Path = Resolve(p, dir)
		return m, nil
	case strings.HasPrefix(ref, "https://"):
		u, err := url.Parse(ref)
		if err != nil {
			return m, fmt.Errorf("model ref is not a valid URL: %w", err)
		}
		if u.Host == "" {
			return m, fmt.Errorf("model ref %q has no host; use https://host/path/model.gguf", u.Redacted())
		}
		if u.Path == "" || strings.HasSuffix(u.Path, "/") {
			return m, fmt.Errorf("model ref %q does not name a file; use https://host/path/model.gguf", u.Redacted())
		}
		m.Kind = HTTPS
		m.URL = u
		return m, nil
	case strings.HasPrefix(ref, "hf:"):
		return parseHFRef(ref)
	case strings.HasPrefix(ref, "http://"):
		return m, fmt.Errorf("model ref %q uses plain http://, which is not supported; use https://, or one of %s", redactRef(ref), refForms)
	default:
		scheme := ref
		if i := strings.Index(ref, ":"); i > 0 {
			scheme = ref[:i+1]
		}
		return m, fmt.Errorf("model ref %q has an unsupported form (%q); use %s", redactRef(ref), scheme, refForms)
	}
}

// parseHFRef parses hf:org/repo/path/file.gguf[@revision]. The revision is
// after the last "@", so it may itself contain "/" (refs/pr/1).
func parseHFRef(ref string) (Ref, error) {
	m := Ref{Raw: ref, Kind: HF, Revision: "main"}
	body := strings.TrimPrefix(ref, "hf:")
	if i := strings.LastIndex(body, "@"); i >= 0 {
		m.Revision = body[i+1:]
		body = body[:i]
		if m.Revision == "" {
			return m, fmt.Errorf("hf: ref %q ends in \"@\" with no revision; write @main, a tag or a commit, or leave the @ out", ref)
		}
		for _, seg := range strings.Split(m.Revision, "/") {
			if seg == "" || seg == "." || seg == ".." {
				return m, fmt.Errorf("hf: ref %q has an invalid revision %q", ref, m.Revision)
			}
		}
	}
	if strings.HasPrefix(body, "/") {
		return m, fmt.Errorf("hf: ref %q is an absolute path; write hf:org/repo/file.gguf, without a leading /", ref)
	}
	segs := strings.Split(body, "/")
	for _, s := range segs {
		switch s {
		case "..":
			return m, fmt.Errorf("hf: ref %q contains a \"..\" segment; name the file by its path inside the repository, as in hf:org/repo/file.gguf", ref)
		case ".", "":
			return m, fmt.Errorf("hf: ref %q has an empty or \".\" path segment; write hf:org/repo/file.gguf", ref)
		}
	}
	if len(segs) < 3 {
		return m, fmt.Errorf("hf: ref %q has %d segment(s) but needs at least 3: the organisation, the repository and the file, as in hf:org/repo/file.gguf[@revision]", ref, len(segs))
	}
	m.Org, m.Repo, m.File = segs[0], segs[1], strings.Join(segs[2:], "/")
	return m, nil
}

// redactRef hides credentials in a URL-like ref for messages.
func redactRef(ref string) string {
	if u, err := url.Parse(ref); err == nil && u.User != nil {
		return u.Redacted()
	}
	return ref
}

// HFResolveURL is the download URL of an hf: ref, as huggingface_hub
// builds it: ENDPOINT/org/repo/resolve/REVISION/path, with the revision
// escaped as one path segment.
func (m Ref) HFResolveURL(endpoint string) string {
	segs := strings.Split(m.File, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return strings.TrimRight(endpoint, "/") + "/" + url.PathEscape(m.Org) + "/" + url.PathEscape(m.Repo) +
		"/resolve/" + url.PathEscape(m.Revision) + "/" + strings.Join(segs, "/")
}

// LocalPath is where the model is on this machine: a file: ref's path, or
// where a download lives in cacheDir: models/hf/ORG/REPO/REVISION/PATH or
// models/url/HASH/NAME. The file may not exist yet.
func (m Ref) LocalPath(cacheDir string) string {
	switch m.Kind {
	case HF:
		return filepath.Join(cacheDir, "models", "hf", m.Org, m.Repo, url.PathEscape(m.Revision), filepath.FromSlash(m.File))
	case HTTPS:
		name := path.Base(m.URL.Path)
		if unescaped, err := url.PathUnescape(name); err == nil {
			name = unescaped
		}
		if name == "." || name == "/" || name == ".." || strings.ContainsAny(name, "/\\") || name == "" {
			name = "model.gguf"
		}
		return filepath.Join(cacheDir, "models", "url", ShortHash(m.URL.String()), name)
	}
	return m.Path
}

// ShortHash is the first 16 hex digits of s's sha256: a stable directory
// name for a URL or a git repository.
func ShortHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])[:16]
}

// ValidSHA256 reports whether s is a 64-digit hex sha256.
func ValidSHA256(s string) bool {
	if len(s) != 64 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

// Resolve makes p absolute: a relative p is taken relative to dir.
func Resolve(p, dir string) string {
	if filepath.IsAbs(p) {
		return filepath.Clean(p)
	}
	return filepath.Join(dir, p)
}

// DefaultCacheDir is llorch's cache directory: $XDG_CACHE_HOME/llorch when
// XDG_CACHE_HOME is absolute, else ~/.cache/llorch; "" when HOME is unset
// too. It is what llorch passes as ConfigureRequest.CacheDir; a provider
// falls back on it when an older llorch passes none.
func DefaultCacheDir(getenv func(string) string) string {
	if x := getenv("XDG_CACHE_HOME"); filepath.IsAbs(x) {
		return filepath.Join(x, "llorch")
	}
	if home := getenv("HOME"); home != "" {
		return filepath.Join(home, ".cache", "llorch")
	}
	return ""
}
