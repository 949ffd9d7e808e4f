package llamacpp

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/llorch/llorch/providers"
	"github.com/llorch/llorch/providers/sdk/stage"
)

// sourceEngine is a llama-server built from source, or to be built.
type sourceEngine struct {
	Commit  string // full commit id
	CUDA    bool
	Key     string // engines/<Key>: "<commit>-<cpu|cuda>-<options hash>"
	Dir     string // <cache>/engines/<Key>
	Binary  string // Dir/llama-server
	Version string // "llamacpp-<ref>-<commit[:9]>-<cpu|cuda>"
}

// errRefNotFound means the repository answered and has no such ref (as
// opposed to a repository that could not be reached).
var errRefNotFound = errors.New("git ref not found")

var hexRef = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[0-9a-fA-F]{7,40}$`) })

// isCommitish reports whether ref looks like a (possibly abbreviated)
// commit id rather than a tag or branch name.
func isCommitish(ref string) bool { return hexRef().MatchString(ref) }

func (p *Provider) srcDir(cfg *providerConfig) string {
	return filepath.Join(cfg.CacheDir, "src", stage.ShortHash(cfg.Source.Git))
}

// nvcc finds the CUDA compiler on PATH or in the CUDA install directories.
func (p *Provider) nvcc() (string, bool) {
	if path, err := p.env.lookPath("nvcc", p.workDir()); err == nil {
		return path, true
	}
	for _, dir := range p.cudaDirs {
		if path := filepath.Join(dir, "nvcc"); isExecutableFile(path) {
			return path, true
		}
	}
	return "", false
}

// wantCUDA decides whether the build uses CUDA: always for "true", never
// for "false", and for "auto" when nvcc is found.
func (p *Provider) wantCUDA(sc *sourceConfig) bool {
	switch sc.CUDA {
	case "true":
		return true
	case "false":
		return false
	}
	_, ok := p.nvcc()
	return ok
}

// configureArgs is the cmake configure command line after "-S SRC -B
// BUILD". Shared libraries are off so that the copied binary does not
// depend on the build directory, which is removed after the build.
func (p *Provider) configureArgs(sc *sourceConfig, cuda bool) []string {
	onOff := "OFF"
	if cuda {
		onOff = "ON"
	}
	args := []string{"-DCMAKE_BUILD_TYPE=Release", "-DLLAMA_CURL=OFF", "-DGGML_CUDA=" + onOff, "-DBUILD_SHARED_LIBS=OFF"}
	if cuda {
		// nvcc outside PATH (/usr/local/cuda/bin) must be named to CMake.
		if path, ok := p.nvcc(); ok && !hasCMakeDefine(sc.CMakeArgs, "CMAKE_CUDA_COMPILER") {
			if _, err := p.env.lookPath("nvcc", p.workDir()); err != nil {
				args = append(args, "-DCMAKE_CUDA_COMPILER="+path)
			}
		}
	}
	return append(args, sc.CMakeArgs...)
}

func hasCMakeDefine(args []string, name string) bool {
	for _, a := range args {
		if cmakeDefines(a, name) {
			return true
		}
	}
	return false
}

// engineFor names the engine built from commit with sc's options.
func (p *Provider) engineFor(cfg *providerConfig, commit string) sourceEngine {
	sc := cfg.Source
	cuda := p.wantCUDA(sc)
	kind := "cpu"
	if cuda {
		kind = "cuda"
	}
	h := sha256.New()
	for _, a := range p.configureArgs(sc, cuda) {
		fmt.Fprintf(h, "%q\n", a)
	}
	key := commit + "-" + kind + "-" + hex.EncodeToString(h.Sum(nil))[:12]
	dir := filepath.Join(cfg.CacheDir, "engines", key)
	return sourceEngine{
		Commit:  commit,
		CUDA:    cuda,
		Key:     key,
		Dir:     dir,
		Binary:  filepath.Join(dir, "llama-server"),
		Version: sourceVersion(sc.Ref, commit, kind),
	}
}

func sourceVersion(ref, commit, kind string) string {
	short := commit
	if len(short) > 9 {
		short = short[:9]
	}
	return "llamacpp-" + ref + "-" + strings.ToLower(short) + "-" + kind
}

// git runs git with the provider's environment, never prompting.
func (p *Provider) git(ctx context.Context, dir string, args ...string) (string, error) {
	gitPath, err := p.env.lookPath("git", p.workDir())
	if err != nil {
		return "", fmt.Errorf("git not found on PATH (%s); install git (Debian/Ubuntu: apt-get install git) to build llama-server from source", p.env.get("PATH"))
	}
	cmd := exec.CommandContext(ctx, gitPath, args...)
	cmd.Dir = dir
	cmd.Env = p.env.with("GIT_TERMINAL_PROMPT=0", "GIT_ASKPASS=", "LC_ALL=C")
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return "", fmt.Errorf("git %s: %w", args[0], ctx.Err())
		}
		return "", fmt.Errorf("git %s: %w: %s", strings.Join(args, " "), err, truncate(stderr.String(), 600))
	}
	return stdout.String(), nil
}

// gitRef is a ref of a repository, as the provider block names them.
type gitRef struct{ repo, ref string }

// lsRemote resolves a tag or branch name on the remote without cloning,
// once per command: every pool it plans and every Ensure it runs see the
// same commit, even if the branch moves meanwhile, and a thousand pools
// cost one round trip. A repository that cannot be reached is not asked
// again either.
func (p *Provider) lsRemote(ctx context.Context, repo, ref string) (string, error) {
	return p.refs.do(ctx, gitRef{repo: repo, ref: ref}, func(ctx context.Context) (string, bool, error) {
		commit, err := p.lsRemoteOnce(ctx, repo, ref)
		return commit, true, err
	})
}

// lsRemoteOnce asks the remote: an annotated tag's peeled commit first,
// then the tag, then a branch.
func (p *Provider) lsRemoteOnce(ctx context.Context, repo, ref string) (string, error) {
	// An annotated tag is listed as the tag object and, with the ^{} pattern,
	// as the commit it points to.
	out, err := p.git(ctx, p.workDir(), "ls-remote", repo, ref, ref+"^{}")
	if err != nil {
		return "", fmt.Errorf("resolving git ref %q in %s: %w", ref, repo, err)
	}
	found := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		sha, name, ok := strings.Cut(strings.TrimSpace(line), "\t")
		if ok {
			found[name] = sha
		}
	}
	for _, name := range []string{"refs/tags/" + ref + "^{}", "refs/tags/" + ref, "refs/heads/" + ref, ref} {
		if sha, ok := found[name]; ok {
			return sha, nil
		}
	}
	return "", fmt.Errorf("%w: %q is not a tag or branch of %s; use an existing tag, branch or commit (git ls-remote %s lists them)",
		errRefNotFound, ref, repo, repo)
}

// localCommit resolves ref in the local clone, without the network.
func (p *Provider) localCommit(ctx context.Context, src, ref string) (string, bool) {
	if _, err := os.Stat(filepath.Join(src, ".git")); err != nil {
		return "", false
	}
	out, err := p.git(ctx, src, "rev-parse", "--verify", "--quiet", ref+"^{commit}")
	if err != nil {
		return "", false
	}
	return strings.TrimSpace(out), true
}

// plannedCommit is PlanPool's answer: the commit ref resolves to now, from
// ls-remote for names and without the network for commit ids ("" when an
// abbreviated id is not in the local clone yet).
func (p *Provider) plannedCommit(ctx context.Context, cfg *providerConfig) (string, error) {
	sc := cfg.Source
	if !isCommitish(sc.Ref) {
		return p.lsRemote(ctx, sc.Git, sc.Ref)
	}
	if commit, ok := p.localCommit(ctx, p.srcDir(cfg), sc.Ref); ok {
		return commit, nil
	}
	if len(sc.Ref) >= 9 {
		// The version shows 9 digits, which the ref already has.
		return strings.ToLower(sc.Ref), nil
	}
	return "", nil
}

// syncSource makes sure the local clone holds commit-ish ref (cloning or
// fetching as needed) and returns the full commit. The caller holds the
// source lock.
func (p *Provider) syncSource(ctx context.Context, cfg *providerConfig, ref string, progress func(providers.Event)) (string, error) {
	sc := cfg.Source
	src := p.srcDir(cfg)
	if _, err := os.Stat(filepath.Join(src, ".git")); errors.Is(err, fs.ErrNotExist) {
		progress(providers.Event{Stage: "clone", Message: "cloning " + sc.Git})
		if err := os.MkdirAll(filepath.Dir(src), 0o755); err != nil {
			return "", fmt.Errorf("creating the source cache: %w", err)
		}
		tmp, err := os.MkdirTemp(filepath.Dir(src), ".clone-")
		if err != nil {
			return "", fmt.Errorf("creating a directory to clone into: %w", err)
		}
		defer os.RemoveAll(tmp) // gone after the rename
		if _, err := p.git(ctx, tmp, "clone", "--no-checkout", "--quiet", "--", sc.Git, "."); err != nil {
			return "", fmt.Errorf("cloning %s: %w", sc.Git, err)
		}
		os.RemoveAll(src) // a directory without .git is a leftover
		if err := os.Rename(tmp, src); err != nil {
			return "", fmt.Errorf("moving the clone into the cache: %w", err)
		}
	}
	if commit, ok := p.localCommit(ctx, src, ref); ok {
		return commit, nil
	}
	progress(providers.Event{Stage: "fetch", Message: "fetching " + sc.Git})
	if _, err := p.git(ctx, src, "fetch", "--quiet", "--force", "--tags", "origin", "+refs/heads/*:refs/remotes/origin/*"); err != nil {
		return "", fmt.Errorf("fetching %s: %w", sc.Git, err)
	}
	if commit, ok := p.localCommit(ctx, src, ref); ok {
		return commit, nil
	}
	return "", fmt.Errorf("%w: %q is not a commit, tag or branch of %s; use an existing tag, branch or commit", errRefNotFound, ref, sc.Git)
}

// lockSource takes the lock of the shared checkout of cfg's repository.
func (p *Provider) lockSource(ctx context.Context, cfg *providerConfig, progress func(providers.Event)) (func(), error) {
	return stage.LockFile(ctx, p.srcDir(cfg)+".lock", func() {
		progress(providers.Event{Stage: "clone", Message: "waiting for another llorch process using the checkout of " + cfg.Source.Git})
	})
}

// resolveCommit returns the commit the configured ref names: a commit id
// through the local clone (cloned or fetched as needed), a tag or branch
// through git ls-remote. When the repository cannot be reached, the commit
// the ref named at the last fetch is used, so that an apply works offline.
func (p *Provider) resolveCommit(ctx context.Context, cfg *providerConfig, progress func(providers.Event)) (string, error) {
	sc := cfg.Source
	if isCommitish(sc.Ref) {
		unlock, err := p.lockSource(ctx, cfg, progress)
		if err != nil {
			return "", err
		}
		defer unlock()
		return p.syncSource(ctx, cfg, sc.Ref, progress)
	}
	progress(providers.Event{Stage: "resolve", Message: fmt.Sprintf("resolving %s in %s", sc.Ref, sc.Git)})
	commit, err := p.lsRemote(ctx, sc.Git, sc.Ref)
	if err == nil || errors.Is(err, errRefNotFound) || ctx.Err() != nil {
		return commit, err
	}
	// Fetched branches live under refs/remotes/origin; the clone's own
	// branch is never updated.
	for _, name := range []string{"refs/remotes/origin/" + sc.Ref, "refs/tags/" + sc.Ref} {
		if local, ok := p.localCommit(ctx, p.srcDir(cfg), name); ok {
			progress(providers.Event{Stage: "resolve", Message: fmt.Sprintf(
				"%s cannot be reached (%v); using %s, which %s named at the last fetch", sc.Git, err, local, sc.Ref)})
			return local, nil
		}
	}
	return "", err
}

// ensureSource returns the engine for the configured ref, building it
// unless the same commit was already built with the same options.
func (p *Provider) ensureSource(ctx context.Context, cfg *providerConfig, progress func(providers.Event)) (sourceEngine, error) {
	commit, err := p.resolveCommit(ctx, cfg, progress)
	if err != nil {
		return sourceEngine{}, err
	}
	eng := p.engineFor(cfg, commit)
	if isExecutableFile(eng.Binary) {
		return eng, nil
	}
	unlockEngine, err := stage.LockFile(ctx, eng.Dir+".lock", func() {
		progress(providers.Event{Stage: "build", Message: "waiting for another llorch process building " + eng.Version})
	})
	if err != nil {
		return sourceEngine{}, err
	}
	defer unlockEngine()
	if isExecutableFile(eng.Binary) { // built while we waited
		return eng, nil
	}
	unlockSrc, err := p.lockSource(ctx, cfg, progress)
	if err != nil {
		return sourceEngine{}, err
	}
	defer unlockSrc()
	if _, err := p.syncSource(ctx, cfg, commit, progress); err != nil {
		return sourceEngine{}, err
	}
	if err := p.build(ctx, cfg, eng, progress); err != nil {
		return sourceEngine{}, err
	}
	return eng, nil
}

// build checks out eng.Commit, builds the llama-server target in a
// temporary build directory, and moves the binary into eng.Dir through a
// temporary directory and a rename, so an interrupted build never leaves
// a half-written engine behind.
func (p *Provider) build(ctx context.Context, cfg *providerConfig, eng sourceEngine, progress func(providers.Event)) error {
	sc := cfg.Source
	src := p.srcDir(cfg)
	cmake, err := p.env.lookPath("cmake", p.workDir())
	if err != nil {
		return fmt.Errorf("cmake not found on PATH (%s), and building llama-server from source needs it with a C/C++ compiler: "+
			"install them (Debian/Ubuntu: apt-get install cmake build-essential; Fedora: dnf install cmake gcc gcc-c++ make), "+
			"or use binary = \"/path/to/llama-server\" instead of a source block", p.env.get("PATH"))
	}

	progress(providers.Event{Stage: "checkout", Message: "checking out " + eng.Commit})
	if _, err := p.git(ctx, src, "-c", "advice.detachedHead=false", "checkout", "--quiet", "--force", "--detach", eng.Commit); err != nil {
		return fmt.Errorf("checking out %s (ref %q): %w", eng.Commit, sc.Ref, err)
	}

	buildRoot := filepath.Join(cfg.CacheDir, "build")
	if err := os.MkdirAll(buildRoot, 0o755); err != nil {
		return fmt.Errorf("creating the build directory: %w", err)
	}
	buildDir, unlockBuild, err := newBuildDir(ctx, buildRoot, eng.Key)
	if err != nil {
		return err
	}
	defer unlockBuild()
	kept := fmt.Sprintf("(the build directory %s is kept for inspection until the next build of any engine)", buildDir)

	configure := append([]string{"-S", src, "-B", buildDir}, p.configureArgs(sc, eng.CUDA)...)
	progress(providers.Event{Stage: "configure", Message: "cmake " + strings.Join(configure, " ")})
	if out, err := p.runBuildStep(ctx, cmake, configure, "configure", progress); err != nil {
		return fmt.Errorf("%w\n%s", configureError(eng, out, err), kept)
	}

	jobs := sc.Jobs
	if jobs <= 0 {
		jobs = runtime.NumCPU()
	}
	buildArgs := []string{"--build", buildDir, "--config", "Release", "--target", "llama-server", "-j", strconv.Itoa(jobs)}
	progress(providers.Event{Stage: "build", Message: "cmake " + strings.Join(buildArgs, " "), Total: 100})
	if out, err := p.runBuildStep(ctx, cmake, buildArgs, "build", progress); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("building llama-server at %s: %w", eng.Commit, ctx.Err())
		}
		return fmt.Errorf("building llama-server at %s (ref %q) failed: %w; last lines of the build output:\n%s\n%s",
			eng.Commit, sc.Ref, err, lastLines(out, 20), kept)
	}
	built := ""
	for _, candidate := range []string{filepath.Join(buildDir, "bin", "llama-server"), filepath.Join(buildDir, "llama-server")} {
		if isExecutableFile(candidate) {
			built = candidate
			break
		}
	}
	if built == "" {
		return fmt.Errorf("the build of %s finished but produced no llama-server in %s/bin; is %s llama.cpp?", eng.Commit, buildDir, sc.Git)
	}
	progress(providers.Event{Stage: "install", Message: "installing " + eng.Version + " into " + eng.Dir})
	if err := installEngine(built, eng, sc); err != nil {
		return err
	}
	return os.RemoveAll(buildDir)
}

// buildLockName is the lock file inside a build directory, held for as
// long as its build runs.
const buildLockName = ".llorch-build.lock"

// newBuildDir creates a build directory for key under root and locks it.
// A failed build keeps its directory for inspection (cmake's logs are
// there); the next build of any engine removes every directory whose build
// no longer runs, whatever key it was for, so a ref that failed and was
// then changed does not leave a cmake tree behind for good. The root lock
// makes sweeping and creating one step, so a sweep never removes a
// directory whose build has not taken its lock yet.
func newBuildDir(ctx context.Context, root, key string) (string, func(), error) {
	unlockRoot, err := stage.LockFile(ctx, root+".lock", nil)
	if err != nil {
		return "", nil, err
	}
	defer unlockRoot()
	entries, err := os.ReadDir(root)
	if err != nil {
		return "", nil, fmt.Errorf("reading the build directory %s: %w", root, err)
	}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		dir := filepath.Join(root, e.Name())
		unlock, ok, err := stage.TryLockFile(filepath.Join(dir, buildLockName))
		if err != nil || !ok {
			continue // a build that still runs, or a directory we cannot lock: leave it
		}
		os.RemoveAll(dir)
		unlock()
	}
	dir, err := os.MkdirTemp(root, key+"-")
	if err != nil {
		return "", nil, fmt.Errorf("creating the build directory: %w", err)
	}
	unlock, ok, err := stage.TryLockFile(filepath.Join(dir, buildLockName))
	if err != nil || !ok {
		os.RemoveAll(dir)
		return "", nil, fmt.Errorf("locking the build directory %s: %v", dir, err)
	}
	return dir, unlock, nil
}

// engineRecord is written beside a built binary: what it was built from.
type engineRecord struct {
	EngineVersion string   `json:"engine_version"`
	Git           string   `json:"git"`
	Ref           string   `json:"ref"`
	Commit        string   `json:"commit"`
	CUDA          bool     `json:"cuda"`
	CMakeArgs     []string `json:"cmake_args"`
}

func installEngine(built string, eng sourceEngine, sc *sourceConfig) error {
	parent := filepath.Dir(eng.Dir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", parent, err)
	}
	tmp, err := os.MkdirTemp(parent, ".tmp-"+eng.Key+"-")
	if err != nil {
		return fmt.Errorf("creating a directory to install the engine: %w", err)
	}
	defer os.RemoveAll(tmp) // gone after the rename
	if err := copyExecutable(built, filepath.Join(tmp, "llama-server")); err != nil {
		return err
	}
	rec, err := json.MarshalIndent(engineRecord{EngineVersion: eng.Version, Git: sc.Git, Ref: sc.Ref, Commit: eng.Commit,
		CUDA: eng.CUDA, CMakeArgs: sc.CMakeArgs}, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding the engine record: %w", err)
	}
	if err := stage.WriteFileAtomic(filepath.Join(tmp, "engine.json"), append(rec, '\n'), 0o644); err != nil {
		return err
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return fmt.Errorf("setting the mode of %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, eng.Dir); err != nil {
		return fmt.Errorf("moving the built engine into %s: %w", eng.Dir, err)
	}
	return stage.SyncDir(parent)
}

func copyExecutable(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return fmt.Errorf("copying the built binary: %w", err)
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o755)
	if err != nil {
		return fmt.Errorf("copying the built binary: %w", err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copying the built binary to %s: %w", to, err)
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return fmt.Errorf("syncing %s: %w", to, err)
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("closing %s: %w", to, err)
	}
	return nil
}

// runBuildStep runs cmake, streaming its output as progress events
// ("[ 42%] Building …" lines become Current/Total of 100), and returns the
// combined output.
func (p *Provider) runBuildStep(ctx context.Context, cmake string, args []string, stage string, progress func(providers.Event)) (string, error) {
	cmd := exec.CommandContext(ctx, cmake, args...)
	cmd.Env = p.env.with("LC_ALL=C")
	cmd.WaitDelay = 5 * time.Second
	lw := &lineWriter{onLine: func(line string) {
		if pct, ok := buildPercent(line); ok {
			progress(providers.Event{Stage: stage, Message: line, Current: pct, Total: 100})
		}
	}}
	cmd.Stdout, cmd.Stderr = lw, lw
	err := cmd.Run()
	lw.flush()
	return lw.String(), err
}

var percentLine = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^\[\s*(\d+)%\]`) })

func buildPercent(line string) (int64, bool) {
	m := percentLine().FindStringSubmatch(line)
	if m == nil {
		return 0, false
	}
	n, err := strconv.ParseInt(m[1], 10, 64)
	return n, err == nil
}

// lineWriter collects output and calls onLine for each complete line.
type lineWriter struct {
	mu      sync.Mutex
	all     bytes.Buffer
	partial []byte
	onLine  func(string)
}

func (w *lineWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.all.Write(b)
	w.partial = append(w.partial, b...)
	for {
		i := bytes.IndexByte(w.partial, '\n')
		if i < 0 {
			break
		}
		w.onLine(strings.TrimRight(string(w.partial[:i]), "\r"))
		w.partial = w.partial[i+1:]
	}
	return len(b), nil
}

func (w *lineWriter) flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.partial) > 0 {
		w.onLine(string(w.partial))
		w.partial = nil
	}
}

func (w *lineWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.all.String()
}

// configureError explains a failed cmake configure step, recognising a
// missing compiler or build tool and a missing CUDA toolkit.
func configureError(eng sourceEngine, out string, err error) error {
	switch {
	case strings.Contains(out, "No CMAKE_CUDA_COMPILER could be found"), strings.Contains(out, "CMAKE_CUDA_COMPILER not set"),
		strings.Contains(out, "Could not find nvcc"):
		return fmt.Errorf("configuring llama-server for CUDA failed: cmake found no CUDA compiler (nvcc); install the CUDA toolkit, "+
			"or set cuda = \"false\" in the source block. cmake said:\n%s", lastLines(out, 20))
	case strings.Contains(out, "unable to find a build program"), strings.Contains(out, "CMAKE_MAKE_PROGRAM is not set"):
		return fmt.Errorf("configuring llama-server failed: cmake found no build tool (make); install build-essential "+
			"(Debian/Ubuntu: apt-get install build-essential) or ninja. cmake said:\n%s", lastLines(out, 20))
	case strings.Contains(out, "No CMAKE_C_COMPILER could be found"), strings.Contains(out, "No CMAKE_CXX_COMPILER could be found"),
		strings.Contains(out, "CMAKE_C_COMPILER not set"), strings.Contains(out, "CMAKE_CXX_COMPILER not set"),
		strings.Contains(out, "is not a full path to an existing compiler tool"):
		return fmt.Errorf("configuring llama-server failed: cmake found no C/C++ compiler; install one (Debian/Ubuntu: "+
			"apt-get install build-essential, which brings gcc, g++ and make; Fedora: dnf install gcc gcc-c++ make). cmake said:\n%s",
			lastLines(out, 20))
	}
	return fmt.Errorf("configuring llama-server at %s failed: %w; last lines of cmake's output:\n%s", eng.Commit, err, lastLines(out, 20))
}

// lastLines returns the last n non-empty lines of out, indented.
func lastLines(out string, n int) string {
	var lines []string
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) != "" {
			lines = append(lines, sc.Text())
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	for i, l := range lines {
		lines[i] = "  " + l
	}
	return strings.Join(lines, "\n")
}
