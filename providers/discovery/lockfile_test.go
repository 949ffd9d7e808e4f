package discovery

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/spf13/afero"

	"github.com/llorch/llorch/providers"
)

const (
	sumA = "0f343b0931126a20f133d67c2b018a3b5e7f5c1bd4c0d5e1b2c3d4e5f6a7b8c9"
	sumB = "aaaa3b0931126a20f133d67c2b018a3b5e7f5c1bd4c0d5e1b2c3d4e5f6a7bbbb"
)

func TestLockFileBytesAreDeterministic(t *testing.T) {
	lf := &LockFile{Providers: []LockedProvider{
		{Name: "vllm", Version: "0.1.0", Path: ".llorch/plugins/llorch-provider-vllm", SHA256: sumA},
		{Name: "llamacpp", Version: "0.1.0", Builtin: true},
	}}
	want := `# This file is maintained by "llorch init" and "llorch apply". Manual edits may be lost.
provider "llamacpp" {
  version = "0.1.0"
  builtin = true
}

provider "vllm" {
  version = "0.1.0"
  path    = ".llorch/plugins/llorch-provider-vllm"
  sha256  = "` + sumA + `"
}
`
	if got := string(lf.Bytes()); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
	parsed, err := ParseLockFile(lf.Bytes(), ".llorch.lock.hcl")
	if err != nil {
		t.Fatalf("parsing what Bytes wrote: %v", err)
	}
	if diff := cmp.Diff([]LockedProvider{lf.Providers[1], lf.Providers[0]}, parsed.Providers); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
	if got := string(parsed.Bytes()); got != want {
		t.Errorf("second rendering differs:\n%s", got)
	}
}

func TestParseLockFileErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want string
	}{
		{
			name: "duplicate provider",
			src:  "provider \"vllm\" {\n  sha256 = \"" + sumA + "\"\n}\nprovider \"vllm\" {\n  sha256 = \"" + sumA + "\"\n}\n",
			want: `lock.hcl:4,1-16: Duplicate provider lock; Provider "vllm" is already locked at lock.hcl:1,1-16. Remove one of the blocks, or run ` + "`llorch init`" + ` to rewrite the file.`,
		},
		{
			name: "plugin without checksum",
			src:  "provider \"vllm\" {\n  version = \"0.1.0\"\n}\n",
			want: `lock.hcl:1,1-16: Invalid checksum; Provider "vllm" needs sha256 set to the 64 hex digits of its plugin's digest, not "". Run ` + "`llorch init`" + ` to record it.`,
		},
		{
			name: "checksum that is not hex",
			src:  "provider \"vllm\" {\n  sha256 = \"sha256:abc\"\n}\n",
			want: `lock.hcl:1,1-16: Invalid checksum; Provider "vllm" needs sha256 set to the 64 hex digits of its plugin's digest, not "sha256:abc". Run ` + "`llorch init`" + ` to record it.`,
		},
		{
			name: "built-in with checksum",
			src:  "provider \"llamacpp\" {\n  builtin = true\n  sha256 = \"" + sumA + "\"\n}\n",
			want: `lock.hcl:1,1-20: Unexpected checksum; Provider "llamacpp" is built in, so it has no checksum of its own; remove sha256 or builtin.`,
		},
		{
			name: "unknown argument",
			src:  "provider \"vllm\" {\n  sha256 = \"" + sumA + "\"\n  hash = \"x\"\n}\n",
			want: `lock.hcl:3,3-7: Unsupported argument; An argument named "hash" is not expected here. Did you mean "path"?`,
		},
		{
			name: "engine without checksum",
			src:  "engine \"llamacpp\" {\n  sha256 = \"abc\"\n}\n",
			want: `lock.hcl:1,1-18: Invalid checksum; The engine "llamacpp" needs sha256 set to the 64 hex digits of its digest, not "abc". Remove the block and run llorch apply to pin it again.`,
		},
		{
			name: "duplicate model",
			src:  "model \"file:m.gguf\" {\n  sha256 = \"" + sumA + "\"\n}\nmodel \"file:m.gguf\" {\n  sha256 = \"" + sumB + "\"\n}\n",
			want: `lock.hcl:4,1-20: Duplicate model lock; The model "file:m.gguf" is already pinned at lock.hcl:1,1-20. Remove one of the blocks.`,
		},
		{
			name: "not HCL",
			src:  "provider \"vllm\" {\n",
			want: `lock.hcl:1,17-18: Unclosed configuration block; There is no closing brace for this block before the end of the file. This may be caused by incorrect brace nesting elsewhere in this file.`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseLockFile([]byte(tc.src), "lock.hcl")
			if err == nil || err.Error() != tc.want {
				t.Errorf("got  %v\nwant %s", err, tc.want)
			}
		})
	}
}

func TestPinsRoundTripThroughTheLockFile(t *testing.T) {
	lf := &LockFile{
		Providers: []LockedProvider{{Name: "llamacpp", Version: "0.1.0", Builtin: true}},
		Pins: providers.Pins{
			Engines: map[string]providers.EnginePin{"llamacpp": {SHA256: sumA, Version: "llamacpp-b4748-c392e5094"}},
			Models: map[string]providers.ModelPin{"file:b.gguf": {SHA256: sumB, Size: 544}, "file:a.gguf": {SHA256: sumA},
				"hf:org/repo/m.gguf": {SHA256: sumA, Size: 9, Revision: "0123456789abcdef0123456789abcdef01234567"}},
		},
	}
	want := `# This file is maintained by "llorch init" and "llorch apply". Manual edits may be lost.
provider "llamacpp" {
  version = "0.1.0"
  builtin = true
}

engine "llamacpp" {
  version = "llamacpp-b4748-c392e5094"
  sha256  = "` + sumA + `"
}

model "file:a.gguf" {
  sha256 = "` + sumA + `"
}

model "file:b.gguf" {
  size   = 544
  sha256 = "` + sumB + `"
}

model "hf:org/repo/m.gguf" {
  size     = 9
  revision = "0123456789abcdef0123456789abcdef01234567"
  sha256   = "` + sumA + `"
}
`
	if got := string(lf.Bytes()); got != want {
		t.Fatalf("Bytes:\n%s\nwant\n%s", got, want)
	}
	back, err := ParseLockFile(lf.Bytes(), "lock.hcl")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(lf.Pins, back.Pins); diff != "" {
		t.Errorf("pins after a round trip (-want +got):\n%s", diff)
	}
}

func TestLoadAndSaveLockFile(t *testing.T) {
	fsys := afero.NewMemMapFs()
	lf, err := LoadLockFile(fsys, "/w/.llorch.lock.hcl")
	if err != nil || len(lf.Providers) != 0 {
		t.Fatalf("a missing lock file must load as empty: %#v, %v", lf, err)
	}
	lf.Providers = []LockedProvider{{Name: "vllm", Version: "0.1.0", Path: "p", SHA256: sumB}}
	if err := lf.Save(fsys, "/w/.llorch.lock.hcl"); err != nil {
		t.Fatal(err)
	}
	fi, err := fsys.Stat("/w/.llorch.lock.hcl")
	if err != nil || fi.Mode().Perm() != 0o644 {
		t.Fatalf("saved lock file: %v, %v; want mode 0644", fi, err)
	}
	back, err := LoadLockFile(fsys, "/w/.llorch.lock.hcl")
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := back.Lookup("vllm"); !ok || got.SHA256 != sumB {
		t.Errorf("loaded %#v", back)
	}
}

func TestRecordedPath(t *testing.T) {
	tests := []struct{ lock, plugin, want string }{
		{"/w/.llorch.lock.hcl", "/w/.llorch/plugins/llorch-provider-vllm", ".llorch/plugins/llorch-provider-vllm"},
		{"/w/.llorch.lock.hcl", "/home/u/.llorch/plugins/llorch-provider-vllm", "/home/u/.llorch/plugins/llorch-provider-vllm"},
		{"/w/.llorch.lock.hcl", "/w2/llorch-provider-vllm", "/w2/llorch-provider-vllm"},
	}
	for _, tc := range tests {
		if got := recordedPath(tc.lock, tc.plugin); got != tc.want {
			t.Errorf("recordedPath(%q, %q) = %q, want %q", tc.lock, tc.plugin, got, tc.want)
		}
	}
}

func TestThirdPartyPluginMustBeInTheLockFile(t *testing.T) {
	lockPath := filepath.Join(t.TempDir(), ".llorch.lock.hcl")
	r := newResolver(t, Options{Dirs: []string{linkPlugins(t, "testok")}, LockFile: lockPath})
	_, err := r.Provider(t.Context(), "testok")
	want := "provider \"testok\" is not in .llorch.lock.hcl; run `llorch init`"
	if err == nil || err.Error() != want || !errors.Is(err, ErrNotLocked) {
		t.Errorf("got  %v\nwant %s", err, want)
	}
}

func TestInitLocksEveryProviderAndTheResolverTrustsThem(t *testing.T) {
	work := t.TempDir()
	dir := filepath.Join(work, ".llorch", "plugins")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := copyPlugin(t, dir, "testok")
	sum, err := fileSHA256(path)
	if err != nil {
		t.Fatal(err)
	}
	lockPath := filepath.Join(work, ".llorch.lock.hcl")
	opts := Options{
		Dirs: []string{dir}, LockFile: lockPath,
		SelfExe: installed(t, "llorch"), Builtins: map[string][]string{"selfok": {"internal-plugin", "testok"}},
	}
	r := newResolver(t, opts)

	lf, err := Init(t.Context(), r, lockPath, false, false)
	if err != nil {
		t.Fatalf("Init: %v", err)
	}
	want := []LockedProvider{
		{Name: "selfok", Version: "1.0.0", Builtin: true},
		{Name: "testok", Version: "1.0.0", Path: ".llorch/plugins/llorch-provider-testok", SHA256: sum},
	}
	if diff := cmp.Diff(want, lf.Providers); diff != "" {
		t.Errorf("lock file (-want +got):\n%s", diff)
	}
	onDisk, err := os.ReadFile(lockPath)
	if err != nil || string(onDisk) != string(lf.Bytes()) {
		t.Errorf("lock file on disk differs from the one returned: %v\n%s", err, onDisk)
	}

	// The same resolver now accepts the plugin, and so does a new one.
	for _, res := range []*Resolver{r, newResolver(t, opts)} {
		p, err := res.Provider(t.Context(), "testok")
		if err != nil {
			t.Fatalf("Provider after init: %v", err)
		}
		if _, diags := p.GetSchema(t.Context()); diags.HasErrors() {
			t.Fatal(diags)
		}
	}
	infos, err := newResolver(t, opts).Describe(t.Context())
	if err != nil || len(infos) != 2 || infos[1].SHA256 != sum || infos[1].Path != path {
		t.Errorf("Describe: %#v, %v", infos, err)
	}
}

func TestChangedPluginIsRefusedUntilInitUpgrade(t *testing.T) {
	work := t.TempDir()
	dir := filepath.Join(work, "plugins")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := copyPlugin(t, dir, "testok")
	lockPath := filepath.Join(work, ".llorch.lock.hcl")
	opts := Options{Dirs: []string{dir}, LockFile: lockPath}
	if _, err := Init(t.Context(), newResolver(t, opts), lockPath, false, false); err != nil {
		t.Fatalf("Init: %v", err)
	}
	oldSum, _ := fileSHA256(path)

	// A new build of the plugin: an ELF file still runs with bytes appended.
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("rebuilt")); err != nil {
		t.Fatal(err)
	}
	f.Close()
	newSum, _ := fileSHA256(path)
	wantErr := `provider "testok" plugin ` + path + " has sha256 " + newSum + ", but .llorch.lock.hcl records " + oldSum +
		"; run `llorch init -upgrade` if you trust the new plugin"

	r := newResolver(t, opts)
	_, err = r.Provider(t.Context(), "testok")
	if err == nil || err.Error() != wantErr || !errors.Is(err, ErrChecksum) {
		t.Errorf("Provider: got  %v\nwant %s", err, wantErr)
	}

	_, err = Init(t.Context(), r, lockPath, false, false)
	if err == nil || err.Error() != wantErr || !errors.Is(err, ErrChecksum) {
		t.Errorf("Init without -upgrade: got %v\nwant it to contain %s", err, wantErr)
	}
	if lf, _ := LoadLockFile(afero.NewOsFs(), lockPath); lf.Providers[0].SHA256 != oldSum {
		t.Error("Init without -upgrade changed the lock file")
	}

	lf, err := Init(t.Context(), r, lockPath, true, false)
	if err != nil {
		t.Fatalf("Init -upgrade: %v", err)
	}
	if lf.Providers[0].SHA256 != newSum {
		t.Errorf("Init -upgrade recorded %s, want %s", lf.Providers[0].SHA256, newSum)
	}
	if _, err := r.Provider(t.Context(), "testok"); err != nil {
		t.Errorf("Provider after -upgrade: %v", err)
	}
}

func TestInitRefusesAProviderRecordedAsBuiltinThatIsNowAPlugin(t *testing.T) {
	work := t.TempDir()
	lockPath := filepath.Join(work, ".llorch.lock.hcl")
	if err := os.WriteFile(lockPath, []byte("provider \"testok\" {\n  builtin = true\n}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	dir := linkPlugins(t, "testok")
	r := newResolver(t, Options{Dirs: []string{dir}, LockFile: lockPath})
	want := `provider "testok" is recorded in .llorch.lock.hcl as built in, but llorch now finds it as the plugin ` +
		filepath.Join(dir, "llorch-provider-testok") + "; run `llorch init -upgrade` if you trust that plugin"
	if _, err := r.Provider(t.Context(), "testok"); err == nil || err.Error() != want {
		t.Errorf("Provider: got  %v\nwant %s", err, want)
	}
	if _, err := Init(context.Background(), r, lockPath, false, false); err == nil || err.Error() != want {
		t.Errorf("Init: got %v\nwant it to contain %s", err, want)
	}
}

func TestBrokenLockFileIsReportedByNew(t *testing.T) {
	lockPath := filepath.Join(t.TempDir(), ".llorch.lock.hcl")
	if err := os.WriteFile(lockPath, []byte("provider \"x\" {\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := New(Options{Dirs: []string{}, LockFile: lockPath})
	if err == nil || !strings.HasPrefix(err.Error(), lockPath+":1,14-15: Unclosed configuration block") {
		t.Errorf("got %v", err)
	}
}

func TestInitReportsEveryFailingProviderAndWritesNothing(t *testing.T) {
	dir := linkPlugins(t, "v2")
	garbage := writeScript(t, dir, "garbage", "#!/bin/sh\necho garbage\n")
	lockPath := filepath.Join(t.TempDir(), ".llorch.lock.hcl")
	_, err := Init(t.Context(), newResolver(t, Options{Dirs: []string{dir}}), lockPath, false, false)
	want := `provider "garbage" plugin ` + garbage + ` is not a llorch provider plugin (it did not complete the plugin handshake): it printed "garbage" instead` + "\n" +
		`provider "v2" plugin ` + filepath.Join(dir, "llorch-provider-v2") +
		" speaks llorch plugin protocol version 2, but this llorch speaks protocol version 1; install a build of the plugin made for protocol version 1"
	if err == nil || err.Error() != want {
		t.Errorf("got  %v\nwant %s", err, want)
	}
	if _, statErr := os.Stat(lockPath); !os.IsNotExist(statErr) {
		t.Errorf("a lock file was written despite the failures (stat: %v)", statErr)
	}
}

func TestInitReadonlyRefusesALockFileThatWouldChange(t *testing.T) {
	work := t.TempDir()
	lockPath := filepath.Join(work, ".llorch.lock.hcl")
	opts := Options{LockFile: lockPath, SelfExe: installed(t, "llorch"), Builtins: map[string][]string{"selfok": {"internal-plugin", "testok"}}}
	_, err := Init(t.Context(), newResolver(t, opts), lockPath, false, true)
	want := "the lock file " + lockPath + ` would change (provider "selfok" would be added), and -lockfile=readonly forbids it: run llorch init without it, review the change and commit the file`
	if err == nil || err.Error() != want {
		t.Fatalf("Init readonly on an empty lock file: %v\nwant %s", err, want)
	}
	if _, err := os.Stat(lockPath); !os.IsNotExist(err) {
		t.Fatalf("readonly init wrote the lock file: %v", err)
	}
	pinned := providers.Pins{Engines: map[string]providers.EnginePin{"selfok": {SHA256: sumA}}}
	if err := (&LockFile{Pins: pinned}).Save(afero.NewOsFs(), lockPath); err != nil {
		t.Fatal(err)
	}
	lf, err := Init(t.Context(), newResolver(t, opts), lockPath, false, false)
	if err != nil || !cmp.Equal(lf.Pins, pinned) {
		t.Fatalf("Init: %v; pins %+v, want them kept", err, lf.Pins)
	}
	if _, err := Init(t.Context(), newResolver(t, opts), lockPath, false, true); err != nil {
		t.Fatalf("Init readonly on an up-to-date lock file: %v", err)
	}
}
