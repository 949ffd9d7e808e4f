package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"path/filepath"
	"strings"
	"sync"

	"github.com/hashicorp/go-multierror"
	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"

	"github.com/llorch/llorch/apply"
	"github.com/llorch/llorch/config"
	"github.com/llorch/llorch/internal/version"
	"github.com/llorch/llorch/internal/views"
	"github.com/llorch/llorch/plan"
	"github.com/llorch/llorch/plan/planfile"
	"github.com/llorch/llorch/plan/render"
	"github.com/llorch/llorch/providers/discovery"
	"github.com/llorch/llorch/state"
)

// planFlags are the options plan, apply and destroy share.
type planFlags struct {
	lockfile lockModeFlag
	vars     varFlags
	lock     lockFlags
	view     viewFlags
	targets  multiFlag
	replace  multiFlag
	destroy  bool
	refresh  bool
	out      string
	detailed bool
}

func (f *planFlags) add(fs *flag.FlagSet, forPlan bool) {
	f.vars.add(fs)
	f.lock.add(fs)
	f.view.add(fs, true)
	fs.Var(&f.lockfile, "lockfile", "readonly: refuse engines and models the lock file does not pin and never write it (CI); upgrade: pin engines and models that changed")
	fs.Var(&f.targets, "target", "limit the operation to this pool or replica address (repeatable)")
	if fs.Name() != "destroy" { // nothing is replaced by a destroy
		fs.Var(&f.replace, "replace", "force replacement of this pool or replica (repeatable)")
	}
	fs.BoolVar(&f.refresh, "refresh", true, "ask supervisors for live status first")
	if forPlan {
		fs.BoolVar(&f.destroy, "destroy", false, "plan to destroy every pool")
		fs.StringVar(&f.out, "out", "", "save the plan to FILE for a later \"llorch apply FILE\"")
		fs.BoolVar(&f.detailed, "detailed-exitcode", false, "exit 0 for no changes, 1 for errors, 2 for changes")
	}
}

func (f *planFlags) options() plan.Options {
	return plan.Options{Targets: f.targets, Replace: f.replace, Destroy: f.destroy, Refresh: f.refresh}
}

// session is what plan and apply build before planning: configuration,
// store (locked), prior state and planner.
type session struct {
	cfg     *config.Config
	dirs    apply.Dirs
	store   state.Store
	st      *state.State
	planner *plan.Planner
	unlock  func()
}

// prefetcher is a store that can read the state ahead of the locked Read
// (local.Store, etcd.Store).
type prefetcher interface {
	Prefetch(ctx context.Context)
}

func (m *meta) openSession(vars []config.VarArg, lf lockFlags, op string) (*session, bool) {
	m.prestartProviders()
	// The state is read and decoded on the other core while the
	// configuration is parsed and the pools are evaluated. Its location is
	// known for sure once the llorch {} block is decoded, which needs
	// every file parsed; most configurations leave it where the defaults
	// put it, so that file is read from the start, and replaced by the
	// right one if the block moves the state. Read, under the lock, uses
	// that work only if the file has not changed since.
	var (
		prefetch sync.WaitGroup
		defaults = config.Settings{StateDir: config.DefaultStateDir}
		guess, _ = m.store(defaults, nil)
		store    state.Store
		storeErr error
	)
	startPrefetch := func(s state.Store) {
		if p, ok := s.(prefetcher); ok {
			prefetch.Go(func() { p.Prefetch(m.ctx) })
		}
	}
	startPrefetch(guess)
	cfg, ok := m.loadConfig(vars, func(set config.Settings) {
		if set.Backend == nil && m.dirsOf(set).State == m.dirsOf(defaults).State {
			store = guess
			return
		}
		// Another directory, or etcd: for etcd, Prefetch also connects
		// and grants the lock's lease while the pools are evaluated.
		if store, storeErr = m.store(set, set.Backend); storeErr == nil {
			startPrefetch(store)
		}
	})
	prefetch.Wait()
	if !ok {
		return nil, false
	}
	s := &session{cfg: cfg, dirs: m.dirs(cfg), store: store}
	if !m.checkBackend(cfg.Settings) {
		return nil, false
	}
	if storeErr != nil {
		m.fail("Failed to open the state backend", storeErr)
		return nil, false
	}
	if s.store == nil {
		if s.store, ok = m.openStore(cfg.Settings); !ok {
			return nil, false
		}
	}
	if s.unlock, ok = m.lock(s.store, lf, op); !ok {
		return nil, false
	}
	if s.st, ok = m.readState(s.store); !ok {
		s.unlock()
		return nil, false
	}
	if !m.checkPaths(s.st, s.cfg.Settings) {
		s.unlock()
		return nil, false
	}
	l, err := m.launcher()
	if err != nil {
		s.unlock()
		m.fail("Cannot reach supervisors", err)
		return nil, false
	}
	pl, err := m.planner(&apply.Refresher{Launcher: l, Fs: m.fs, RunRoot: filepath.Join(s.dirs.State, "run")})
	if err != nil {
		s.unlock()
		m.fail("Cannot find providers", err)
		return nil, false
	}
	pl.LlorchVersion = version.Version
	s.planner = pl
	return s, true
}

// makePlan plans and prints diagnostics. Warnings are left to the plan's
// own rendering, which shows them after the changes.
func (m *meta) makePlan(s *session, opts plan.Options) (*plan.Plan, bool) {
	p, diags := s.planner.Plan(m.ctx, s.cfg, s.st, opts)
	// Handoff files of engines the refresh saw running need no second look.
	var obs plan.Observations
	if p != nil {
		obs = p.Observations
	}
	m.removeStaleHandoffs(s.dirs, apply.LiveHandoffs(s.st, obs))
	if diags.HasErrors() {
		if rep := fitReport(diags); rep != nil && !m.jsonErrors {
			// The pools do not fit: the table shows by how much, where.
			var b strings.Builder
			render.FitTable(&b, rep)
			fmt.Fprintf(m.stdout, "\n%s\n", b.String())
		}
		m.diagnostics(diags)
		return nil, false
	}
	if len(opts.Targets) > 0 && p != nil {
		m.diagnostics(targetingWarning("creating"))
	}
	if p == nil {
		m.diagnostics(diags)
		return nil, false
	}
	return p, true
}

func (m *meta) renderPlan(p *plan.Plan, asJSON bool) bool {
	var err error
	if asJSON {
		err = render.JSON(m.stdout, p)
	} else {
		err = render.Human(m.stdout, p, render.Options{Color: m.color})
	}
	if err != nil {
		m.fail("Cannot show the plan", err)
		return false
	}
	return true
}

func variableValues(cfg *config.Config) map[string]cty.Value {
	out := make(map[string]cty.Value, len(cfg.Variables))
	for name, v := range cfg.Variables {
		out[name] = v.Value
	}
	return out
}

func cmdPlan(m *meta, args []string) int {
	fs := flagSet("plan")
	var f planFlags
	f.add(fs, true)
	if !m.parseFlags(fs, args) {
		return 1
	}
	m.applyView(f.view)
	m.jsonErrors = f.view.json
	if fs.NArg() > 0 {
		m.errorf("Unexpected argument", "llorch plan takes no positional arguments (got %q). To plan in another directory use -chdir=DIR before \"plan\".", fs.Arg(0))
		return 1
	}
	s, ok := m.openSession(f.vars.args, f.lock, "plan")
	if !ok {
		return 1
	}
	m.usePins(s, f.lockfile)
	defer s.unlock()
	// Showing and saving the plan need no provider.
	s.planner.ProvidersDone = m.releaseProviders
	p, ok := m.makePlan(s, f.options())
	if !ok {
		return 1
	}
	if !m.renderPlan(p, f.view.json) {
		return 1
	}
	if f.out != "" {
		if err := planfile.Write(m.fs, f.out, p, variableValues(s.cfg)); err != nil {
			m.fail("Failed to write the plan file", err)
			return 1
		}
		if !f.view.json {
			fmt.Fprintf(m.stdout, "\nSaved the plan to: %s\n\nTo perform exactly these actions, run the following command to apply:\n    llorch apply %q\n", f.out, f.out)
		}
	}
	if f.detailed && !p.Empty() {
		return 2
	}
	return 0
}

func cmdApply(m *meta, args []string) int { return applyOrDestroy(m, "apply", args) }

func cmdDestroy(m *meta, args []string) int { return applyOrDestroy(m, "destroy", args) }

func applyOrDestroy(m *meta, name string, args []string) int {
	fs := flagSet(name)
	var f planFlags
	f.add(fs, false)
	autoApprove := fs.Bool("auto-approve", false, "skip the interactive approval")
	parallelism := fs.Int("parallelism", 10, "how many engines to prepare, start or stop at once")
	if !m.parseFlags(fs, args) {
		return 1
	}
	m.applyView(f.view)
	f.destroy = name == "destroy"
	if *parallelism < 1 {
		m.errorf("Invalid -parallelism option", "-parallelism must be at least 1 (got %d): it is how many engines llorch prepares, starts or stops at once.", *parallelism)
		return 1
	}
	if fs.NArg() > 1 || (fs.NArg() == 1 && name == "destroy") {
		m.errorf("Unexpected argument", "llorch %s takes at most a saved plan file.", name)
		return 1
	}

	var stream *views.Stream
	if f.view.json {
		stream = views.NewStream(m.stdout, nil)
		stream.Emit("info", "version", "llorch "+version.Version, map[string]any{"llorch": version.Version, "ui": views.JSONUIVersion})
	}

	var (
		s     *session
		p     *plan.Plan
		ok    bool
		saved = fs.NArg() == 1
	)
	if saved {
		if s, p, ok = m.loadSavedPlan(fs.Arg(0), f, "apply"); !ok {
			return 1
		}
	} else {
		if s, ok = m.openSession(f.vars.args, f.lock, name); !ok {
			return 1
		}
		m.usePins(s, f.lockfile)
		if p, ok = m.makePlan(s, f.options()); !ok {
			s.unlock()
			return 1
		}
	}
	defer s.unlock()

	if stream != nil {
		emitPlan(stream, p)
	} else if !saved && !m.renderPlan(p, false) {
		return 1
	}
	if p.Empty() {
		if stream == nil && saved {
			fmt.Fprintln(m.stdout, "No changes. Your pools match the configuration.")
		}
		if name == "apply" && !m.recordPins(s.st, f.lockfile, stream) {
			return 1
		}
		return 0
	}
	if !saved && !*autoApprove {
		question := "Do you want to perform these actions?\n  llorch will perform the actions described above.\n  Only 'yes' will be accepted to approve."
		if name == "destroy" {
			question = "Do you really want to destroy all pools?\n  llorch will drain and stop every pool described above and empty the state.\n  There is no undo. Only 'yes' will be accepted to confirm."
		}
		if !m.confirm(question, name, "-auto-approve") {
			return 1
		}
	}
	if stream == nil {
		fmt.Fprintln(m.stdout)
	}

	var hook apply.Hook
	if stream != nil {
		hook = views.NewJSONHook(stream, 0)
	} else {
		hook = views.NewHumanHook(m.stdout, nil, 0)
	}
	out, runErr, ok := m.runOnSession(s, hook, func(ctx context.Context, deps apply.Deps) (*state.State, error) {
		return apply.Run(ctx, p, deps, apply.Options{Config: s.cfg, Dirs: s.dirs, Parallelism: *parallelism, LlorchVersion: version.Version,
			Pins: s.planner.Pins, LockMode: f.lockfile.mode})
	})
	if !ok {
		return 1
	}
	code := m.reportApply(name, p, runErr, stream)
	if name == "apply" && out != nil && !m.recordPins(out, f.lockfile, stream) {
		code = 1
	}
	return code
}

// runOnSession runs an apply-like operation on the session: supervisors
// through the launcher, the state store fenced so that a lost etcd lock
// stops it (and what it did lands in errored.state.json). ok is false, the
// error printed, when supervisors cannot be started at all.
func (m *meta) runOnSession(s *session, hook apply.Hook, run func(ctx context.Context, deps apply.Deps) (*state.State, error)) (out *state.State, runErr error, ok bool) {
	l, err := m.launcher()
	if err != nil {
		m.fail("Cannot start supervisors", err)
		return nil, nil, false
	}
	runCtx, stopRun := lostContext(m.ctx, s.store)
	defer stopRun()
	out, err = run(runCtx, apply.Deps{
		Providers: s.planner, Launcher: l, Store: s.store, Fs: m.fs, Hooks: []apply.Hook{hook}, TaskRoom: apply.HostTaskRoom,
	})
	return out, saveIfLost(m.ctx, s.store, out, err), true
}

// usePins gives the session's planner the lock file's engine and model
// pins, and what to do with what they do not pin.
func (m *meta) usePins(s *session, f lockModeFlag) {
	r, err := m.providerResolver()
	if err != nil {
		return // the planner could not have been made either
	}
	s.planner.Pins, s.planner.LockMode = r.Pins(), f.mode
}

// recordPins pins in the lock file the engine binaries and models st says
// run, as the -lockfile mode allows, and says what it pinned.
func (m *meta) recordPins(st *state.State, f lockModeFlag, stream *views.Stream) bool {
	pinned, err := discovery.UpdatePins(m.fs, filepath.Join(m.dir, lockFileName), apply.PinsOf(st), f.mode)
	if err != nil {
		m.fail("Failed to pin engines and models in "+lockFileName, err)
		return false
	}
	if len(pinned) == 0 {
		return true
	}
	msg := "Pinned in " + lockFileName + ": " + strings.Join(pinned, ", ") + ". Commit the file so that every run uses these bytes."
	if stream != nil {
		stream.Emit("info", "pinned", msg, map[string]any{"pinned": pinned})
		return true
	}
	fmt.Fprintln(m.stdout, "\n"+msg)
	return true
}

// loadSavedPlan reads a saved plan and the configuration and state it was
// made for, refusing it when either changed since.
func (m *meta) loadSavedPlan(path string, f planFlags, op string) (*session, *plan.Plan, bool) {
	pf, ok := m.readPlanFile(path)
	if !ok {
		return nil, nil, false
	}
	if len(f.vars.args) > 0 || len(f.targets) > 0 || len(f.replace) > 0 {
		m.errorf("Can't set options with a saved plan",
			"A saved plan already holds its variables, -target and -replace options. Apply it as it is, or make a new plan with those options.")
		return nil, nil, false
	}
	vars, err := pf.VarArgs()
	if err != nil {
		m.fail("Failed to load the saved plan", err)
		return nil, nil, false
	}
	s, ok := m.openSession(vars, f.lock, op)
	if !ok {
		return nil, nil, false
	}
	m.usePins(s, f.lockfile)
	m.removeStaleHandoffs(s.dirs, nil) // the saved plan's refresh is not now
	if pf.Serial == 0 && s.st.Serial == 0 {
		// No state existed when the plan was made and none exists yet:
		// Read made up a lineage for this run, as it did for the plan's.
		// The state this apply creates takes the plan's.
		s.st.Lineage = pf.Lineage
	}
	if err := pf.CheckCurrent(s.st, s.cfg.Hash); err != nil {
		var se *planfile.StaleError
		if errors.As(err, &se) {
			m.errorf(se.Summary, "%s", se.Detail)
		} else {
			m.fail("Saved plan is stale", err)
		}
		s.unlock()
		return nil, nil, false
	}
	p, diags := s.planner.Replay(m.ctx, s.cfg, s.st, pf.Saved())
	if m.diagnostics(errorsOnly(diags)) {
		s.unlock()
		return nil, nil, false
	}
	if err := pf.CheckReplay(p); err != nil {
		m.fail("Saved plan is stale", err)
		s.unlock()
		return nil, nil, false
	}
	return s, p, true
}

func errorsOnly(diags hcl.Diagnostics) hcl.Diagnostics {
	var out hcl.Diagnostics
	for _, d := range diags {
		if d.Severity == hcl.DiagError {
			out = append(out, d)
		}
	}
	return out
}

// emitPlan writes a plan as -json events: drift, planned changes, summary.
func emitPlan(s *views.Stream, p *plan.Plan) {
	doc := render.NewDocument(p)
	for _, d := range doc.ResourceDrift {
		s.Emit("info", "resource_drift", d.Address+": drift detected", map[string]any{"change": d})
	}
	for _, c := range doc.ResourceChanges {
		s.Emit("info", "planned_change", c.Address+": Plan to "+strings.Join(c.Change.Actions, " and "), map[string]any{"change": c})
	}
	for _, u := range doc.UnknownSupervisors {
		s.Emit("info", "unknown_supervisor", u.RunDir+": running but not in the state; apply stops it", map[string]any{"supervisor": u})
	}
	sum := p.Summary()
	s.Emit("info", "change_summary", summaryLine("Plan", sum), map[string]any{"changes": map[string]any{
		"add": sum.Add, "change": sum.Change, "remove": sum.Destroy, "restart": sum.Restart, "operation": "plan",
	}})
}

func summaryLine(prefix string, sum plan.Summary) string {
	return prefix + ": " + sum.String() + "."
}

// reportApply prints the outcome: every failure, then the summary line.
func (m *meta) reportApply(name string, p *plan.Plan, runErr error, stream *views.Stream) int {
	var failures []error
	if runErr != nil {
		var me *multierror.Error
		if errors.As(runErr, &me) {
			failures = me.Errors
		} else {
			failures = []error{runErr}
		}
	}
	sum := p.Summary()
	done := "Apply complete!"
	if name == "destroy" {
		done = "Destroy complete!"
	}
	msg := fmt.Sprintf("%s Pools: %d added, %d changed, %d destroyed", done, sum.Add, sum.Change, sum.Destroy)
	if sum.Restart > 0 {
		msg += fmt.Sprintf(", %d restarted", sum.Restart)
	}
	if sum.Unknown > 0 {
		msg += fmt.Sprintf(", %d supervisor(s) the state did not know stopped", sum.Unknown)
	}
	msg += "."
	if stream != nil {
		for _, err := range failures {
			stream.Emit("error", "diagnostic", "Error: "+err.Error(), map[string]any{"diagnostic": map[string]any{
				"severity": "error", "summary": "Apply failed", "detail": err.Error(),
			}})
		}
		if len(failures) == 0 {
			stream.Emit("info", "change_summary", msg, map[string]any{"changes": map[string]any{
				"add": sum.Add, "change": sum.Change, "remove": sum.Destroy, "restart": sum.Restart, "operation": name,
			}})
			return 0
		}
		return 1
	}
	if len(failures) == 0 {
		fmt.Fprintf(m.stdout, "\n%s\n", msg)
		return 0
	}
	var diags hcl.Diagnostics
	for _, err := range failures {
		summary := capitalizeFirst(name) + " failed"
		if errors.Is(err, apply.ErrInterrupted) {
			summary = capitalizeFirst(name) + " interrupted"
		}
		diag := &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary, Detail: err.Error()}
		var ee *apply.EnsureError
		if errors.As(err, &ee) {
			diag.Subject = ee.Range.Ptr()
		}
		diags = append(diags, diag)
	}
	fmt.Fprintln(m.stdout)
	m.diagnostics(diags)
	var unsaved *apply.StateSaveError
	if errors.As(runErr, &unsaved) {
		fmt.Fprintf(m.stderr, "%d of the planned changes failed, and the state could not be saved, so it may not record all that was done; \"llorch plan\" compares it with the supervisors that run.\n", len(failures))
		return 1
	}
	fmt.Fprintf(m.stderr, "%d of the planned changes failed; the state records what was done and why the rest failed (llorch status, llorch state show).\n", len(failures))
	return 1
}

func capitalizeFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
