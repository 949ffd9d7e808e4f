package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/hcl/v2"
	"github.com/mattn/go-isatty"
	"github.com/spf13/afero"

	"github.com/llorch/llorch/apply"
	"github.com/llorch/llorch/config"
	"github.com/llorch/llorch/internal/logging"
	"github.com/llorch/llorch/internal/supervisor"
	"github.com/llorch/llorch/internal/version"
	"github.com/llorch/llorch/internal/views"
	"github.com/llorch/llorch/plan"
	"github.com/llorch/llorch/providers/discovery"
	"github.com/llorch/llorch/state"
	"github.com/llorch/llorch/state/local"
)

// lockFileName is where `llorch init` records providers.
const lockFileName = ".llorch.lock.hcl"

// builtins are the providers served by this binary through self-exec.
var builtins = map[string][]string{"llamacpp": {"internal-plugin", "llamacpp"}}

// meta is what every command shares: streams, the working directory, and
// lazily built collaborators.
type meta struct {
	ctx    context.Context
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	dir    string
	fs     afero.Fs
	color  bool

	interrupted atomic.Bool
	done        chan struct{}

	logger   hclog.Logger
	resolver *discovery.Resolver
	files    map[string]*hcl.File
}

func newMeta(stdin io.Reader, stdout, stderr io.Writer) *meta {
	color := false
	if f, ok := stdout.(*os.File); ok {
		color = isatty.IsTerminal(f.Fd()) && os.Getenv("NO_COLOR") == ""
	}
	return &meta{
		stdin: stdin, stdout: stdout, stderr: stderr,
		fs: afero.NewOsFs(), color: color, done: make(chan struct{}),
		logger: logging.New(stderr, os.Getenv),
	}
}

func (m *meta) close() {
	if m.resolver != nil {
		m.resolver.Close()
	}
}

// viewFlags are -no-color and -json, shared by most commands.
type viewFlags struct {
	noColor bool
	json    bool
}

func (v *viewFlags) add(fs *flag.FlagSet, withJSON bool) {
	fs.BoolVar(&v.noColor, "no-color", false, "disable color in the output")
	if withJSON {
		fs.BoolVar(&v.json, "json", false, "machine-readable output")
	}
}

func (m *meta) applyView(v viewFlags) {
	if v.noColor || v.json {
		m.color = false
	}
}

// varFlags are -var and -var-file, kept in command-line order.
type varFlags struct{ args []config.VarArg }

func (v *varFlags) add(fs *flag.FlagSet) {
	fs.Func("var", "set a variable: -var 'name=value' (repeatable)", func(s string) error {
		a, err := config.ParseVarFlag(s)
		if err != nil {
			return err
		}
		v.args = append(v.args, a)
		return nil
	})
	fs.Func("var-file", "read variables from an HCL file (repeatable)", func(s string) error {
		v.args = append(v.args, config.VarArg{File: s})
		return nil
	})
}

// lockFlags are -lock and -lock-timeout.
type lockFlags struct {
	lock    bool
	timeout time.Duration
}

func (l *lockFlags) add(fs *flag.FlagSet) {
	fs.BoolVar(&l.lock, "lock", true, "hold the state lock while the command runs")
	fs.DurationVar(&l.timeout, "lock-timeout", 0, "how long to wait for a held state lock")
}

// parseFlags parses args, printing a usage error the Terraform way.
func (m *meta) parseFlags(fs *flag.FlagSet, args []string) bool {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(m.stdout, "Usage: llorch %s [options]\n\nOptions:\n", fs.Name())
			fs.SetOutput(m.stdout)
			fs.PrintDefaults()
			return false
		}
		m.errorf("Invalid command-line option", "%s.\n\nRun \"llorch %s -help\" to see the options.", err, fs.Name())
		return false
	}
	return true
}

// diagnostics prints diags to stderr with source snippets and returns
// whether any was an error.
func (m *meta) diagnostics(diags hcl.Diagnostics) bool {
	if len(diags) == 0 {
		return false
	}
	_ = views.WriteDiagnostics(m.stderr, diags, m.files, views.DiagOptions{Color: m.color, Width: 78, BaseDir: m.dir})
	return diags.HasErrors()
}

// errorf prints a sourceless error diagnostic.
func (m *meta) errorf(summary, detailFormat string, args ...any) {
	m.diagnostics(hcl.Diagnostics{{Severity: hcl.DiagError, Summary: summary, Detail: fmt.Sprintf(detailFormat, args...)}})
}

// providerResolver finds built-in and plugin providers; started lazily.
func (m *meta) providerResolver() (*discovery.Resolver, error) {
	if m.resolver != nil {
		return m.resolver, nil
	}
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("finding the llorch executable: %w", err)
	}
	home, _ := os.UserHomeDir()
	r, err := discovery.New(discovery.Options{
		SelfExe:  self,
		Builtins: builtins,
		Dirs:     discovery.DefaultDirs(m.dir, home, os.Getenv),
		LockFile: filepath.Join(m.dir, lockFileName),
		Logger:   m.logger,
		Stderr:   m.stderr,
	})
	if err != nil {
		return nil, err
	}
	m.resolver = r
	return r, nil
}

// loadConfig reads the configuration in the working directory, printing
// diagnostics. ok is false when there were errors.
func (m *meta) loadConfig(vars []config.VarArg) (*config.Config, bool) {
	r, err := m.providerResolver()
	if err != nil {
		m.errorf("Cannot find providers", "%s", err)
		return nil, false
	}
	cfg, diags := config.Load(m.fs, m.dir, config.LoadOptions{Engines: r.Names(), Vars: vars})
	if cfg != nil {
		m.files = cfg.Files
	}
	if m.diagnostics(diags) {
		return nil, false
	}
	if len(cfg.Files) == 0 {
		m.errorf("No configuration files",
			"There are no *.llorch.hcl files in %s. Write one (see examples/quickstart), or use -chdir=DIR to run llorch in another directory.", m.dir)
		return nil, false
	}
	return cfg, true
}

// dirs resolves the llorch {} block's directories against the working
// directory.
func (m *meta) dirs(cfg *config.Config) apply.Dirs {
	abs := func(p string) string {
		if filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(m.dir, p)
	}
	return apply.Dirs{State: abs(cfg.Settings.StateDir), Handoff: abs(cfg.Settings.HandoffDir)}
}

func (m *meta) store(d apply.Dirs) state.Store {
	return local.New(m.fs, d.State, local.Options{
		ErroredPath: filepath.Join(m.dir, "errored.state.json"),
		Version:     version.Version,
	})
}

// lock takes the state lock for op, waiting up to lf.timeout, and returns
// the function that releases it.
func (m *meta) lock(s state.Store, lf lockFlags, op string) (func(), bool) {
	if !lf.lock {
		return func() {}, true
	}
	info := state.LockInfo{
		Operation: op, Who: whoami(), PID: os.Getpid(), Version: version.Version,
		Created: time.Now().UTC(),
	}
	info.Host, _ = os.Hostname()
	id, err := state.LockWithTimeout(m.ctx, s, info, lf.timeout)
	if err != nil {
		var le *state.LockError
		if errors.As(err, &le) {
			m.errorf("Error acquiring the state lock",
				"%s\n\nllorch acquires a state lock to protect the state from being written by multiple users at the same time. Wait for that operation to finish, or use -lock-timeout=DUR to wait for it. If the holder is gone and the lock remains, run \"llorch force-unlock %s\".",
				le.Error(), le.Info.ID)
		} else {
			m.errorf("Error acquiring the state lock", "%s", err)
		}
		return nil, false
	}
	return func() {
		if err := s.Unlock(context.WithoutCancel(m.ctx), id); err != nil {
			m.errorf("Error releasing the state lock", "%s\n\nRun \"llorch force-unlock %s\" to release it.", err, id)
		}
	}, true
}

func whoami() string {
	host, _ := os.Hostname()
	name := "unknown"
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	return name + "@" + host
}

// readState reads the state, printing a clear error when it is corrupt.
func (m *meta) readState(s state.Store) (*state.State, bool) {
	st, err := s.Read(m.ctx)
	if err != nil {
		m.errorf("Failed to read the state", "%s", err)
		return nil, false
	}
	return st, true
}

func (m *meta) launcher() (*supervisor.ExecLauncher, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("finding the llorch executable: %w", err)
	}
	return &supervisor.ExecLauncher{Exe: self, Args: []string{"supervise"}, Fs: m.fs}, nil
}

func (m *meta) planner(refresh plan.Refresher) (*plan.Planner, error) {
	r, err := m.providerResolver()
	if err != nil {
		return nil, err
	}
	return &plan.Planner{Providers: r, Refresher: refresh}, nil
}

// confirm asks a yes/no question on the terminal. It refuses, with advice
// to use skipFlag, when standard input is not a terminal (CI must say so
// explicitly rather than hang or pipe "yes").
func (m *meta) confirm(question, cmdName, skipFlag string) bool {
	f, ok := m.stdin.(*os.File)
	if !ok || !isatty.IsTerminal(f.Fd()) {
		m.errorf("Confirmation required",
			"llorch %s asks for confirmation, but standard input is not a terminal. Run it with %s to skip the question, for example in CI.",
			cmdName, skipFlag)
		return false
	}
	fmt.Fprintf(m.stdout, "\n%s\n\n  Enter a value: ", question)
	var answer string
	if _, err := fmt.Fscanln(m.stdin, &answer); err != nil && answer == "" {
		answer = ""
	}
	if answer != "yes" {
		fmt.Fprintf(m.stdout, "\n%s cancelled.\n", cmdName)
		return false
	}
	return true
}

func versionString() string { return version.Version }

func platform() string { return runtime.GOOS + "_" + runtime.GOARCH }
