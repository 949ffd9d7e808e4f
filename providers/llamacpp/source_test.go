package llamacpp

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/llorch/llorch/providers"
	"github.com/llorch/llorch/providers/sdk/sdktest"
	"github.com/llorch/llorch/providers/sdk/stage"
)

// fakeRepo is a git repository of testdata/fakellama with:
//
//	b1234  lightweight tag on the first commit
//	b1235  annotated tag on the same commit
//	b1236-broken  a commit whose main.c does not compile (branch "broken")
type fakeRepo struct {
	dir    string
	first  string // commit of b1234
	broken string
}

func gitCmd(t testing.TB, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1",
		"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

func newFakeRepo(t testing.TB) fakeRepo {
	t.Helper()
	requireTools(t)
	dir := filepath.Join(t.TempDir(), "llama.cpp")
	for _, name := range []string{"CMakeLists.txt", "main.c"} {
		data, err := os.ReadFile(filepath.Join("testdata", "fakellama", name))
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, dir, name, data, 0o644)
	}
	gitCmd(t, dir, "init", "--quiet", "--initial-branch=master")
	gitCmd(t, dir, "add", ".")
	gitCmd(t, dir, "commit", "--quiet", "-m", "fake llama.cpp")
	gitCmd(t, dir, "tag", "b1234")
	gitCmd(t, dir, "tag", "-a", "b1235", "-m", "annotated")
	r := fakeRepo{dir: dir, first: gitCmd(t, dir, "rev-parse", "HEAD")}
	gitCmd(t, dir, "checkout", "--quiet", "-b", "broken")
	writeFile(t, dir, "main.c", []byte("int main(void) { this does not compile }\n"), 0o644)
	gitCmd(t, dir, "commit", "--quiet", "-am", "broken")
	gitCmd(t, dir, "tag", "b1236-broken")
	r.broken = gitCmd(t, dir, "rev-parse", "HEAD")
	gitCmd(t, dir, "checkout", "--quiet", "master")
	return r
}

func sourceProvider(t testing.TB, env []string, cache, git, ref string, extra ...string) *Provider {
	t.Helper()
	lines := append([]string{`git = "` + git + `"`, `ref = "` + ref + `"`}, extra...)
	return newTestProvider(t, env, sourceBlock(lines...), WithCacheDir(cache))
}

func TestSourceBuild(t *testing.T) {
	repo := newFakeRepo(t)
	cache := filepath.Join(t.TempDir(), "cache")
	env := testEnv(t, systemPath())
	pool := testPool("file:" + tinyLlama(t))
	short := repo.first[:9]
	var cpuBinary string

	t.Run("a tag is cloned and built", func(t *testing.T) {
		p := sourceProvider(t, env, cache, repo.dir, "b1234")
		var ev sdktest.Events
		pe, diags := ensure(t, p, pool, &ev)
		if len(diags) > 0 {
			t.Fatal(describe(diags))
		}
		if pe.EngineVersion != "llamacpp-b1234-"+short+"-cpu" || pe.ProvisioningMode != "source" {
			t.Errorf("engine %q, mode %q", pe.EngineVersion, pe.ProvisioningMode)
		}
		dir := filepath.Dir(pe.BinaryPath)
		if filepath.Dir(dir) != filepath.Join(cache, "engines") || !strings.HasPrefix(filepath.Base(dir), repo.first+"-cpu-") {
			t.Errorf("binary at %s, want engines/%s-cpu-<hash>/llama-server", pe.BinaryPath, repo.first)
		}
		out, err := exec.Command(pe.BinaryPath, "--version").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "(CPU)") {
			t.Errorf("built binary --version: %v %s", err, out)
		}
		for _, stage := range []string{"resolve", "clone", "checkout", "configure", "build", "install"} {
			if ev.Stages()[stage] == 0 {
				t.Errorf("no %q progress event; stages %v", stage, ev.Stages())
			}
		}
		var rec engineRecord
		data, err := os.ReadFile(filepath.Join(dir, "engine.json"))
		if err != nil || json.Unmarshal(data, &rec) != nil || rec.Commit != repo.first || rec.Ref != "b1234" || rec.CUDA {
			t.Errorf("engine.json = %s (%v)", data, err)
		}
		leftovers, _ := filepath.Glob(filepath.Join(cache, "engines", ".tmp-*"))
		builds, _ := os.ReadDir(filepath.Join(cache, "build"))
		if len(leftovers) > 0 || len(builds) > 0 {
			t.Errorf("temporary directories left behind: %v %d", leftovers, len(builds))
		}
		cpuBinary = pe.BinaryPath
	})

	t.Run("a second Ensure does not rebuild", func(t *testing.T) {
		before, err := os.Stat(filepath.Dir(cpuBinary))
		if err != nil {
			t.Fatal(err)
		}
		p := sourceProvider(t, env, cache, repo.dir, "b1234")
		var ev sdktest.Events
		pe, diags := ensure(t, p, pool, &ev)
		if len(diags) > 0 {
			t.Fatal(describe(diags))
		}
		st := ev.Stages()
		for _, stage := range []string{"clone", "fetch", "checkout", "configure", "build", "install"} {
			if st[stage] != 0 {
				t.Errorf("the second Ensure ran %q: %v", stage, st)
			}
		}
		after, _ := os.Stat(filepath.Dir(cpuBinary))
		if pe.BinaryPath != cpuBinary || !after.ModTime().Equal(before.ModTime()) {
			t.Errorf("engine changed: %s (mtime %v → %v)", pe.BinaryPath, before.ModTime(), after.ModTime())
		}
	})

	t.Run("an annotated tag on the same commit reuses the build", func(t *testing.T) {
		p := sourceProvider(t, env, cache, repo.dir, "b1235")
		var ev sdktest.Events
		pe, diags := ensure(t, p, pool, &ev)
		if len(diags) > 0 {
			t.Fatal(describe(diags))
		}
		if pe.EngineVersion != "llamacpp-b1235-"+short+"-cpu" || pe.BinaryPath != cpuBinary || ev.Stages()["build"] != 0 {
			t.Errorf("engine %q at %s, stages %v", pe.EngineVersion, pe.BinaryPath, ev.Stages())
		}
	})

	t.Run("a full commit id resolves without ls-remote", func(t *testing.T) {
		p := sourceProvider(t, env, cache, repo.dir, repo.first)
		var ev sdktest.Events
		pe, diags := ensure(t, p, pool, &ev)
		if len(diags) > 0 {
			t.Fatal(describe(diags))
		}
		if pe.BinaryPath != cpuBinary || ev.Stages()["resolve"] != 0 || ev.Stages()["build"] != 0 {
			t.Errorf("engine at %s, stages %v", pe.BinaryPath, ev.Stages())
		}
	})

	var cudaBinary string
	t.Run("cuda = true builds a separate CUDA engine", func(t *testing.T) {
		p := sourceProvider(t, env, cache, repo.dir, "b1234", `cuda = true`)
		var ev sdktest.Events
		pe, diags := ensure(t, p, pool, &ev)
		if len(diags) > 0 {
			t.Fatal(describe(diags))
		}
		if pe.EngineVersion != "llamacpp-b1234-"+short+"-cuda" || !strings.Contains(pe.BinaryPath, repo.first+"-cuda-") {
			t.Errorf("engine %q at %s", pe.EngineVersion, pe.BinaryPath)
		}
		configured := false
		for _, e := range ev.All() {
			if e.Stage == "configure" && strings.Contains(e.Message, "-DGGML_CUDA=ON") && strings.Contains(e.Message, "-DLLAMA_CURL=OFF") {
				configured = true
			}
		}
		if !configured {
			t.Errorf("no configure event with -DGGML_CUDA=ON: %v", ev.All())
		}
		if out, _ := exec.Command(pe.BinaryPath, "--version").CombinedOutput(); !strings.Contains(string(out), "(CUDA)") {
			t.Errorf("the CUDA build says %s", out)
		}
		cudaBinary = pe.BinaryPath
	})

	t.Run("cuda = auto finds nvcc on PATH and reuses the CUDA build", func(t *testing.T) {
		nvccDir := t.TempDir()
		writeFile(t, nvccDir, "nvcc", []byte("#!/bin/sh\nexit 0\n"), 0o755)
		p := sourceProvider(t, testEnv(t, nvccDir, systemPath()), cache, repo.dir, "b1234")
		var ev sdktest.Events
		pe, diags := ensure(t, p, pool, &ev)
		if len(diags) > 0 {
			t.Fatal(describe(diags))
		}
		if pe.BinaryPath != cudaBinary || ev.Stages()["build"] != 0 {
			t.Errorf("engine at %s, stages %v", pe.BinaryPath, ev.Stages())
		}
	})

	t.Run("cuda = auto without nvcc builds for the CPU", func(t *testing.T) {
		p := sourceProvider(t, env, cache, repo.dir, "b1234", `cuda = "auto"`)
		pe, diags := ensure(t, p, pool, nil)
		if len(diags) > 0 {
			t.Fatal(describe(diags))
		}
		if pe.BinaryPath != cpuBinary {
			t.Errorf("engine at %s, want the CPU build", pe.BinaryPath)
		}
	})
}

func TestSourceBuildErrors(t *testing.T) {
	repo := newFakeRepo(t)
	pool := testPool("file:" + tinyLlama(t))
	tests := []struct {
		name string
		env  []string
		git  string
		ref  string
		want []string
	}{
		{name: "a tag that does not exist", env: testEnv(t, systemPath()), git: repo.dir, ref: "b9999",
			want: []string{`"b9999" is not a tag or branch of ` + repo.dir, "use an existing tag, branch or commit"}},
		{name: "a commit that does not exist", env: testEnv(t, systemPath()), git: repo.dir, ref: "deadbeef12",
			want: []string{`"deadbeef12" is not a commit, tag or branch of ` + repo.dir}},
		{name: "a repository that does not exist", env: testEnv(t, systemPath()), git: "/nonexistent/llama.cpp", ref: "b1",
			want: []string{`resolving git ref "b1" in /nonexistent/llama.cpp`, "does not appear to be a git repository"}},
		{name: "cmake missing", env: testEnv(t, linkTools(t, "git")), git: repo.dir, ref: "b1234",
			want: []string{"cmake not found on PATH", "apt-get install cmake build-essential"}},
		{name: "no C compiler", env: testEnv(t, linkTools(t, "git", "cmake", "make")), git: repo.dir, ref: "b1234",
			want: []string{"cmake found no C/C++ compiler", "apt-get install build-essential", "No CMAKE_C_COMPILER could be found"}},
		{name: "no make", env: testEnv(t, linkTools(t, "git", "cmake", "cc")), git: repo.dir, ref: "b1234",
			want: []string{"cmake found no build tool (make)", "apt-get install build-essential", "cmake said"}},
		{name: "git missing", env: testEnv(t, linkTools(t, "cmake")), git: repo.dir, ref: "b1234",
			want: []string{"git not found on PATH", "apt-get install git"}},
		{name: "a build failure shows the compiler's last lines", env: testEnv(t, systemPath()), git: repo.dir, ref: "b1236-broken",
			want: []string{"building llama-server at " + repo.broken + ` (ref "b1236-broken") failed: exit status`,
				"last lines of the build output:", "main.c", "error", "is kept for inspection until the next build of any engine"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cache := filepath.Join(t.TempDir(), "cache")
			p := sourceProvider(t, tc.env, cache, tc.git, tc.ref)
			pe, diags := ensure(t, p, pool, nil)
			d := oneDiag(t, diags, providers.Error, tc.want...)
			if d.Summary != "Engine Build Failed" || pe != nil {
				t.Errorf("summary %q, engine %v", d.Summary, pe)
			}
			// A failed build never leaves an engine (or half of one) behind.
			entries, _ := os.ReadDir(filepath.Join(cache, "engines"))
			for _, e := range entries {
				if e.IsDir() {
					t.Errorf("a failed build left %s in engines/", e.Name())
				}
			}
		})
	}
}

func TestAFailedBuildDirectoryIsKeptUntilTheNextBuild(t *testing.T) {
	repo := newFakeRepo(t)
	cache := filepath.Join(t.TempDir(), "cache")
	p := sourceProvider(t, testEnv(t, systemPath()), cache, repo.dir, "b1236-broken")
	pool := testPool("file:" + tinyLlama(t))
	for i := 0; i < 2; i++ {
		_, diags := ensure(t, p, pool, nil)
		if !diags.HasErrors() {
			t.Fatal("the broken ref built")
		}
		dirs, _ := filepath.Glob(filepath.Join(cache, "build", "*"))
		if len(dirs) != 1 || !strings.Contains(diags[0].Detail, "the build directory "+dirs[0]+" is kept") {
			t.Fatalf("attempt %d: build directories %v, message %q", i+1, dirs, diags[0].Detail)
		}
		if _, err := os.Stat(filepath.Join(dirs[0], "CMakeCache.txt")); err != nil {
			t.Errorf("the kept build directory has no CMakeCache.txt: %v", err)
		}
	}
}

func TestTheNextBuildOfAnotherEngineRemovesAFailedBuildDirectory(t *testing.T) {
	repo := newFakeRepo(t)
	cache := filepath.Join(t.TempDir(), "cache")
	pool := testPool("file:" + tinyLlama(t))
	if _, diags := ensure(t, sourceProvider(t, testEnv(t, systemPath()), cache, repo.dir, "b1236-broken"), pool, nil); !diags.HasErrors() {
		t.Fatal("the broken ref built")
	}
	failed, _ := filepath.Glob(filepath.Join(cache, "build", "*"))
	if len(failed) != 1 {
		t.Fatalf("build directories after the failure: %v", failed)
	}
	// Another llorch process is building some engine right now: its
	// directory holds its lock and must survive the sweep.
	running := filepath.Join(cache, "build", "othercommit-cpu-0000-123")
	if err := os.MkdirAll(running, 0o755); err != nil {
		t.Fatal(err)
	}
	unlock, ok, err := stage.TryLockFile(filepath.Join(running, buildLockName))
	if err != nil || !ok {
		t.Fatalf("locking the running build: %v %v", ok, err)
	}
	defer unlock()

	// The operator fixes the ref: the build of another engine key.
	if _, diags := ensure(t, sourceProvider(t, testEnv(t, systemPath()), cache, repo.dir, "b1234"), pool, nil); diags.HasErrors() {
		t.Fatalf("b1234 did not build: %v", diags)
	}
	if _, err := os.Stat(failed[0]); !os.IsNotExist(err) {
		t.Errorf("the failed build directory %s of another engine is still there (stat: %v)", failed[0], err)
	}
	if _, err := os.Stat(running); err != nil {
		t.Errorf("the sweep removed a build that still runs: %v", err)
	}
}

func TestPlanPoolSourceMode(t *testing.T) {
	repo := newFakeRepo(t)
	env := testEnv(t, systemPath())
	pool := testPool("file:" + tinyLlama(t))
	planFor := func(t *testing.T, p *Provider, prior *providers.PreparedEngine) (*providers.PlannedPool, providers.Diagnostics) {
		t.Helper()
		return p.PlanPool(context.Background(), providers.PlanPoolRequest{Pool: pool, Config: poolBlock(t, ""), Prior: prior})
	}

	t.Run("a tag resolves with ls-remote, without cloning", func(t *testing.T) {
		cache := filepath.Join(t.TempDir(), "cache")
		p := sourceProvider(t, env, cache, repo.dir, "b1235")
		planned, diags := planFor(t, p, nil)
		if len(diags) > 0 {
			t.Fatal(describe(diags))
		}
		if planned.EngineVersion != "llamacpp-b1235-"+repo.first[:9]+"-cpu" {
			t.Errorf("EngineVersion = %q", planned.EngineVersion)
		}
		if _, err := os.Stat(filepath.Join(cache, "src")); !os.IsNotExist(err) {
			t.Errorf("PlanPool cloned the repository: %v", err)
		}
	})

	t.Run("a branch that moved forces replacement", func(t *testing.T) {
		moving := newFakeRepo(t)
		cache := filepath.Join(t.TempDir(), "cache")
		p := sourceProvider(t, env, cache, moving.dir, "master")
		first, diags := planFor(t, p, nil)
		if len(diags) > 0 {
			t.Fatal(describe(diags))
		}
		prior := &providers.PreparedEngine{EngineVersion: first.EngineVersion}
		same, _ := planFor(t, p, prior)
		if len(same.RequiresReplace) != 0 {
			t.Errorf("an unmoved branch requires replacement: %v", same.RequiresReplace)
		}
		writeFile(t, moving.dir, "README", []byte("new"), 0o644)
		gitCmd(t, moving.dir, "add", "README")
		gitCmd(t, moving.dir, "commit", "--quiet", "-m", "move master")
		// One command plans every pool with the commit it resolved first.
		if again, _ := planFor(t, p, prior); again.EngineVersion != first.EngineVersion {
			t.Errorf("the branch moved during one command and its plan changed: %q, then %q", first.EngineVersion, again.EngineVersion)
		}
		// The next command sees the move.
		moved, diags := planFor(t, sourceProvider(t, env, cache, moving.dir, "master"), prior)
		if len(diags) > 0 {
			t.Fatal(describe(diags))
		}
		if moved.EngineVersion == first.EngineVersion {
			t.Fatalf("EngineVersion did not change after the branch moved: %q", moved.EngineVersion)
		}
		if len(moved.RequiresReplace) != 1 || pathString(moved.RequiresReplace[0]) != "engine_version" {
			t.Errorf("RequiresReplace = %v, want [engine_version]", moved.RequiresReplace)
		}
	})

	t.Run("PlanPool and Ensure agree on the version, with one ls-remote", func(t *testing.T) {
		// git on PATH records its subcommands, then runs the real git.
		realGit, err := exec.LookPath("git")
		if err != nil {
			t.Fatal(err)
		}
		wrapped := t.TempDir()
		gitRuns := filepath.Join(wrapped, "git.runs")
		writeFile(t, wrapped, "git", []byte("#!/bin/sh\necho \"$1\" >> '"+gitRuns+"'\nexec '"+realGit+"' \"$@\"\n"), 0o755)
		p := sourceProvider(t, testEnv(t, wrapped, systemPath()), filepath.Join(t.TempDir(), "cache"), repo.dir, "b1234")
		planned, _ := planFor(t, p, nil)
		var ev sdktest.Events
		pe, diags := ensure(t, p, pool, &ev)
		if len(diags) > 0 {
			t.Fatal(describe(diags))
		}
		if planned.EngineVersion != pe.EngineVersion {
			t.Errorf("planned %q, ensured %q", planned.EngineVersion, pe.EngineVersion)
		}
		if ev.Stages()["clone"] != 1 || ev.Stages()["install"] != 1 {
			t.Errorf("Ensure did not clone and build: stages %v", ev.Stages())
		}
		data, _ := os.ReadFile(gitRuns)
		if n := strings.Count(string(data), "ls-remote\n"); n != 1 {
			t.Errorf("git ls-remote ran %d times for a plan and an Ensure in one command, want 1 (git ran: %q)", n, data)
		}
	})

	t.Run("a missing ref is an error", func(t *testing.T) {
		p := sourceProvider(t, env, filepath.Join(t.TempDir(), "cache"), repo.dir, "b0000")
		_, diags := planFor(t, p, nil)
		d := oneDiag(t, diags, providers.Error, `"b0000" is not a tag or branch of `+repo.dir)
		if d.Summary != "Git Ref Not Found" {
			t.Errorf("summary %q", d.Summary)
		}
	})

	t.Run("an unreachable repository is a warning and an unknown version", func(t *testing.T) {
		p := sourceProvider(t, env, filepath.Join(t.TempDir(), "cache"), "/nonexistent/repo", "b1")
		planned, diags := planFor(t, p, &providers.PreparedEngine{EngineVersion: "llamacpp-b1-aaaaaaaaa-cpu"})
		oneDiag(t, diags, providers.Warning, `Could not resolve ref "b1" of /nonexistent/repo`, "cannot tell whether it moved")
		if planned.EngineVersion != "" || len(planned.RequiresReplace) != 0 {
			t.Errorf("planned %+v", planned)
		}
	})

	t.Run("an abbreviated commit is known once cloned", func(t *testing.T) {
		cache := filepath.Join(t.TempDir(), "cache")
		p := sourceProvider(t, env, cache, repo.dir, repo.first[:7])
		planned, diags := planFor(t, p, nil)
		if len(diags) > 0 || planned.EngineVersion != "" {
			t.Errorf("before the clone: %q %s", planned.EngineVersion, describe(diags))
		}
		if _, diags := ensure(t, p, pool, nil); len(diags) > 0 {
			t.Fatal(describe(diags))
		}
		planned, _ = planFor(t, p, nil)
		if planned.EngineVersion != "llamacpp-"+repo.first[:7]+"-"+repo.first[:9]+"-cpu" {
			t.Errorf("after the clone: %q", planned.EngineVersion)
		}
	})
}

func TestSourceBuildWorksOfflineOnceBuilt(t *testing.T) {
	repo := newFakeRepo(t)
	cache := filepath.Join(t.TempDir(), "cache")
	env := testEnv(t, systemPath())
	pool := testPool("file:" + tinyLlama(t))
	p := sourceProvider(t, env, cache, repo.dir, "b1234")
	built, diags := ensure(t, p, pool, nil)
	if len(diags) > 0 {
		t.Fatal(describe(diags))
	}
	if err := os.Rename(repo.dir, repo.dir+".away"); err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{"b1234", "master"} {
		var ev sdktest.Events
		pe, diags := ensure(t, sourceProvider(t, env, cache, repo.dir, ref), pool, &ev)
		if len(diags) > 0 {
			t.Fatalf("%s: %s", ref, describe(diags))
		}
		offline := false
		for _, e := range ev.All() {
			if e.Stage == "resolve" && strings.Contains(e.Message, "cannot be reached") &&
				strings.Contains(e.Message, "using "+repo.first+", which "+ref+" named at the last fetch") {
				offline = true
			}
		}
		if pe.BinaryPath != built.BinaryPath || !offline || ev.Stages()["build"] != 0 {
			t.Errorf("%s: engine %s, events %v", ref, pe.BinaryPath, ev.All())
		}
	}
}

func TestConcurrentSourceEnsuresBuildOnce(t *testing.T) {
	repo := newFakeRepo(t)
	cache := filepath.Join(t.TempDir(), "cache")
	env := testEnv(t, systemPath())
	pool := testPool("file:" + tinyLlama(t))
	var ev sdktest.Events
	var wg sync.WaitGroup
	binaries := make([]string, 3)
	for i := range binaries {
		// separate providers: as separate llorch processes sharing the cache
		p := sourceProvider(t, env, cache, repo.dir, "b1234")
		req := providers.EnsureRequest{Pool: pool, Config: poolBlock(t, ""), Progress: ev.Add}
		wg.Add(1)
		go func() {
			defer wg.Done()
			pe, diags := p.Ensure(context.Background(), req)
			if len(diags) > 0 {
				t.Error(describe(diags))
				return
			}
			binaries[i] = pe.BinaryPath
		}()
	}
	wg.Wait()
	if n := ev.Stages()["install"]; n != 1 {
		t.Errorf("%d concurrent Ensures installed %d engines, want 1", len(binaries), n)
	}
	if binaries[0] == "" || binaries[0] != binaries[1] || binaries[1] != binaries[2] {
		t.Errorf("binaries = %v", binaries)
	}
}
