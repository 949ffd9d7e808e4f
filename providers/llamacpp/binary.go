package llamacpp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/llorch/llorch/providers/sdk/stage"
)

const binaryHint = "install llama.cpp or set binary to its path, or use a source {} block"

// resolveBinary finds the llama-server executable named by the provider
// block: a path (relative to the configuration directory) when it contains a
// slash, else a name looked up on PATH.
func (p *Provider) resolveBinary(name string) (string, error) {
	if strings.ContainsRune(name, '/') {
		path := stage.Resolve(name, p.workDir())
		fi, err := os.Stat(path)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return "", fmt.Errorf("llama-server binary %q not found; %s", path, binaryHint)
		case err != nil:
			return "", fmt.Errorf("checking llama-server binary %q: %w", path, err)
		}
		return path, checkExecutable(path, fi)
	}
	path, err := p.env.lookPath(name, p.workDir())
	if err == nil {
		return path, nil
	}
	// A file of that name that is not executable is worth naming.
	for _, dir := range p.env.pathDirs() {
		candidate := stage.Resolve(filepath.Join(dir, name), p.workDir())
		if fi, err := os.Stat(candidate); err == nil && fi.Mode().IsRegular() {
			return "", checkExecutable(candidate, fi)
		}
	}
	looked := p.env.get("PATH")
	if looked == "" {
		looked = "PATH is empty"
	}
	return "", fmt.Errorf("llama-server binary %q not found (looked on PATH: %s); %s", name, looked, binaryHint)
}

func checkExecutable(path string, fi fs.FileInfo) error {
	switch {
	case fi.IsDir():
		return fmt.Errorf("llama-server binary %q is a directory; set binary to the llama-server file (often build/bin/llama-server inside it)", path)
	case fi.Mode().Perm()&0o111 == 0:
		return fmt.Errorf("llama-server binary %q is not executable (mode %s); make it executable with: chmod +x %s", path, statMode(fi), path)
	}
	return nil
}

var (
	// "version: 4748 (c392e5094)"
	versionOld = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`version: (\d+) \(([0-9A-Za-z]+)\)`) })
	// "version: 0.2.0-dev (build 10573, commit d775b8967)"
	versionNew = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`version: \S+ \(build (\d+), commit ([0-9A-Za-z]+)\)`)
	})
)

// parseVersion turns `llama-server --version` output into an engine
// version, "llamacpp-b<build>-<commit>".
func parseVersion(out string) (string, bool) {
	for _, re := range []*regexp.Regexp{versionNew(), versionOld()} {
		if m := re.FindStringSubmatch(out); m != nil {
			return "llamacpp-b" + m[1] + "-" + m[2], true
		}
	}
	return "", false
}

// binaryVersion returns path's engine version, from the cache when the
// binary's size and mtime are unchanged, else by running --version once:
// concurrent callers share the run, and a binary that gives no version is
// not run again in this command until it changes.
func (p *Provider) binaryVersion(ctx context.Context, path string) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("checking llama-server binary %q: %w", path, err)
	}
	versions, _ := p.caches()
	if v, ok := versions.Get(path, fi); ok {
		return v, nil
	}
	key := fileKey{path: path, size: fi.Size(), mtime: fi.ModTime().UnixNano()}
	return p.versionRuns.do(ctx, key, func(ctx context.Context) (string, bool, error) {
		v, err := p.runVersion(ctx, path, fi, versions)
		return v, err != nil, err // a version lives in the version cache
	})
}

// runVersion runs path --version and records the version in versions.
func (p *Provider) runVersion(ctx context.Context, path string, fi fs.FileInfo, versions *stage.FileCache) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, p.execTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, "--version")
	cmd.Env = p.env
	cmd.WaitDelay = time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out // the real binary prints to stderr
	runErr := cmd.Run()
	v, ok := parseVersion(out.String())
	if !ok {
		status := "it exited successfully"
		if runErr != nil {
			status = runErr.Error()
		}
		if ctx.Err() != nil {
			status = fmt.Sprintf("it did not finish within %s", p.execTimeout)
		}
		return "", fmt.Errorf("%q --version printed no llama-server version (%s); output: %q; check that binary is llama.cpp's llama-server",
			path, status, truncate(out.String(), 400))
	}
	if err := versions.Put(ctx, path, fi, v); err != nil {
		return "", fmt.Errorf("recording the version of %s: %w", path, err)
	}
	return v, nil
}

func truncate(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
