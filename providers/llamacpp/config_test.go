package llamacpp

import (
	"context"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/zclconf/go-cty/cty"

	"github.com/llorch/llorch/providers"
)

func TestGetSchemaDescribesEveryAttribute(t *testing.T) {
	s, diags := New().GetSchema(context.Background())
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if s.Version != Version {
		t.Errorf("Version = %q, want %q", s.Version, Version)
	}
	check := func(where string, b *providers.Block) {
		if b.Description == "" {
			t.Errorf("%s has no description", where)
		}
		for name, a := range b.Attributes {
			if a.Description == "" {
				t.Errorf("%s.%s has no description", where, name)
			}
		}
	}
	check("provider", s.Provider)
	check("provider.source", &s.Provider.Blocks["source"].Block)
	check("pool", s.Pool)

	want := map[string]bool{"n_gpu_layers": true, "tensor_split": true, "threads": true, "parallel": true, "api_key": true}
	for name, a := range s.Pool.Attributes {
		if !want[name] {
			t.Errorf("unexpected pool attribute %q", name)
		}
		if !a.ForcesReplacement || !a.Optional {
			t.Errorf("pool attribute %q: optional=%v forces_replacement=%v, want both", name, a.Optional, a.ForcesReplacement)
		}
		if a.Sensitive != (name == "api_key") {
			t.Errorf("pool attribute %q: sensitive = %v", name, a.Sensitive)
		}
	}
	if got := s.Provider.Blocks["source"].Nesting; got != providers.NestingSingle {
		t.Errorf("source nesting = %v, want NestingSingle", got)
	}
	src := s.Provider.Blocks["source"].Attributes
	if !src["git"].Required || !src["ref"].Required || src["cuda"].Required {
		t.Errorf("source: git and ref must be required, cuda optional")
	}
}

func TestConfigure(t *testing.T) {
	home := t.TempDir()
	wd := t.TempDir()
	tests := []struct {
		name string
		env  []string
		src  string
		want providerConfig
	}{
		{
			name: "no provider block means llama-server on PATH and the XDG cache",
			env:  []string{"HOME=" + home, "XDG_CACHE_HOME=/xdg"},
			want: providerConfig{Binary: "llama-server", CacheDir: "/xdg/llorch"},
		},
		{
			name: "without XDG_CACHE_HOME the cache is under HOME",
			env:  []string{"HOME=" + home},
			want: providerConfig{Binary: "llama-server", CacheDir: filepath.Join(home, ".cache", "llorch")},
		},
		{
			name: "a relative XDG_CACHE_HOME is ignored, as the XDG specification says",
			env:  []string{"HOME=" + home, "XDG_CACHE_HOME=rel"},
			want: providerConfig{Binary: "llama-server", CacheDir: filepath.Join(home, ".cache", "llorch")},
		},
		{
			name: "cache_dir and binary expand ~",
			env:  []string{"HOME=" + home},
			src:  "binary = \"~/bin/llama-server\"\ncache_dir = \"~/llorch-cache\"",
			want: providerConfig{Binary: filepath.Join(home, "bin/llama-server"), CacheDir: filepath.Join(home, "llorch-cache")},
		},
		{
			name: "a relative cache_dir is relative to the working directory",
			env:  []string{"HOME=" + home},
			src:  `cache_dir = ".cache"`,
			want: providerConfig{Binary: "llama-server", CacheDir: filepath.Join(wd, ".cache")},
		},
		{
			name: "a source block with cuda = true reads cuda as the string true",
			env:  []string{"HOME=" + home},
			src: `source {
				git = "https://github.com/ggml-org/llama.cpp"
				ref = "b6600"
				cuda = true
				cmake_args = ["-DGGML_NATIVE=OFF"]
				jobs = 4
			}`,
			want: providerConfig{CacheDir: filepath.Join(home, ".cache", "llorch"), Source: &sourceConfig{
				Git: "https://github.com/ggml-org/llama.cpp", Ref: "b6600", CUDA: "true",
				CMakeArgs: []string{"-DGGML_NATIVE=OFF"}, Jobs: 4}},
		},
		{
			name: "a local git path becomes absolute, scp-like addresses stay",
			env:  []string{"HOME=" + home},
			src:  sourceBlock(`git = "../llama.cpp"`, `ref = "master"`),
			want: providerConfig{CacheDir: filepath.Join(home, ".cache", "llorch"), Source: &sourceConfig{
				Git: filepath.Join(filepath.Dir(wd), "llama.cpp"), Ref: "master", CUDA: "auto"}},
		},
		{
			name: "scp-like git addresses are kept as written",
			env:  []string{"HOME=" + home},
			src:  sourceBlock(`git = "git@github.com:ggml-org/llama.cpp.git"`, `ref = "b1"`),
			want: providerConfig{CacheDir: filepath.Join(home, ".cache", "llorch"), Source: &sourceConfig{
				Git: "git@github.com:ggml-org/llama.cpp.git", Ref: "b1", CUDA: "auto"}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := New(WithEnviron(tc.env), WithWorkingDir(wd))
			if diags := p.Configure(context.Background(), providers.ConfigureRequest{Config: providerBlock(t, tc.src)}); len(diags) > 0 {
				t.Fatalf("Configure: %s", describe(diags))
			}
			cfg, err := p.config()
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(*cfg, tc.want) {
				t.Errorf("config = %+v (source %+v)\nwant %+v (source %+v)", *cfg, cfg.Source, tc.want, tc.want.Source)
			}
		})
	}
}

func TestConfigureRejectsBadProviderBlocks(t *testing.T) {
	tests := []struct {
		name     string
		env      []string
		src      string
		wantPath string
		want     []string
	}{
		{"binary and source together", nil,
			`binary = "/usr/bin/llama-server"` + "\n" + sourceBlock(`git = "https://x/llama.cpp"`, `ref = "b1"`),
			"binary", []string{"sets both binary and a source block", "not both"}},
		{"an unknown cuda value", nil, sourceBlock(`git = "https://x/l"`, `ref = "b1"`, `cuda = "yes"`),
			"source.cuda", []string{`source.cuda = "yes" is not one of "auto", "true" or "false"`}},
		{"GGML_CUDA in cmake_args", nil, sourceBlock(`git = "https://x/l"`, `ref = "b1"`, `cmake_args = ["-DGGML_CUDA=ON"]`),
			"source.cmake_args[0]", []string{`source.cmake_args[0] is "-DGGML_CUDA=ON"; set source.cuda`}},
		{"GGML_CUDA split over two cmake_args", nil, sourceBlock(`git = "https://x/l"`, `ref = "b1"`, `cmake_args = ["-D", "GGML_CUDA:BOOL=OFF"]`),
			"source.cmake_args[0]", []string{`set source.cuda`}},
		{"shared libraries in cmake_args", nil, sourceBlock(`git = "https://x/l"`, `ref = "b1"`, `cmake_args = ["-DBUILD_SHARED_LIBS=ON"]`),
			"source.cmake_args[0]", []string{"static libraries"}},
		{"a build directory in cmake_args", nil, sourceBlock(`git = "https://x/l"`, `ref = "b1"`, `cmake_args = ["-B/tmp/b"]`),
			"source.cmake_args[0]", []string{"chooses the source and build directories itself"}},
		{"an empty ref", nil, sourceBlock(`git = "https://x/l"`, `ref = ""`),
			"source.ref", []string{"source.ref is empty"}},
		{"a ref that git would read as an option", nil, sourceBlock(`git = "https://x/l"`, `ref = "--upload-pack=x"`),
			"source.ref", []string{`"--upload-pack=x" is not a valid tag, branch or commit name`}},
		{"a git URL that git would read as an option", nil, sourceBlock(`git = "--upload-pack=x"`, `ref = "b1"`),
			"source.git", []string{`starts with "-"`}},
		{"zero jobs", nil, sourceBlock(`git = "https://x/l"`, `ref = "b1"`, `jobs = 0`),
			"source.jobs", []string{"jobs = 0 is not allowed: jobs must be a whole number from 1 to 1024"}},
		{"an empty binary", nil, `binary = ""`, "binary", []string{"binary is empty"}},
		{"~user in cache_dir", []string{"HOME=/home/me"}, `cache_dir = "~bob/cache"`,
			"cache_dir", []string{`"~bob/cache": only ~ and ~/ are expanded`}},
		{"no HOME for the default cache", []string{}, ``,
			"cache_dir", []string{"neither XDG_CACHE_HOME nor HOME is set", "set cache_dir in the provider block"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := tc.env
			if env == nil {
				env = []string{"HOME=/home/me"}
			}
			p := New(WithEnviron(env))
			diags := p.Configure(context.Background(), providers.ConfigureRequest{Config: providerBlock(t, tc.src)})
			d := oneDiag(t, diags, providers.Error, tc.want...)
			if got := pathString(d.Attribute); got != tc.wantPath {
				t.Errorf("attribute = %q, want %q", got, tc.wantPath)
			}
			if d.Summary == "" || strings.HasSuffix(d.Summary, ".") {
				t.Errorf("summary %q must be a title without a final period", d.Summary)
			}
		})
	}
}

func TestConfigureAcceptsANullBlock(t *testing.T) {
	p := New(WithEnviron([]string{"HOME=/home/me"}))
	if diags := p.Configure(context.Background(), providers.ConfigureRequest{Config: cty.NullVal(schema().Provider.ImpliedType())}); len(diags) > 0 {
		t.Fatal(describe(diags))
	}
	cfg, _ := p.config()
	if cfg.Binary != "llama-server" || cfg.CacheDir != "/home/me/.cache/llorch" {
		t.Errorf("config = %+v", *cfg)
	}
}

// sourceBlock writes a source {} block from attribute lines.
func sourceBlock(lines ...string) string {
	return "source {\n" + strings.Join(lines, "\n") + "\n}"
}

// llorch tells the provider where the configuration and its cache are:
// relative refs and cache_dir resolve against the configuration directory,
// the cache directory is the default, and cache_dir still wins.
func TestConfigureUsesTheDirectoriesLlorchPasses(t *testing.T) {
	confDir, cacheDir, elsewhere := t.TempDir(), t.TempDir(), t.TempDir()
	model := writeFile(t, confDir, "models/m.gguf", smallGGUF("llama", 4096), 0o644)
	bin := t.TempDir()
	fakeServer(t, bin, "llama-server", "version: 4748 (c392e5094)")
	env := append(testEnv(t, bin), "HOME="+t.TempDir())
	configure := func(t *testing.T, src string) *Provider {
		t.Helper()
		p := New(WithEnviron(env), WithWorkingDir(elsewhere))
		req := providers.ConfigureRequest{Config: providerBlock(t, src), ConfigDir: confDir, CacheDir: cacheDir}
		if diags := p.Configure(context.Background(), req); diags.HasErrors() {
			t.Fatal(describe(diags))
		}
		return p
	}

	t.Run("the cache directory and a relative file: ref", func(t *testing.T) {
		p := configure(t, "")
		if cfg, _ := p.config(); cfg.CacheDir != cacheDir {
			t.Errorf("CacheDir = %q, want llorch's %q", cfg.CacheDir, cacheDir)
		}
		pool := testPool("file:models/m.gguf")
		if diags := p.ValidatePool(context.Background(), providers.ValidatePoolRequest{Pool: pool, Config: poolBlock(t, "")}); len(diags) > 0 {
			t.Fatal(describe(diags))
		}
		pe, diags := p.Ensure(context.Background(), providers.EnsureRequest{Pool: pool, Config: poolBlock(t, "")})
		if len(diags) > 0 {
			t.Fatal(describe(diags))
		}
		if pe.ModelPath != model {
			t.Errorf("ModelPath = %q, want %q (relative to the configuration directory)", pe.ModelPath, model)
		}
	})
	t.Run("cache_dir in the block wins, relative to the configuration directory", func(t *testing.T) {
		p := configure(t, `cache_dir = "cache"`)
		if cfg, _ := p.config(); cfg.CacheDir != filepath.Join(confDir, "cache") {
			t.Errorf("CacheDir = %q", cfg.CacheDir)
		}
	})
	t.Run("an older llorch passes neither", func(t *testing.T) {
		p := New(WithEnviron([]string{"HOME=/home/me"}), WithWorkingDir(elsewhere))
		if diags := p.Configure(context.Background(), providers.ConfigureRequest{Config: providerBlock(t, "")}); diags.HasErrors() {
			t.Fatal(describe(diags))
		}
		if cfg, _ := p.config(); cfg.CacheDir != "/home/me/.cache/llorch" || p.workDir() != elsewhere {
			t.Errorf("CacheDir %q, workDir %q", cfg.CacheDir, p.workDir())
		}
	})
}
