package discovery

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/llorch/llorch/providers"
)

// PluginPrefix starts the file name of every third-party provider plugin.
const PluginPrefix = "llorch-provider-"

// DefaultStartTimeout bounds how long a plugin may take to complete the
// handshake when Options.StartTimeout is zero.
const DefaultStartTimeout = 30 * time.Second

// Errors a Resolver returns wrap one of these, for errors.Is; their text
// says what went wrong and what to do.
var (
	ErrNotFound        = errors.New("provider plugin not found")
	ErrNotLocked       = errors.New("provider plugin not in the lock file")
	ErrChecksum        = errors.New("provider plugin checksum mismatch")
	ErrNotPlugin       = errors.New("not a llorch provider plugin")
	ErrProtocolVersion = errors.New("provider plugin protocol version mismatch")
	ErrClosed          = errors.New("provider resolver closed")
)

// Options configure a Resolver.
type Options struct {
	// SelfExe is the llorch executable (os.Executable()), re-executed to
	// serve built-in providers.
	SelfExe string
	// Builtins maps each built-in provider to the arguments that make
	// SelfExe serve it, e.g. {"llamacpp": {"internal-plugin", "llamacpp"}}.
	Builtins map[string][]string
	// Dirs are searched in order for llorch-provider-NAME executables; nil
	// means DefaultDirs for the current directory, home and environment.
	Dirs []string
	// LockFile is the path of .llorch.lock.hcl. Third-party plugins must be
	// recorded there with their current checksum. "" checks nothing, for
	// tests and tools that only describe plugins.
	LockFile string
	// Logger receives llorch's and the plugins' log lines; nil discards them.
	Logger hclog.Logger
	// Stderr receives what plugins print on their standard error (besides
	// the last lines kept for error messages); nil discards it.
	Stderr io.Writer
	// StartTimeout bounds the handshake; zero means DefaultStartTimeout.
	StartTimeout time.Duration
}

// DefaultDirs returns the plugin directories in search order:
// workDir/.llorch/plugins, each directory in $LLORCH_PLUGIN_DIR (a
// PATH-style list), then home/.llorch/plugins. An empty workDir is the
// current directory and an empty home is skipped.
func DefaultDirs(workDir, home string, env func(string) string) []string {
	var dirs []string
	add := func(d string) {
		if d == "" {
			return
		}
		d = filepath.Clean(d)
		for _, have := range dirs {
			if have == d {
				return
			}
		}
		dirs = append(dirs, d)
	}
	add(filepath.Join(workDir, ".llorch", "plugins"))
	for _, d := range filepath.SplitList(env("LLORCH_PLUGIN_DIR")) {
		add(d)
	}
	if home != "" {
		add(filepath.Join(home, ".llorch", "plugins"))
	}
	return dirs
}

// Resolver finds, verifies and starts provider plugins, and keeps each one
// running until it is closed. It implements providers.Resolver and is safe
// for concurrent use: concurrent requests for one provider share a single
// plugin process.
type Resolver struct {
	opts   Options
	logger hclog.Logger

	// done is closed by Close, so that plugins still starting are killed
	// instead of being waited for.
	done chan struct{}

	mu      sync.Mutex
	lock    *LockFile // nil when Options.LockFile is ""
	running map[string]*entry
	closed  bool
}

var _ providers.Resolver = (*Resolver)(nil)

// entry is one provider being started or running. ready is closed once p
// or err is set.
type entry struct {
	ready chan struct{}
	p     *pluginProvider
	err   error
}

// validName matches provider names: what an HCL engine = "NAME" can say
// and a file name can hold.
var validName = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-z][a-z0-9_-]*$`) })

// New returns a Resolver. It reads the lock file now, so a broken one is
// reported before any plugin runs.
func New(opts Options) (*Resolver, error) {
	for name := range opts.Builtins {
		if !validName().MatchString(name) {
			return nil, fmt.Errorf("built-in provider name %q is invalid: use lower-case letters, digits, '-' and '_'", name)
		}
		if opts.SelfExe == "" {
			return nil, fmt.Errorf("built-in provider %q needs Options.SelfExe, the llorch executable that serves it", name)
		}
	}
	if opts.Dirs == nil {
		wd, err := os.Getwd()
		if err != nil {
			return nil, fmt.Errorf("finding the plugin directories: %w", err)
		}
		home, _ := os.UserHomeDir() // no home: that directory is skipped
		opts.Dirs = DefaultDirs(wd, home, os.Getenv)
	}
	if opts.StartTimeout <= 0 {
		opts.StartTimeout = DefaultStartTimeout
	}
	r := &Resolver{opts: opts, logger: opts.Logger, done: make(chan struct{}), running: map[string]*entry{}}
	if r.logger == nil {
		r.logger = hclog.NewNullLogger()
	}
	if opts.LockFile != "" {
		lf, err := LoadLockFile(osFs, opts.LockFile)
		if err != nil {
			return nil, err
		}
		r.lock = lf
	}
	return r, nil
}

// Names lists every provider that can be resolved: the built-ins and every
// llorch-provider-NAME found in the plugin directories, sorted.
func (r *Resolver) Names() []string {
	set := map[string]bool{}
	for name := range r.opts.Builtins {
		set[name] = true
	}
	for _, dir := range r.opts.Dirs {
		ents, err := os.ReadDir(dir)
		if err != nil {
			continue // a missing directory holds no plugins
		}
		for _, e := range ents {
			name, ok := strings.CutPrefix(e.Name(), PluginPrefix)
			if ok && validName().MatchString(name) && !e.IsDir() {
				set[name] = true
			}
		}
	}
	names := make([]string, 0, len(set))
	for n := range set {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Provider returns the running provider called name, starting its plugin
// first if needed. A plugin that has exited since (it crashed) is started
// again. Every caller asking for name gets the same provider; its Close
// stops the plugin for all of them, and the next Provider call starts a new
// one.
func (r *Resolver) Provider(ctx context.Context, name string) (providers.Provider, error) {
	if !validName().MatchString(name) {
		return nil, &kindError{kind: ErrNotFound, msg: fmt.Sprintf(
			"provider name %q is invalid: provider names use lower-case letters, digits, '-' and '_'", name)}
	}
	for {
		r.mu.Lock()
		if r.closed {
			r.mu.Unlock()
			return nil, fmt.Errorf("starting provider %q: %w", name, ErrClosed)
		}
		e, ok := r.running[name]
		if !ok {
			e = &entry{ready: make(chan struct{})}
			r.running[name] = e
			r.mu.Unlock()
			e.p, e.err = r.start(ctx, name, func() { r.forget(name, e) })
			if e.err != nil {
				r.forget(name, e)
			}
			close(e.ready)
			if e.err != nil {
				return nil, e.err
			}
			return e.p, nil
		}
		r.mu.Unlock()

		select {
		case <-e.ready:
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for provider %q to start: %w", name, ctx.Err())
		}
		switch {
		case e.err == nil && !e.p.exited():
			return e.p, nil
		case e.err == nil:
			r.logger.Warn("provider plugin has exited; starting it again", "provider", name)
			r.forget(name, e)
		case ctx.Err() == nil && (errors.Is(e.err, context.Canceled) || errors.Is(e.err, context.DeadlineExceeded)):
			// Whoever was starting it gave up; this caller has not.
		default:
			return nil, e.err
		}
	}
}

// forget drops e from the running set if it is still the entry for name.
func (r *Resolver) forget(name string, e *entry) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.running[name] == e {
		delete(r.running, name)
	}
}

// Close stops every plugin this resolver started, including those still
// starting, and makes Provider fail from then on. Calling it again does
// nothing.
func (r *Resolver) Close() {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	r.closed = true
	close(r.done)
	entries := make([]*entry, 0, len(r.running))
	for _, e := range r.running {
		entries = append(entries, e)
	}
	r.running = map[string]*entry{}
	r.mu.Unlock()

	var wg sync.WaitGroup
	for _, e := range entries {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-e.ready
			if e.p != nil {
				e.p.kill()
			}
		}()
	}
	wg.Wait()
}

// lockFile returns the lock file in force; nil when none is checked.
func (r *Resolver) lockFile() *LockFile {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lock
}

func (r *Resolver) setLockFile(lf *LockFile) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lock = lf
}

// find returns the absolute path of the first llorch-provider-NAME in the
// plugin directories.
func (r *Resolver) find(name string) (string, error) {
	file := PluginPrefix + name
	for _, dir := range r.opts.Dirs {
		path := filepath.Join(dir, file)
		fi, err := os.Stat(path)
		if err != nil || fi.IsDir() {
			continue
		}
		abs, err := filepath.Abs(path)
		if err != nil {
			return "", fmt.Errorf("provider %q: resolving %s: %w", name, path, err)
		}
		if fi.Mode().Perm()&0o111 == 0 {
			return "", &kindError{kind: ErrNotPlugin, msg: fmt.Sprintf(
				"provider %q plugin %s is not executable; make it so with chmod +x %s", name, abs, abs)}
		}
		return abs, nil
	}
	where := "no plugin directories are configured"
	if len(r.opts.Dirs) > 0 {
		where = "searched " + strings.Join(r.opts.Dirs, ", ")
	}
	known := "none"
	if names := r.Names(); len(names) > 0 {
		known = strings.Join(names, ", ")
	}
	return "", &kindError{kind: ErrNotFound, msg: fmt.Sprintf(
		"provider %q not found: there is no executable %s (%s); build or copy it into one of these directories and run `llorch init` (known providers: %s)",
		name, file, where, known)}
}

// kindError is an error with its own message that errors.Is matches
// against one of the Err* kinds.
type kindError struct {
	kind error
	msg  string
}

func (e *kindError) Error() string { return e.msg }
func (e *kindError) Unwrap() error { return e.kind }
