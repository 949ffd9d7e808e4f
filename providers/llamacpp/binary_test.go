package llamacpp

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/llorch/llorch/providers"
)

func TestParseVersion(t *testing.T) {
	tests := []struct {
		out  string
		want string
	}{
		{"version: 4748 (c392e5094)\nbuilt with cc (Debian 12.2.0-14) 12.2.0 for x86_64-linux-gnu\n", "llamacpp-b4748-c392e5094"},
		{"version: 0.2.0-dev (build 10573, commit d775b8967)\nbuilt with GNU 12.2.0 for Linux x86_64\n", "llamacpp-b10573-d775b8967"},
		{"ggml_cuda_init: found 1 CUDA devices:\n  Device 0: NVIDIA A10\nversion: 6600 (abcdef012)\n", "llamacpp-b6600-abcdef012"},
	}
	for _, tc := range tests {
		got, ok := parseVersion(tc.out)
		if !ok || got != tc.want {
			t.Errorf("parseVersion(%q) = %q, %v; want %q", tc.out, got, ok, tc.want)
		}
	}
	if got, ok := parseVersion("usage: llama-server [options]"); ok {
		t.Errorf("parseVersion(usage) = %q, want no version", got)
	}
}

func TestResolveBinaryErrors(t *testing.T) {
	bin := t.TempDir()
	writeFile(t, bin, "not-exec", []byte("#!/bin/sh\n"), 0o644)
	if err := os.Mkdir(filepath.Join(bin, "a-dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		binary string
		path   string
		want   []string
	}{
		{"a name missing from PATH", "llama-server", bin + ":/nowhere",
			[]string{`llama-server binary "llama-server" not found (looked on PATH: ` + bin + `:/nowhere)`,
				"install llama.cpp or set binary to its path, or use a source {} block"}},
		{"an empty PATH", "llama-server", "",
			[]string{"(looked on PATH: PATH is empty)"}},
		{"a missing path", filepath.Join(bin, "nope"), bin,
			[]string{`llama-server binary "` + filepath.Join(bin, "nope") + `" not found`, "install llama.cpp"}},
		{"a path that is not executable", filepath.Join(bin, "not-exec"), bin,
			[]string{"is not executable (mode -rw-r--r--)", "chmod +x " + filepath.Join(bin, "not-exec")}},
		{"a name on PATH that is not executable", "not-exec", bin,
			[]string{`"` + filepath.Join(bin, "not-exec") + `" is not executable`, "chmod +x"}},
		{"a directory", filepath.Join(bin, "a-dir"), bin,
			[]string{"is a directory; set binary to the llama-server file"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := newTestProvider(t, []string{"PATH=" + tc.path, "HOME=/h"}, `binary = "`+tc.binary+`"`)
			_, diags := p.Ensure(context.Background(), providers.EnsureRequest{Pool: testPool("file:" + tinyLlama(t)), Config: poolBlock(t, "")})
			d := oneDiag(t, diags, providers.Error, tc.want...)
			if d.Summary != "Engine Binary Not Found" {
				t.Errorf("summary = %q", d.Summary)
			}
		})
	}
}

func TestBinaryVersionIsCachedBySizeAndMtime(t *testing.T) {
	bin := t.TempDir()
	server, counter := fakeServer(t, bin, "llama-server", "version: 4748 (c392e5094)")
	cache := filepath.Join(t.TempDir(), "cache")
	env := testEnv(t, bin)
	p := New(WithEnviron(env), WithCacheDir(cache))
	ctx := context.Background()

	for i := 0; i < 3; i++ {
		v, err := p.binaryVersion(ctx, server)
		if err != nil {
			t.Fatal(err)
		}
		if v != "llamacpp-b4748-c392e5094" {
			t.Fatalf("version = %q", v)
		}
	}
	if n := runs(t, counter); n != 1 {
		t.Errorf("--version ran %d times in one process, want 1", n)
	}

	// A new process sharing the cache directory reads the version from disk.
	if v, err := New(WithEnviron(env), WithCacheDir(cache)).binaryVersion(ctx, server); err != nil || v != "llamacpp-b4748-c392e5094" {
		t.Fatalf("second provider: %q, %v", v, err)
	}
	if n := runs(t, counter); n != 1 {
		t.Errorf("--version ran %d times across two providers sharing a cache, want 1", n)
	}

	// Replacing the binary (new size and mtime) runs it again.
	fakeServer(t, bin, "llama-server", "version: 0.2.0-dev (build 10573, commit d775b8967)")
	if err := os.Chtimes(server, time.Now(), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	v, err := p.binaryVersion(ctx, server)
	if err != nil || v != "llamacpp-b10573-d775b8967" {
		t.Fatalf("after upgrade: %q, %v", v, err)
	}
}

func TestBinaryVersionExplainsAForeignBinary(t *testing.T) {
	bin := t.TempDir()
	script := writeFile(t, bin, "llama-server", []byte("#!/bin/sh\necho 'usage: something else' >&2\nexit 2\n"), 0o755)
	p := New(WithEnviron(testEnv(t, bin)), WithCacheDir(t.TempDir()))
	_, err := p.binaryVersion(context.Background(), script)
	if err == nil {
		t.Fatal("want an error")
	}
	for _, want := range []string{script + `" --version printed no llama-server version (exit status 2)`, `usage: something else`,
		"check that binary is llama.cpp's llama-server"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
}
