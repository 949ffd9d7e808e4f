package llamacpp

import (
	ggufparser "github.com/gpustack/gguf-parser-go"

	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/llorch/llorch/providers"
	"github.com/llorch/llorch/providers/sdk/gguf"
	"github.com/llorch/llorch/providers/sdk/stage"
)

// Provider is the llamacpp provider. Create it with New; it is safe for
// concurrent use once Configure has returned.
type Provider struct {
	env          environ
	wd           string // "" = the process's working directory
	httpClient   *http.Client
	cacheDir     string   // used when the provider block sets no cache_dir
	cudaDirs     []string // where nvcc is looked for besides PATH
	stallTimeout time.Duration
	execTimeout  time.Duration // for --version and nvidia-smi

	// What Configure was told (providers.ConfigureRequest); "" from an
	// older llorch. dirMu guards them alone, since workDir is called with
	// mu held.
	dirMu        sync.Mutex
	configDir    string // where relative paths resolve, before wd
	hostCacheDir string // llorch's cache directory, after cacheDir

	mu       sync.Mutex
	cfg      *providerConfig
	versions *stage.FileCache // binary path → engine version
	digests  *stage.Digests   // model and binary path → sha256

	// What one llorch command learns once and reuses for every pool (see
	// memo.go). The first three answer questions about the provider block
	// and are forgotten when Configure receives a different one; the
	// others are facts about files and GPUs of this machine.
	binaries    flight[string, string]                    // binary setting → path found on PATH (planning)
	sourcePlans flight[*providerConfig, plannedEngine]    // source mode: the planned engine version
	refs        flight[gitRef, string]                    // repository and ref → commit from git ls-remote
	versionRuns flight[fileKey, string]                   // llama-server --version by path, size and mtime
	metas       flight[fileKey, *gguf.Metadata]           // GGUF metadata by path, size and mtime
	metaReader  func(path string) (*gguf.Metadata, error) // readMeta; tests count the reads
	parsed      flight[fileKey, *ggufparser.GGUFFile]     // headers for memory estimates, by path, size and mtime
}

// maxParsed bounds the parsed GGUF headers kept for memory estimates:
// tensor lists of a few hundred KiB each for the largest models.
const maxParsed = 64

// maxMetas bounds the GGUF metadata kept in memory: a few hundred bytes
// each, far more than the distinct models of any configuration.
const maxMetas = 4096

var _ providers.Provider = (*Provider)(nil)

// Option configures a Provider.
type Option func(*Provider)

// WithCacheDir sets the cache directory used when the provider block sets
// no cache_dir (instead of $XDG_CACHE_HOME/llorch or ~/.cache/llorch).
func WithCacheDir(dir string) Option { return func(p *Provider) { p.cacheDir = dir } }

// WithHTTPClient sets the client used for model downloads.
func WithHTTPClient(c *http.Client) Option { return func(p *Provider) { p.httpClient = c } }

// WithEnviron replaces the process environment the provider reads (PATH,
// HOME, XDG_CACHE_HOME, HF_TOKEN, HF_ENDPOINT) and passes to git, cmake
// and llama-server --version.
func WithEnviron(env []string) Option {
	return func(p *Provider) { p.env = append(environ(nil), env...) }
}

// WithWorkingDir sets the directory relative file: refs, binary paths and
// git paths resolve against when Configure is given no configuration
// directory (default: the process's working directory).
func WithWorkingDir(dir string) Option { return func(p *Provider) { p.wd = dir } }

// WithStallTimeout sets how long a download may receive nothing before it
// is abandoned (default 2 minutes); the partial file is kept for resuming.
func WithStallTimeout(d time.Duration) Option { return func(p *Provider) { p.stallTimeout = d } }

// New returns the llamacpp provider.
func New(opts ...Option) *Provider {
	p := &Provider{
		env:          environ(os.Environ()),
		cudaDirs:     []string{"/usr/local/cuda/bin"},
		stallTimeout: 2 * time.Minute,
		execTimeout:  30 * time.Second,
		metaReader:   readMeta,
	}
	p.metas.max = maxMetas
	p.parsed.max = maxParsed
	for _, o := range opts {
		o(p)
	}
	if p.httpClient == nil {
		p.httpClient = &http.Client{Transport: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			TLSHandshakeTimeout:   30 * time.Second,
			ResponseHeaderTimeout: 60 * time.Second,
			ForceAttemptHTTP2:     true,
		}}
	}
	return p
}

// GetSchema describes the provider block and the pool's llamacpp block.
func (p *Provider) GetSchema(ctx context.Context) (*providers.Schema, providers.Diagnostics) {
	return schema(), nil
}

// Configure reads the provider block: binary or source (not both), and
// the cache directory with ~ expanded.
func (p *Provider) Configure(ctx context.Context, req providers.ConfigureRequest) providers.Diagnostics {
	p.dirMu.Lock()
	p.configDir, p.hostCacheDir = req.ConfigDir, req.CacheDir
	p.dirMu.Unlock()
	cfg, diags := decodeProviderConfig(req.Config, p.env, p.workDir())
	if diags.HasErrors() {
		return diags
	}
	if cfg.CacheDir == "" {
		dir, err := p.defaultCacheDir()
		if err != nil {
			return append(diags, providers.AttributeErrorf(cty.GetAttrPath("cache_dir"), "No Cache Directory", "%s.", err))
		}
		cfg.CacheDir = dir
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cfg != nil && reflect.DeepEqual(p.cfg, cfg) {
		return diags // the same block again: what was learnt still holds
	}
	p.setConfigLocked(cfg)
	p.binaries.reset()
	p.sourcePlans.reset()
	p.refs.reset()
	return diags
}

func (p *Provider) setConfigLocked(cfg *providerConfig) {
	p.cfg = cfg
	p.versions = stage.NewFileCache(filepath.Join(cfg.CacheDir, "versions.json"))
	p.digests = stage.NewDigests(filepath.Join(cfg.CacheDir, "digests.json"))
}

// defaultCacheDir is the cache directory when the provider block names
// none: WithCacheDir's, else the one llorch passed to Configure, else
// $XDG_CACHE_HOME/llorch or ~/.cache/llorch (an older llorch passes none).
func (p *Provider) defaultCacheDir() (string, error) {
	if p.cacheDir != "" {
		return stage.Resolve(p.cacheDir, p.workDir()), nil
	}
	p.dirMu.Lock()
	host := p.hostCacheDir
	p.dirMu.Unlock()
	if host != "" {
		return host, nil
	}
	return p.env.defaultCacheDir()
}

// config returns the configuration, configuring defaults (as for an absent
// provider block) when Configure was never called.
func (p *Provider) config() (*providerConfig, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cfg != nil {
		return p.cfg, nil
	}
	cfg, diags := decodeProviderConfig(cty.NullVal(cty.DynamicPseudoType), p.env, p.workDir())
	if err := diags.Err(); err != nil {
		return nil, err
	}
	dir, err := p.defaultCacheDir()
	if err != nil {
		return nil, err
	}
	cfg.CacheDir = dir
	p.setConfigLocked(cfg)
	return cfg, nil
}

// caches returns the version and digest caches; without a usable cache
// directory they live in memory only.
func (p *Provider) caches() (versions *stage.FileCache, digests *stage.Digests) {
	_, err := p.config()
	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil && p.versions == nil {
		p.versions, p.digests = stage.NewFileCache(""), stage.NewDigests("")
	}
	return p.versions, p.digests
}

// workDir is where relative paths (file: refs, binary, git, cache_dir)
// resolve: the configuration directory llorch passed to Configure, else
// WithWorkingDir's, else the process's working directory.
func (p *Provider) workDir() string {
	p.dirMu.Lock()
	dir := p.configDir
	p.dirMu.Unlock()
	if dir != "" {
		return dir
	}
	if p.wd != "" {
		return p.wd
	}
	wd, err := os.Getwd()
	if err != nil {
		return "/"
	}
	return wd
}

// Cleanup does nothing: the cache (engines, models) is shared by every pool
// and every llorch working directory using it, so a destroyed pool cannot
// know that nothing else needs its files.
func (p *Provider) Cleanup(ctx context.Context, req providers.CleanupRequest) providers.Diagnostics {
	return nil
}

// Close releases nothing; the provider holds no open resources between calls.
func (p *Provider) Close() error { return nil }

// diagError is an error that knows how to be a diagnostic: its summary and
// the attribute it is about.
type diagError struct {
	summary string
	path    cty.Path
	err     error
}

func (e *diagError) Error() string { return e.err.Error() }
func (e *diagError) Unwrap() error { return e.err }

func withDiag(summary string, path cty.Path, err error) error {
	if err == nil {
		return nil
	}
	return &diagError{summary: summary, path: path, err: err}
}

// toDiags turns err into diagnostics, using fallback as the summary when
// err carries none.
func toDiags(fallback string, err error) providers.Diagnostics {
	var se *stage.Error
	if errors.As(err, &se) {
		path := modelRefPath
		if se.Field == stage.FieldSHA256 {
			path = modelSHA256Path
		}
		return providers.Diagnostics{{Severity: providers.Error, Summary: se.Summary, Detail: err.Error(), Attribute: path}}
	}
	var de *diagError
	if errors.As(err, &de) {
		return providers.Diagnostics{{Severity: providers.Error, Summary: de.summary, Detail: err.Error(), Attribute: de.path}}
	}
	return providers.FromError(fallback, err)
}
