package llamacpp

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/llorch/llorch/providers/sdk/stage"
)

// environ is the process environment the provider reads (PATH, HOME,
// XDG_CACHE_HOME, HF_TOKEN, HF_ENDPOINT) and hands to the commands it runs.
// It is injectable so tests never touch the real environment.
type environ []string

// get returns the value of key ("" when unset); the last entry wins, as in
// os/exec.
func (e environ) get(key string) string {
	v, _ := e.lookup(key)
	return v
}

func (e environ) lookup(key string) (string, bool) {
	for i := len(e) - 1; i >= 0; i-- {
		if k, v, ok := strings.Cut(e[i], "="); ok && k == key {
			return v, true
		}
	}
	return "", false
}

// with returns a copy of e with kvs ("K=V") set, replacing earlier values.
func (e environ) with(kvs ...string) []string {
	out := make([]string, 0, len(e)+len(kvs))
	for _, entry := range e {
		k, _, _ := strings.Cut(entry, "=")
		replaced := false
		for _, kv := range kvs {
			if nk, _, _ := strings.Cut(kv, "="); nk == k {
				replaced = true
				break
			}
		}
		if !replaced {
			out = append(out, entry)
		}
	}
	return append(out, kvs...)
}

// pathDirs lists the PATH entries, an empty entry meaning the working
// directory (as POSIX shells read it).
func (e environ) pathDirs() []string {
	return filepath.SplitList(e.get("PATH"))
}

// errNotOnPath is returned (wrapped) by lookPath when no PATH entry holds
// an executable of that name.
var errNotOnPath = errors.New("not found on PATH")

// lookPath finds name in e's PATH, like exec.LookPath but with this
// environment rather than the process's.
func (e environ) lookPath(name, wd string) (string, error) {
	for _, dir := range e.pathDirs() {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, name)
		if !filepath.IsAbs(p) {
			p = filepath.Join(wd, p)
		}
		if isExecutableFile(p) {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s %w", name, errNotOnPath)
}

func isExecutableFile(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

// expandHome expands a leading "~" or "~/" with HOME.
func (e environ) expandHome(p string) (string, error) {
	if p != "~" && !strings.HasPrefix(p, "~/") {
		if strings.HasPrefix(p, "~") {
			return "", fmt.Errorf("%q: only ~ and ~/ are expanded (to HOME), not ~user", p)
		}
		return p, nil
	}
	home := e.get("HOME")
	if home == "" {
		return "", fmt.Errorf("%q starts with ~ but HOME is not set", p)
	}
	return filepath.Join(home, strings.TrimPrefix(p, "~")), nil
}

// defaultCacheDir is llorch's cache directory (stage.DefaultCacheDir).
func (e environ) defaultCacheDir() (string, error) {
	dir := stage.DefaultCacheDir(e.get)
	if dir == "" {
		return "", errors.New("neither XDG_CACHE_HOME nor HOME is set, so there is no default cache directory; set cache_dir in the provider block")
	}
	return dir, nil
}

// statMode describes a file for error messages ("-rw-r--r--").
func statMode(fi fs.FileInfo) string { return fi.Mode().String() }
