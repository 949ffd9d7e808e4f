package llamacpp

import (
	"bytes"
	"context"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hcldec"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"

	"github.com/llorch/llorch/internal/testgguf"
	"github.com/llorch/llorch/providers"
)

// repoRoot is the directory holding go.mod.
func repoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the test directory")
		}
		dir = parent
	}
}

// tinyLlama writes a generated 9 MB model of tiny-random-llama's shape
// (llama, F16, trained context 256, 32000 tokens) and returns its path.
func tinyLlama(t testing.TB) string {
	t.Helper()
	return testgguf.File(t, testgguf.TinyLlama(), "tinyllama-generated.gguf")
}

// tinyLlamaBytes are the bytes of every file tinyLlama writes.
func tinyLlamaBytes(testing.TB) []byte { return testgguf.TinyLlama().Bytes() }

// tinyLlamaParams: token_embd and output (64x32000 each), two blocks of four
// attention (64x64), three feed-forward (64x128) and two norms (64), and the
// output norm.
const tinyLlamaParams = 2*64*32000 + 2*(4*64*64+3*64*128+2*64) + 64

// smallGGUF is a minimal valid GGUF file (one F32 tensor) with the given
// architecture and trained context length.
func smallGGUF(arch string, ctxLen uint32) []byte {
	var b bytes.Buffer
	w := func(v any) { _ = binary.Write(&b, binary.LittleEndian, v) }
	str := func(s string) { w(uint64(len(s))); b.WriteString(s) }
	b.WriteString("GGUF")
	w(uint32(3))
	w(uint64(1)) // tensors
	w(uint64(2)) // key/values
	str("general.architecture")
	w(uint32(8))
	str(arch)
	str(arch + ".context_length")
	w(uint32(4))
	w(ctxLen)
	str("w")
	w(uint32(1))
	w(uint64(16))
	w(uint32(0))
	w(uint64(0))
	return b.Bytes()
}

// writeFile writes data to dir/name (creating dir) and returns the path.
func writeFile(t testing.TB, dir, name string, data []byte, perm os.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, perm); err != nil {
		t.Fatal(err)
	}
	return p
}

// fakeServer writes a shell script that answers --version on stderr like
// llama-server build 4748 and records each run in a counter file.
func fakeServer(t testing.TB, dir, name, versionLine string) (path, counter string) {
	t.Helper()
	counter = filepath.Join(dir, name+".runs")
	script := "#!/bin/sh\necho run >> '" + counter + "'\necho '" + versionLine + "' >&2\necho 'built with cc for x86_64-linux-gnu' >&2\n"
	return writeFile(t, dir, name, []byte(script), 0o755), counter
}

// runs counts the lines of a counter file (0 when absent).
func runs(t testing.TB, counter string) int {
	t.Helper()
	data, err := os.ReadFile(counter)
	if os.IsNotExist(err) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(data), "\n")
}

// testEnv is a hermetic environment: PATH is the given directories, HOME a
// temporary directory, and no HF_* variables unless added.
func testEnv(t testing.TB, path ...string) []string {
	t.Helper()
	return []string{"PATH=" + strings.Join(path, string(os.PathListSeparator)), "HOME=" + t.TempDir()}
}

// systemPath is the real PATH, for tests that need git, cmake and a compiler.
func systemPath() string { return os.Getenv("PATH") }

// linkTools makes a directory with symlinks to the named real tools, for a
// PATH that holds some tools and lacks others.
func linkTools(t testing.TB, tools ...string) string {
	t.Helper()
	dir := t.TempDir()
	for _, tool := range tools {
		real, err := exec.LookPath(tool)
		if err != nil {
			t.Fatalf("%s is needed by this test and is not installed: %v", tool, err)
		}
		if err := os.Symlink(real, filepath.Join(dir, tool)); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// requireTools fails (never skips) when a tool the source-build tests need
// is missing, saying what to install.
func requireTools(t testing.TB) {
	t.Helper()
	for _, tool := range []string{"git", "cmake", "make", "cc"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not installed; the source-build tests need cmake, make, a C compiler and git "+
				"(Debian/Ubuntu: apt-get install cmake build-essential git)", tool)
		}
	}
}

// decodeBlock decodes HCL source against a schema block, as core does.
func decodeBlock(t testing.TB, b *providers.Block, src string) cty.Value {
	t.Helper()
	f, diags := hclsyntax.ParseConfig([]byte(src), "test.hcl", hcl.InitialPos)
	if diags.HasErrors() {
		t.Fatalf("parsing %q: %s", src, diags.Error())
	}
	v, diags := hcldec.Decode(f.Body, b.DecoderSpec(), nil)
	if diags.HasErrors() {
		t.Fatalf("decoding %q: %s", src, diags.Error())
	}
	return v
}

func poolBlock(t testing.TB, src string) cty.Value {
	t.Helper()
	return decodeBlock(t, schema().Pool, src)
}

func providerBlock(t testing.TB, src string) cty.Value {
	t.Helper()
	return decodeBlock(t, schema().Provider, src)
}

// newTestProvider is a provider with its own cache and environment,
// configured with the provider block src.
func newTestProvider(t testing.TB, env []string, src string, opts ...Option) *Provider {
	t.Helper()
	p := New(append([]Option{WithEnviron(env), WithCacheDir(filepath.Join(t.TempDir(), "cache")), WithWorkingDir(t.TempDir())}, opts...)...)
	p.cudaDirs = nil // tests decide where nvcc is
	if diags := p.Configure(context.Background(), providers.ConfigureRequest{Config: providerBlock(t, src)}); diags.HasErrors() {
		t.Fatalf("Configure(%q): %v", src, diags)
	}
	return p
}

// testPool is a pool serving model ref on 127.0.0.1:8080.
func testPool(ref string) providers.PoolSpec {
	return providers.PoolSpec{Addr: "pool.chat", ID: "chat", Model: providers.ModelRef{Ref: ref},
		Host: "127.0.0.1", Port: 8080, Replicas: 1}
}

// oneDiag asserts diags holds exactly one diagnostic of severity sev whose
// detail contains every part, and returns it.
func oneDiag(t testing.TB, diags providers.Diagnostics, sev providers.Severity, parts ...string) providers.Diagnostic {
	t.Helper()
	if len(diags) != 1 {
		t.Fatalf("got %d diagnostics, want 1: %v", len(diags), describe(diags))
	}
	d := diags[0]
	if d.Severity != sev {
		t.Errorf("severity = %v, want %v (%s)", d.Severity, sev, describe(diags))
	}
	for _, part := range parts {
		if !strings.Contains(d.Detail, part) {
			t.Errorf("detail %q does not contain %q", d.Detail, part)
		}
	}
	return d
}

func describe(diags providers.Diagnostics) string {
	var parts []string
	for _, d := range diags {
		parts = append(parts, d.Severity.String()+": "+d.Summary+": "+d.Detail+" at "+pathString(d.Attribute))
	}
	return strings.Join(parts, "\n")
}

// pathString renders a cty.Path like "flags[2]" or "model.ref".
func pathString(p cty.Path) string {
	var b strings.Builder
	for _, step := range p {
		switch s := step.(type) {
		case cty.GetAttrStep:
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(s.Name)
		case cty.IndexStep:
			switch s.Key.Type() {
			case cty.Number:
				b.WriteString("[" + s.Key.AsBigFloat().Text('f', -1) + "]")
			case cty.String:
				b.WriteString("[\"" + s.Key.AsString() + "\"]")
			}
		}
	}
	return b.String()
}
