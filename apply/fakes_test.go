package apply_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/spf13/afero"

	"github.com/llorch/llorch/apply"
	"github.com/llorch/llorch/config"
	"github.com/llorch/llorch/internal/clock"
	"github.com/llorch/llorch/internal/supervisor"
	"github.com/llorch/llorch/plan"
	"github.com/llorch/llorch/plan/plantest"
	"github.com/llorch/llorch/providers"
	"github.com/llorch/llorch/providers/providertest"
	"github.com/llorch/llorch/state"
	"github.com/llorch/llorch/state/handoff"
	"github.com/llorch/llorch/state/local"
)

// firstPID is above Linux's PID_MAX_LIMIT (4194304): no real process can
// have a pid the fake hands out, so apply's leftover-engine kill, which
// signals recorded pids for real, never reaches one.
const firstPID = 5_000_000

// Fixed directories of every test run.
const (
	stateDir   = "/srv/.llorch"
	handoffDir = "/srv/handoff"
)

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// event is one call a supervisor (or the launcher) received.
type event struct {
	Op     string // launch, drain, stop, update
	Addr   string // replica address of the supervisor
	RunDir string
	Grace  time.Duration // stop: the grace; drain: the deadline (0: the spec's)
}

func (e event) String() string { return e.Op + " " + e.Addr + " " + e.RunDir }

// fakeSup is one supervisor the fake launched.
type fakeSup struct {
	spec   supervisor.Spec
	status supervisor.Status
	alive  bool // answers on its socket
}

// fakeLauncher is an in-memory supervisor.Launcher. Launched supervisors
// answer Attach until they are stopped or killed; they write status.json
// and take the handoff file on the Fs as the real supervisor does, and give
// the handoff file back (only when it is theirs) on drain and stop.
type fakeLauncher struct {
	fs afero.Fs

	// LaunchFunc runs inside Launch before the replica becomes ready; an
	// error fails the launch. It may block.
	LaunchFunc func(ctx context.Context, spec supervisor.Spec) error
	// AttachFunc runs before the default Attach; an error is returned as
	// Attach's. It may block.
	AttachFunc func(ctx context.Context, runDir string) error
	// Errors returned by a supervisor's Drain, Stop and Update, by run dir.
	DrainErr, StopErr, UpdateErr map[string]error
	// CutOff is, by run dir, how many requests a drain's deadline cuts off.
	CutOff map[string]int

	mu          sync.Mutex
	pids        int
	sups        map[string]*fakeSup
	launches    []supervisor.Spec
	events      []event
	pushes      map[string][]supervisor.Settings
	inFlight    int
	maxInFlight int
	attaches    int
}

func newFakeLauncher(fs afero.Fs) *fakeLauncher {
	return &fakeLauncher{
		fs: fs, sups: map[string]*fakeSup{}, pushes: map[string][]supervisor.Settings{},
		DrainErr: map[string]error{}, StopErr: map[string]error{}, UpdateErr: map[string]error{},
		CutOff: map[string]int{},
	}
}

var _ supervisor.Launcher = (*fakeLauncher)(nil)

// connRefused is what dialling a dead supervisor's socket gives.
func connRefused(runDir string) error {
	return &net.OpError{
		Op: "dial", Net: "unix",
		Addr: &net.UnixAddr{Name: filepath.Join(runDir, "supervisor.sock"), Net: "unix"},
		Err:  os.NewSyscallError("connect", syscall.ECONNREFUSED),
	}
}

func (l *fakeLauncher) Launch(ctx context.Context, spec supervisor.Spec) (supervisor.Client, supervisor.Status, error) {
	// As ExecLauncher, the spec goes to the run directory first.
	if b, err := json.Marshal(spec); err != nil {
		panic(err)
	} else if err := l.fs.MkdirAll(spec.RunDir, 0o700); err != nil {
		panic(err)
	} else if err := afero.WriteFile(l.fs, filepath.Join(spec.RunDir, supervisor.SpecFile), b, 0o600); err != nil {
		panic(err)
	}
	l.mu.Lock()
	l.launches = append(l.launches, spec)
	l.events = append(l.events, event{Op: "launch", Addr: spec.Addr, RunDir: spec.RunDir})
	l.inFlight++
	l.maxInFlight = max(l.maxInFlight, l.inFlight)
	fn := l.LaunchFunc
	l.mu.Unlock()

	var err error
	if fn != nil {
		err = fn(ctx, spec)
	}

	l.mu.Lock()
	defer l.mu.Unlock()
	l.inFlight--
	if err != nil {
		return nil, supervisor.Status{Addr: spec.Addr, State: supervisor.Failed, LastError: err.Error()}, err
	}
	l.pids += 2
	pid := firstPID + l.pids
	st := supervisor.Status{
		Addr: spec.Addr, State: supervisor.Ready, PID: pid, SupervisorPID: pid + 1, Port: spec.Port,
		StartedAt: t0, ReadyAt: t0.Add(time.Second), UpdatedAt: t0.Add(time.Second),
	}
	l.sups[spec.RunDir] = &fakeSup{spec: spec, status: st, alive: true}
	l.writeStatus(spec.RunDir, st)
	if spec.HandoffPath != "" {
		// A new generation takes the handoff path when it is ready.
		f := spec.Handoff
		f.PID, f.ReadyAt = pid, st.ReadyAt
		f.URL = fmt.Sprintf("http://%s:%d", spec.Host, spec.Port)
		if err := handoff.Write(l.fs, spec.HandoffPath, f); err != nil {
			panic(err)
		}
	}
	return &fakeClient{l: l, runDir: spec.RunDir}, st, nil
}

// restartEngine stands for the supervisor restarting its engine after a
// crash: the engine gets a new pid that the state does not know.
func (l *fakeLauncher) restartEngine(runDir string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.sups[runDir]
	l.pids += 2
	s.status.PID = firstPID + l.pids
	s.status.Restarts++
	l.writeStatus(runDir, s.status)
	return s.status.PID
}

func (l *fakeLauncher) writeStatus(runDir string, st supervisor.Status) {
	b, err := json.Marshal(st)
	if err != nil {
		panic(err)
	}
	if err := l.fs.MkdirAll(runDir, 0o755); err != nil {
		panic(err)
	}
	if err := afero.WriteFile(l.fs, filepath.Join(runDir, supervisor.StatusFile), b, 0o644); err != nil {
		panic(err)
	}
}

func (l *fakeLauncher) Attach(ctx context.Context, runDir string) (supervisor.Client, error) {
	l.mu.Lock()
	l.attaches++
	fn := l.AttachFunc
	l.mu.Unlock()
	if fn != nil {
		if err := fn(ctx, runDir); err != nil {
			return nil, err
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if s := l.sups[runDir]; s == nil || !s.alive {
		return nil, fmt.Errorf("connecting to the supervisor in %s: %w", runDir, connRefused(runDir))
	}
	return &fakeClient{l: l, runDir: runDir}, nil
}

// releaseHandoff removes s's handoff file when it still names s's engine.
func (l *fakeLauncher) releaseHandoff(s *fakeSup, pid int) {
	if s.spec.HandoffPath == "" {
		return
	}
	f, err := handoff.Read(l.fs, s.spec.HandoffPath)
	if err != nil || f.PID != pid {
		return
	}
	if err := handoff.Remove(l.fs, s.spec.HandoffPath); err != nil {
		panic(err)
	}
}

// kill makes the supervisor in runDir vanish as after SIGKILL: it stops
// answering; its status.json keeps its last word.
func (l *fakeLauncher) kill(runDir string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sups[runDir].alive = false
}

// fail opens the circuit breaker of the supervisor in runDir: it keeps
// answering, with status failed and no engine.
func (l *fakeLauncher) fail(runDir, lastError string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.sups[runDir]
	l.releaseHandoff(s, s.status.PID)
	s.status.State, s.status.PID, s.status.LastError = supervisor.Failed, 0, lastError
	s.status.Restarts = 5
	l.writeStatus(runDir, s.status)
}

// setStatus replaces the status the supervisor in runDir reports.
func (l *fakeLauncher) setStatus(runDir string, fn func(*supervisor.Status)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fn(&l.sups[runDir].status)
	l.writeStatus(runDir, l.sups[runDir].status)
}

func (l *fakeLauncher) Events() []event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.events)
}

// eventsFor returns the ops the supervisor of runDir received, in order.
func (l *fakeLauncher) eventsFor(runDir string) []string {
	var out []string
	for _, e := range l.Events() {
		if e.RunDir == runDir {
			out = append(out, e.Op)
		}
	}
	return out
}

func (l *fakeLauncher) Launches() []supervisor.Spec {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.launches)
}

func (l *fakeLauncher) launchedAddrs() []string {
	var out []string
	for _, s := range l.Launches() {
		out = append(out, s.Addr)
	}
	slices.Sort(out)
	return out
}

// Pushes returns the settings each supervisor received, by run dir.
func (l *fakeLauncher) Pushes() map[string][]supervisor.Settings {
	l.mu.Lock()
	defer l.mu.Unlock()
	return maps.Clone(l.pushes)
}

func (l *fakeLauncher) InFlight() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.inFlight
}

func (l *fakeLauncher) MaxInFlight() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.maxInFlight
}

func (l *fakeLauncher) alive(runDir string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.sups[runDir]
	return s != nil && s.alive
}

// fakeClient talks to one fake supervisor.
type fakeClient struct {
	l      *fakeLauncher
	runDir string
}

func (c *fakeClient) sup() (*fakeSup, error) {
	s := c.l.sups[c.runDir]
	if s == nil || !s.alive {
		return nil, connRefused(c.runDir)
	}
	return s, nil
}

func (c *fakeClient) Status(context.Context) (supervisor.Status, error) {
	c.l.mu.Lock()
	defer c.l.mu.Unlock()
	s, err := c.sup()
	if err != nil {
		return supervisor.Status{}, err
	}
	return s.status, nil
}

func (c *fakeClient) Drain(ctx context.Context) error {
	_, err := c.DrainWithin(ctx, 0)
	return err
}

func (c *fakeClient) DrainWithin(_ context.Context, deadline time.Duration) (supervisor.Status, error) {
	c.l.mu.Lock()
	defer c.l.mu.Unlock()
	s, err := c.sup()
	if err != nil {
		return supervisor.Status{}, err
	}
	c.l.events = append(c.l.events, event{Op: "drain", Addr: s.spec.Addr, RunDir: c.runDir, Grace: deadline})
	if err := c.l.DrainErr[c.runDir]; err != nil {
		return supervisor.Status{}, err
	}
	c.l.releaseHandoff(s, s.status.PID)
	s.status.State, s.status.PID = supervisor.Stopped, 0
	if n := c.l.CutOff[c.runDir]; n != 0 {
		s.status.InFlight, s.status.DrainCutOff = n, true
	}
	c.l.writeStatus(c.runDir, s.status)
	return s.status, nil
}

func (c *fakeClient) Stop(_ context.Context, grace time.Duration) error {
	c.l.mu.Lock()
	defer c.l.mu.Unlock()
	s, err := c.sup()
	if err != nil {
		return err
	}
	c.l.events = append(c.l.events, event{Op: "stop", Addr: s.spec.Addr, RunDir: c.runDir, Grace: grace})
	if err := c.l.StopErr[c.runDir]; err != nil {
		return err
	}
	c.l.releaseHandoff(s, s.status.PID)
	s.status.State, s.status.PID = supervisor.Stopped, 0
	s.alive = false
	c.l.writeStatus(c.runDir, s.status)
	return nil
}

func (c *fakeClient) Update(_ context.Context, set supervisor.Settings) error {
	c.l.mu.Lock()
	defer c.l.mu.Unlock()
	s, err := c.sup()
	if err != nil {
		return err
	}
	c.l.events = append(c.l.events, event{Op: "update", Addr: s.spec.Addr, RunDir: c.runDir})
	c.l.pushes[c.runDir] = append(c.l.pushes[c.runDir], set)
	if err := c.l.UpdateErr[c.runDir]; err != nil {
		return err
	}
	s.spec.Health, s.spec.Restart, s.spec.Drain = set.Health, set.Restart, set.Drain
	s.spec.Handoff.Labels = set.Labels
	if f, err := handoff.Read(c.l.fs, s.spec.HandoffPath); err == nil && f.PID == s.status.PID {
		f.Labels = set.Labels
		if err := handoff.Write(c.l.fs, s.spec.HandoffPath, f); err != nil {
			return err
		}
	}
	return nil
}

func (c *fakeClient) Close() error { return nil }

// recordingStore is the local file store on a MemMapFs, keeping a copy of
// every state it wrote. FailWith makes every write fail.
type recordingStore struct {
	*local.Store

	mu        sync.Mutex
	writes    []*state.State
	n         int  // writes done since reset
	appends   int  // journal appends done since reset
	countOnly bool // count the writes without keeping copies (benchmarks)
	FailWith  error
	// FailWrites fails only whole-state writes: a run whose fold never
	// happens, as when it is killed after its last step.
	FailWrites error
	// OnWrite is called (outside the lock) with each written state.
	OnWrite func(*state.State)
}

func (s *recordingStore) Write(ctx context.Context, st *state.State) error {
	s.mu.Lock()
	fail := s.FailWith
	if fail == nil {
		fail = s.FailWrites
	}
	s.mu.Unlock()
	if fail != nil {
		return fail
	}
	if err := s.Store.Write(ctx, st); err != nil {
		return err
	}
	if s.countOnly {
		s.mu.Lock()
		s.n++
		s.mu.Unlock()
		return nil
	}
	cp := st.DeepCopy()
	s.mu.Lock()
	s.n++
	s.writes = append(s.writes, cp)
	fn := s.OnWrite
	s.mu.Unlock()
	if fn != nil {
		fn(cp)
	}
	return nil
}

// Append is the journal's save of a step; FailWith fails it too.
func (s *recordingStore) Append(ctx context.Context, lineage string, serial uint64, changes []state.PoolChange) (uint64, error) {
	s.mu.Lock()
	fail := s.FailWith
	s.mu.Unlock()
	if fail != nil {
		return 0, fail
	}
	next, err := s.Store.Append(ctx, lineage, serial, changes)
	if err == nil {
		s.mu.Lock()
		s.appends++
		s.mu.Unlock()
	}
	return next, err
}

// saves is how many writes and appends were made since reset.
func (s *recordingStore) saves() (writes, appends int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n, s.appends
}

func (s *recordingStore) reset() { s.mu.Lock(); s.n, s.appends = 0, 0; s.mu.Unlock() }

func (s *recordingStore) Writes() []*state.State {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.writes)
}

// recordingHook keeps every hook call as a line.
type recordingHook struct {
	discard bool // keep nothing (benchmarks)
	mu      sync.Mutex
	lines   []string
	results map[string]apply.Result // last PostStep result by "ADDR STEP"
}

func (h *recordingHook) add(s string) {
	if h.discard {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.lines = append(h.lines, s)
}

func (h *recordingHook) PreStep(addr string, step apply.Step) {
	h.add("pre " + addr + " " + string(step))
}

func (h *recordingHook) Progress(addr string, ev providers.Event) {
	h.add("progress " + addr + " " + ev.Stage + " " + ev.Message)
}

func (h *recordingHook) PostStep(addr string, step apply.Step, res apply.Result, err error) {
	if h.discard {
		return
	}
	s := "post " + addr + " " + string(step)
	if err != nil {
		s += " error"
	}
	h.add(s)
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.results == nil {
		h.results = map[string]apply.Result{}
	}
	h.results[addr+" "+string(step)] = res
}

func (h *recordingHook) Result(addr string, step apply.Step) apply.Result {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.results[addr+" "+string(step)]
}

func (h *recordingHook) Lines() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.lines)
}

// env is one llorch working directory with fakes for everything that
// would run a process: a provider, the supervisors, and the state store.
type env struct {
	t        testing.TB
	ctx      context.Context
	fs       afero.Fs
	prov     *providertest.Provider
	planner  *plan.Planner
	fake     *fakeLauncher
	launcher supervisor.Launcher // what Run is given: fake unless a test says
	store    *recordingStore
	clock    *clock.Fake
	hook     *recordingHook
	counted  *countingFs          // the store's file system, in benchmarks
	source   apply.ProviderSource // nil: planner
}

func newEnv(t testing.TB) *env {
	fs := afero.NewMemMapFs()
	prov := &providertest.Provider{}
	fake := newFakeLauncher(fs)
	e := &env{
		t:       t,
		ctx:     context.Background(),
		fs:      fs,
		prov:    prov,
		fake:    fake,
		store:   &recordingStore{Store: local.New(fs, stateDir, local.Options{Version: "0.1.0-test"})},
		clock:   clock.NewFake(t0),
		hook:    &recordingHook{},
		planner: &plan.Planner{Providers: providertest.NewResolver(prov, "llamacpp")},
	}
	e.launcher = fake
	e.planner.Refresher = &apply.Refresher{Launcher: fake, Fs: fs}
	return e
}

// stored reads the state as the store has it.
func (e *env) stored() *state.State {
	e.t.Helper()
	st, err := e.store.Read(e.ctx)
	if err != nil {
		e.t.Fatalf("reading state: %v", err)
	}
	return st
}

// plan plans cfg against the stored state, refreshing through the fake
// supervisors.
func (e *env) plan(cfg *config.Config, opts plan.Options) *plan.Plan {
	e.t.Helper()
	opts.Refresh = true
	p, diags := e.planner.Plan(e.ctx, cfg, e.stored(), opts)
	if diags.HasErrors() {
		e.t.Fatalf("planning: %s", diags.Error())
	}
	return p
}

func (e *env) deps() apply.Deps {
	var src apply.ProviderSource = e.planner
	if e.source != nil {
		src = e.source
	}
	return apply.Deps{
		Providers: src, Launcher: e.launcher, Store: e.store, Fs: e.fs, Clock: e.clock,
		Hooks: []apply.Hook{e.hook},
	}
}

func (e *env) options(cfg *config.Config, parallelism int) apply.Options {
	return apply.Options{
		Config:        cfg,
		Dirs:          apply.Dirs{State: stateDir, Handoff: handoffDir},
		Parallelism:   parallelism,
		LlorchVersion: "0.1.0-test",
	}
}

// run applies p with parallelism.
func (e *env) run(ctx context.Context, cfg *config.Config, p *plan.Plan, parallelism int) (*state.State, error) {
	return apply.Run(ctx, p, e.deps(), e.options(cfg, parallelism))
}

// converge plans and applies cfg and fails the test on any error.
func (e *env) converge(cfg *config.Config) *state.State {
	e.t.Helper()
	st, err := e.run(e.ctx, cfg, e.plan(cfg, plan.Options{}), 0)
	if err != nil {
		e.t.Fatalf("applying: %v", err)
	}
	return st
}

// pool is a configured pool as config.Load gives it, changed by mods.
func pool(addr string, mods ...func(*config.Pool)) *config.Pool {
	p := plantest.Pool(addr)
	for _, m := range mods {
		m(p)
	}
	return p
}

func replicas(n int) func(*config.Pool) { return func(p *config.Pool) { p.Replicas = n } }
func port(n int) func(*config.Pool)     { return func(p *config.Pool) { p.Port = n } }
func model(ref string) func(*config.Pool) {
	return func(p *config.Pool) { p.Model.Ref = ref }
}
func labels(kv ...string) func(*config.Pool) {
	return func(p *config.Pool) {
		p.Labels = map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			p.Labels[kv[i]] = kv[i+1]
		}
	}
}
func drainFirst(p *config.Pool) { p.Update.Strategy = config.DrainFirst }

func configOf(pools ...*config.Pool) *config.Config { return plantest.Config("hash", pools...) }

// runDirOf is where a replica generation's supervisor lives.
func runDirOf(poolID, id string, gen int) string {
	name := poolID + "-" + id
	if gen > 0 {
		name += fmt.Sprintf(".%d", gen)
	}
	return filepath.Join(stateDir, "run", name)
}

func handoffOf(poolID, id string) string {
	return filepath.Join(handoffDir, handoff.FileName(poolID, id))
}

// replicaOf returns the recorded replica or fails.
func replicaOf(t testing.TB, st *state.State, poolAddr, id string) *state.Replica {
	t.Helper()
	sp := st.Pools[poolAddr]
	if sp == nil {
		t.Fatalf("%s is not in the state; pools: %v", poolAddr, st.Addrs())
	}
	r := sp.Replica(id)
	if r == nil {
		t.Fatalf("%s has no replica %s", poolAddr, id)
	}
	return r
}

func replicaIDs(sp *state.Pool) []string {
	var out []string
	for _, r := range sp.Replicas {
		out = append(out, r.ID)
	}
	return out
}

func changeActions(p *plan.Plan) []string {
	var out []string
	for _, c := range p.Changes {
		out = append(out, fmt.Sprintf("%c %s", c.Action, c.Addr))
	}
	return out
}

// brokenSource is a ProviderSource whose providers do not start.
type brokenSource struct{ diags hcl.Diagnostics }

func (b brokenSource) Provider(context.Context, *config.Config, string) (providers.Provider, *providers.Schema, hcl.Diagnostics) {
	return nil, nil, b.diags
}

func (brokenSource) Forget(string) {}

// errorsOf lists the errors inside a multierror (or err itself).
func errorsOf(err error) []error {
	var me interface{ WrappedErrors() []error }
	if errors.As(err, &me) {
		return me.WrappedErrors()
	}
	if err == nil {
		return nil
	}
	return []error{err}
}

func containsAll(t testing.TB, what, s string, parts ...string) {
	t.Helper()
	for _, p := range parts {
		if !strings.Contains(s, p) {
			t.Errorf("%s %q does not contain %q", what, s, p)
		}
	}
}
