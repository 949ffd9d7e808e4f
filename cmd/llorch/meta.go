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
	"strings"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/hcl/v2"
	"github.com/mattn/go-isatty"
	"github.com/spf13/afero"
	"golang.org/x/term"

	"github.com/llorch/llorch/apply"
	"github.com/llorch/llorch/config"
	"github.com/llorch/llorch/internal/didyoumean"
	"github.com/llorch/llorch/internal/logging"
	"github.com/llorch/llorch/internal/supervisor"
	"github.com/llorch/llorch/internal/version"
	"github.com/llorch/llorch/internal/views"
	"github.com/llorch/llorch/plan"
	"github.com/llorch/llorch/plan/fit"
	"github.com/llorch/llorch/providers"
	"github.com/llorch/llorch/providers/discovery"
	"github.com/llorch/llorch/providers/sdk/stage"
	"github.com/llorch/llorch/state"
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
	// helped is set when a command printed its -help: the command stops
	// there, and llorch exits 0.
	helped bool
	// jsonErrors: the command was asked for -json output, so errors that
	// end it are a JSON document on stdout (jsonDiagnostics).
	jsonErrors bool

	logger   hclog.Logger
	resolver *discovery.Resolver
	released chan struct{} // closed once releaseProviders has stopped them
	files    map[string]*hcl.File
	settings config.Settings // the llorch {} block, once loadSettings read it
	closers  []io.Closer     // state stores to close at the end
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
	closeAll(m.closers)
	if m.released != nil {
		<-m.released
		return
	}
	if m.resolver != nil {
		m.resolver.Close()
	}
}

// releaseProviders stops the provider plugins in the background once the
// command needs them no more (plan, once the providers have answered:
// diffing, showing and saving the plan need none), so that their shutdown
// overlaps what is left; close waits for it.
func (m *meta) releaseProviders() {
	if m.resolver == nil || m.released != nil {
		return
	}
	done := make(chan struct{})
	m.released = done
	go func(r *discovery.Resolver) {
		defer close(done)
		r.Close()
	}(m.resolver)
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
type varFlags struct {
	args    []config.VarArg
	refused *flagRefusal
}

func (v *varFlags) add(fs *flag.FlagSet) {
	fs.Var(varFlag{v}, "var", "set a variable: -var 'name=value' (repeatable)")
	fs.Func("var-file", "read variables from an HCL file (repeatable)", func(s string) error {
		v.args = append(v.args, config.VarArg{File: s})
		return nil
	})
}

// varFlag is -var: each one is parsed as it comes, so -var and -var-file
// keep their relative order.
type varFlag struct{ v *varFlags }

func (f varFlag) String() string { return "" }

func (f varFlag) Set(s string) error {
	a, err := config.ParseVarFlag(s)
	if err != nil {
		f.v.refused = &flagRefusal{summary: "Invalid -var option", detail: sentence(err)}
		return err
	}
	f.v.args = append(f.v.args, a)
	return nil
}

func (f varFlag) refusal() *flagRefusal { return f.v.refused }

// lockFlags are -lock and -lock-timeout.
type lockFlags struct {
	lock    bool
	timeout time.Duration
}

func (l *lockFlags) add(fs *flag.FlagSet) {
	fs.BoolVar(&l.lock, "lock", true, "hold the state lock while the command runs")
	fs.Var(&durationFlag{d: &l.timeout, name: "lock-timeout"}, "lock-timeout", "how long to wait for a held state lock (0s: do not wait)")
}

// parseFlags parses args, printing a usage error the Terraform way.
func (m *meta) parseFlags(fs *flag.FlagSet, args []string) bool {
	err := fs.Parse(flagsFirst(fs, args))
	if err == nil {
		return true
	}
	if errors.Is(err, flag.ErrHelp) {
		printUsage(m.stdout, fs)
		m.helped = true
		return false
	}
	help := fmt.Sprintf("Run \"llorch %s -help\" to see the options.", fs.Name())
	if d := rejectedValue(fs); d != nil {
		m.errorf(d.summary, "%s\n\n%s", d.detail, help)
		return false
	}
	m.errorf("Invalid command-line option", "%s%s\n\n%s", sentence(err), suggestFlag(fs, err), help)
	return false
}

// explainedValue is a flag.Value that can say better than the flag
// package's "invalid value" line what was wrong with the value it refused.
type explainedValue interface {
	flag.Value
	refusal() *flagRefusal
}

// flagRefusal is why a flag value was refused, ready for a diagnostic.
type flagRefusal struct{ summary, detail string }

// rejectedValue returns the refusal of the flag that stopped fs.Parse, if
// that flag can explain itself.
func rejectedValue(fs *flag.FlagSet) *flagRefusal {
	var found *flagRefusal
	fs.VisitAll(func(f *flag.Flag) {
		if ev, ok := f.Value.(explainedValue); ok && found == nil {
			found = ev.refusal()
		}
	})
	return found
}

// suggestFlag offers the nearest defined flag for "flag provided but not
// defined: -name".
func suggestFlag(fs *flag.FlagSet, err error) string {
	_, name, ok := strings.Cut(err.Error(), "flag provided but not defined: -")
	if !ok {
		return ""
	}
	var names []string
	fs.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) }) // sorted
	if best := didyoumean.NameSuggestion(name, names); best != "" {
		return fmt.Sprintf(" Did you mean -%s?", best)
	}
	return ""
}

// durationFlag is a time.Duration flag whose refusal shows the syntax.
type durationFlag struct {
	d       *time.Duration
	name    string
	refused *flagRefusal
}

func (f *durationFlag) String() string {
	if f.d == nil {
		return "0s"
	}
	return f.d.String()
}

func (f *durationFlag) Set(s string) error {
	d, err := time.ParseDuration(s)
	switch {
	case err != nil:
		f.refused = &flagRefusal{
			summary: "Invalid -" + f.name + " option",
			detail:  fmt.Sprintf("-%s=%s is not a duration: use a number and a unit, like -%s=30s or -%s=5m.", f.name, s, f.name, f.name),
		}
		return errors.New("not a duration")
	case d < 0:
		f.refused = &flagRefusal{
			summary: "Invalid -" + f.name + " option",
			detail:  fmt.Sprintf("-%s=%s is negative: use 0s not to wait, or a positive duration like -%s=30s.", f.name, s, f.name),
		}
		return errors.New("negative duration")
	}
	*f.d = d
	return nil
}

func (f *durationFlag) refusal() *flagRefusal { return f.refused }

// diagnostics prints diags to stderr with source snippets and returns
// whether any was an error.
func (m *meta) diagnostics(diags hcl.Diagnostics) bool {
	if len(diags) == 0 {
		return false
	}
	if m.jsonErrors && diags.HasErrors() {
		m.jsonDiagnostics(diags)
		return true
	}
	_ = views.WriteDiagnostics(m.stderr, diags, m.files, views.DiagOptions{Color: m.color, Width: m.wrapWidth(), BaseDir: m.dir})
	return diags.HasErrors()
}

// wrapWidth is the column diagnostics wrap at: the terminal's width when
// stderr is one, else no wrapping, so CI logs keep whole lines to grep.
func (m *meta) wrapWidth() int {
	f, ok := m.stderr.(*os.File)
	if !ok || !isatty.IsTerminal(f.Fd()) {
		return 0
	}
	if w, _, err := term.GetSize(int(f.Fd())); err == nil && w > 20 {
		return min(w-2, 120)
	}
	return 78
}

// errorf prints a sourceless error diagnostic.
func (m *meta) errorf(summary, detailFormat string, args ...any) {
	m.diagnostics(hcl.Diagnostics{{Severity: hcl.DiagError, Summary: summary, Detail: fmt.Sprintf(detailFormat, args...)}})
}

// fail prints a sourceless error diagnostic whose detail is err.
func (m *meta) fail(summary string, err error) {
	if s, cause, ok := backendFailure(err); ok {
		summary, err = s, cause
	}
	m.errorf(summary, "%s", sentence(err))
}

// sentence turns a Go error, lower-case and without a final period by
// convention, into diagnostic detail, which is written in sentences. A
// first word that is a name (a path, an address, a flag, etcd, llorch)
// keeps its case.
func sentence(err error) string {
	s := err.Error()
	if s == "" {
		return s
	}
	first, _, _ := strings.Cut(s, " ")
	if strings.IndexFunc(first, func(r rune) bool { return !unicode.IsLetter(r) }) < 0 && first != "etcd" && first != "llorch" {
		r, size := utf8.DecodeRuneInString(s)
		s = string(unicode.ToUpper(r)) + s[size:]
	}
	if !strings.HasSuffix(s, ".") && !strings.HasSuffix(s, "?") && !strings.HasSuffix(s, "!") {
		s += "."
	}
	return s
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

// prestartProviders starts every provider process in the background, so
// that its start (a process, a handshake, key generation for mTLS) runs
// on the other core while the configuration is parsed. The planner then
// finds them running; the resolver kills them all on exit.
func (m *meta) prestartProviders() {
	r, err := m.providerResolver()
	if err != nil {
		return // loadConfig reports it
	}
	for _, name := range r.Names() {
		go func() { _, _ = r.Provider(m.ctx, name) }()
	}
}

// loadConfig reads the configuration in the working directory, printing
// diagnostics. ok is false when there were errors. onSettings (may be nil)
// is config.LoadOptions.OnSettings.
func (m *meta) loadConfig(vars []config.VarArg, onSettings func(config.Settings)) (*config.Config, bool) {
	r, err := m.providerResolver()
	if err != nil {
		m.fail("Cannot find providers", err)
		return nil, false
	}
	cfg, diags := config.Load(m.fs, m.dir, config.LoadOptions{Engines: r.Names(), Vars: vars, OnSettings: onSettings})
	if cfg != nil {
		m.files = cfg.Files
	}
	if m.diagnostics(diags) {
		return nil, false
	}
	if len(cfg.Files) == 0 {
		m.diagnostics(hcl.Diagnostics{noConfigFiles(m.dir)})
		return nil, false
	}
	return cfg, true
}

// noConfigFiles is the error of every command that needs a configuration
// when the directory holds none.
func noConfigFiles(dir string) *hcl.Diagnostic {
	return &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  "No configuration files",
		Detail: fmt.Sprintf("There are no *.llorch.hcl files in %s. Write one (see examples/quickstart), or use -chdir=DIR to run llorch in another directory.",
			dir),
	}
}

// loadSettings reads only the llorch {} block: for commands that need the
// state's location but not the pools, so they work without -var values.
func (m *meta) loadSettings() (*config.Config, bool) {
	cfg, diags := config.LoadSettings(m.fs, m.dir)
	if cfg != nil {
		m.files = cfg.Files
		m.settings = cfg.Settings
	}
	if m.diagnostics(diags) {
		return nil, false
	}
	return cfg, true
}

// removeStaleHandoffs removes the handoff files whose engine is gone (a
// supervisor killed with -9, a reboot). Every command that reads the state
// does it, so a router is sent to a dead engine only until the next llorch
// command, whatever it is. live names handoff files whose engine a refresh
// has just seen running (nil: look at every file).
func (m *meta) removeStaleHandoffs(d apply.Dirs, live map[string]bool) {
	if _, err := supervisor.RemoveStaleHandoffs(m.fs, d.Handoff, live); err != nil {
		m.logger.Warn("removing stale handoff files", "err", err)
	}
}

// checkPaths refuses a state that names supervisors running outside this
// project's run directory: the state was copied here from another
// directory, and acting on it would stop or restart that directory's
// engines. A shared backend (etcd) is not checked: there the state is
// meant to be used from several directories, and each acts on the engines
// it records.
func (m *meta) checkPaths(st *state.State, set config.Settings) bool {
	if set.Backend != nil {
		return true
	}
	d := m.dirsOf(set)
	var fe *apply.ForeignPathError
	if err := apply.CheckPaths(m.fs, st, d); errors.As(err, &fe) {
		m.errorf("State belongs to another directory",
			"The state says %s runs in %s, outside %s: the state was copied here from another project directory, and names the processes that directory runs. llorch does not act on them from here.\n\n"+
				"Run llorch in the directory the state came from (llorch -chdir=DIR). To start afresh here, move %s away; the pools it names keep running where they are.",
			fe.Addr, fe.RunDir, fe.Root, relTo(m.dir, filepath.Join(d.State, "state.json")))
		return false
	}
	return true
}

// dirs resolves the llorch {} block's directories against the working
// directory.
func (m *meta) dirs(cfg *config.Config) apply.Dirs { return m.dirsOf(cfg.Settings) }

// dirsOf is dirs from the llorch {} block alone, which config.Load reports
// before it evaluates the pools.
func (m *meta) dirsOf(set config.Settings) apply.Dirs {
	abs := func(p string) string {
		if filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(m.dir, p)
	}
	return apply.Dirs{State: abs(set.StateDir), Handoff: abs(set.HandoffDir)}
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
		if !errors.As(err, &le) {
			m.fail("Error acquiring the state lock", err)
			return nil, false
		}
		waited := ""
		if lf.timeout > 0 && m.ctx.Err() == nil {
			waited = fmt.Sprintf(" llorch waited %s (-lock-timeout) for it to be released.", lf.timeout)
		}
		m.errorf("Error acquiring the state lock",
			"The state is locked by %s.%s\n\n%s\n\nllorch acquires a state lock to protect the state from being written by multiple users at the same time. Wait for that operation to finish and try again, or use -lock-timeout=DUR to wait for it.",
			lockHolder(le.Info), waited, lockInfoText(le))
		return nil, false
	}
	return func() {
		if err := s.Unlock(context.WithoutCancel(m.ctx), id); err != nil {
			m.errorf("Error releasing the state lock", "%s\n\nRun \"llorch force-unlock %s\" to release it.", sentence(err), id)
		}
	}, true
}

// lockHolder names who holds a lock and for what: `ann@build1 (pid 42)
// for "apply"`.
func lockHolder(in state.LockInfo) string {
	who := in.Who
	if who == "" {
		who = "another llorch command"
	}
	if in.PID != 0 {
		who += fmt.Sprintf(" (pid %d)", in.PID)
	}
	if in.Operation != "" {
		who += fmt.Sprintf(" for %q", in.Operation)
	}
	return who
}

// lockInfoText lays out the rest of the holder's lock info, as Terraform's
// "Lock Info".
func lockInfoText(le *state.LockError) string {
	in := le.Info
	var b strings.Builder
	b.WriteString("Lock Info:")
	row := func(k, v string) {
		if v != "" {
			fmt.Fprintf(&b, "\n  %-8s %s", k+":", v)
		}
	}
	row("ID", in.ID)
	row("Path", in.Path)
	if !in.Created.IsZero() {
		created := in.Created.UTC().Format("2006-01-02 15:04:05 MST")
		if age := le.Now.Sub(in.Created); !le.Now.IsZero() && age >= 0 {
			created += fmt.Sprintf(" (%s ago)", age.Round(time.Second))
		}
		row("Created", created)
	}
	row("Version", in.Version)
	if le.Err != nil {
		row("Note", "the holder's lock info could not be read: "+le.Err.Error())
	}
	return b.String()
}

func whoami() string {
	host, _ := os.Hostname()
	name := "unknown"
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	return name + "@" + host
}

// readState reads the state, printing a clear error when it is corrupt or
// from a newer llorch.
func (m *meta) readState(s state.Store) (*state.State, bool) {
	st, err := s.Read(m.ctx)
	if err == nil {
		return st, true
	}
	var ce *state.CorruptError
	var ve *state.VersionError
	switch {
	case errors.As(err, &ce):
		advice := "There is no backup: repair the file by hand, or move it away to start from an empty state (llorch then forgets the replicas it recorded, which keep running)."
		what, kept := "The state file "+ce.Path, "a corrupt state file"
		switch {
		case ce.Restore != "":
			// Not a file (etcd): restoring the backup is a push.
			what, kept = "The state in "+ce.Path, "a corrupt state"
			advice = fmt.Sprintf("The previous version is %s: %s.", ce.BackupPath, ce.Restore)
		case ce.BackupPath != "":
			advice = fmt.Sprintf("The previous version is in %s: compare the two, then repair the file by hand or copy the backup over it.", ce.BackupPath)
		}
		m.errorf("Corrupt state file", "%s cannot be read: %s.\n\n%s llorch never overwrites %s, so it was left unchanged.",
			what, ce.Reason, advice, kept)
	case errors.As(err, &ve):
		by := "a newer llorch"
		if ve.WrittenBy != "" {
			by = "llorch " + ve.WrittenBy
		}
		m.errorf("Unsupported state file format",
			"The state file %s was written by %s in state format %d, but this llorch (%s) reads format %d at most.\n\nUpgrade llorch to use this state. The file was left unchanged: an older llorch would drop what it does not understand.",
			ve.Path, by, ve.Found, version.Version, ve.Supported)
	default:
		m.fail("Failed to read the state", err)
	}
	return nil, false
}

func (m *meta) launcher() (*supervisor.ExecLauncher, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("finding the llorch executable: %w", err)
	}
	exe, why := supervisor.Program(self)
	m.logger.Debug("supervisor program", "exe", exe, "why", why)
	return &supervisor.ExecLauncher{Exe: exe, Args: []string{"supervise"}, Fs: m.fs}, nil
}

func (m *meta) planner(refresh plan.Refresher) (*plan.Planner, error) {
	r, err := m.providerResolver()
	if err != nil {
		return nil, err
	}
	d := &fit.Discoverer{}
	return &plan.Planner{Providers: r, Refresher: refresh, Devices: d.Discover, CacheDir: stage.DefaultCacheDir(os.Getenv)}, nil
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

// flagsFirst moves options given after positional arguments in front of
// them, so `llorch logs pool.chat/r0 -n 20` reads as it is written. An
// argument "--" ends the options, as usual.
func flagsFirst(fs *flag.FlagSet, args []string) []string {
	var flags, positional []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			positional = append(positional, args[i+1:]...)
			i = len(args)
		case len(a) > 1 && a[0] == '-':
			flags = append(flags, a)
			name := strings.TrimLeft(a, "-")
			if strings.Contains(name, "=") {
				continue
			}
			f := fs.Lookup(name)
			if f == nil {
				continue // Parse reports it
			}
			if b, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
				continue
			}
			if i+1 < len(args) {
				i++
				flags = append(flags, args[i])
			}
		default:
			positional = append(positional, a)
		}
	}
	if len(positional) == 0 {
		return flags
	}
	return append(append(flags, "--"), positional...)
}

// lockModeFlag is -lockfile=MODE: what plan and apply do with engine
// binaries and models the lock file does not pin as planned.
type lockModeFlag struct{ mode providers.LockMode }

func (f *lockModeFlag) String() string { return string(f.mode) }

func (f *lockModeFlag) Set(s string) error {
	switch m := providers.LockMode(s); m {
	case providers.LockReadonly, providers.LockUpgrade:
		f.mode = m
		return nil
	}
	return fmt.Errorf("%q is not a lock file mode; use readonly (never change the lock file, run only what it pins) or upgrade (pin engines and models that changed)", s)
}
