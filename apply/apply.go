package apply

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-multierror"
	"github.com/hashicorp/hcl/v2"
	"github.com/spf13/afero"

	"github.com/llorch/llorch/config"
	"github.com/llorch/llorch/internal/clock"
	"github.com/llorch/llorch/internal/supervisor"
	"github.com/llorch/llorch/plan"
	"github.com/llorch/llorch/providers"
	"github.com/llorch/llorch/state"
	"github.com/llorch/llorch/state/handoff"
)

// ProviderSource hands out configured providers; *plan.Planner is one.
type ProviderSource interface {
	Provider(ctx context.Context, cfg *config.Config, name string) (providers.Provider, *providers.Schema, hcl.Diagnostics)
	// Forget drops a provider whose process died, so the next Provider
	// call starts and configures a fresh one.
	Forget(name string)
}

// Deps are apply's seams; tests pass fakes.
type Deps struct {
	Providers ProviderSource
	Launcher  supervisor.Launcher
	Store     state.Store
	Fs        afero.Fs // handoff files and run directories
	Clock     clock.Clock
	Hooks     []Hook
}

// Dirs are absolute paths derived from the llorch {} block.
type Dirs struct {
	State   string // <state_dir>: run/ lives here
	Handoff string // <handoff_dir>
}

// Options tune a run.
type Options struct {
	Config        *config.Config
	Dirs          Dirs
	Parallelism   int // -parallelism, default 10
	LlorchVersion string
}

// Error is one failed change; Run returns them collected in a
// *multierror.Error so every failure is listed at the end.
type Error struct {
	Addr string
	Err  error
}

func (e *Error) Error() string {
	msg := e.Err.Error()
	if strings.HasPrefix(msg, e.Addr+" ") || strings.HasPrefix(msg, e.Addr+":") {
		return msg // the cause already names the address
	}
	return e.Addr + ": " + msg
}
func (e *Error) Unwrap() error { return e.Err }

// ErrInterrupted is returned (wrapped) when ctx was cancelled and some
// changes were therefore not started.
var ErrInterrupted = errors.New("interrupted: changes not yet started were skipped")

// Run executes p. Deletions run first (so a renamed pool can take over its
// predecessor's port), then everything else, up to Parallelism steps at a
// time. State is saved after every replica, not at the end. A failing
// change does not stop the others: each failure is recorded in state
// (last_error) and returned. When ctx is cancelled nothing new starts;
// steps in flight finish (or roll back) and their results are saved.
func Run(ctx context.Context, p *plan.Plan, deps Deps, opts Options) (*state.State, error) {
	if deps.Clock == nil {
		deps.Clock = clock.Real{}
	}
	if opts.Parallelism <= 0 {
		opts.Parallelism = 10
	}
	st := p.Prior.DeepCopy()
	if st == nil {
		return nil, errors.New("plan carries no prior state")
	}
	r := &runner{
		deps:  deps,
		opts:  opts,
		hooks: hooks(deps.Hooks),
		st:    st,
		sem:   make(chan struct{}, opts.Parallelism),
		stop:  ctx.Done(),
		work:  context.WithoutCancel(ctx),
	}

	r.observe(p.Observations)
	if err := r.sweepOrphans(); err != nil {
		r.fail("run", err)
	}

	var first, second []*plan.Change
	for _, c := range p.Changes {
		if c.Action == plan.Delete || c.Action == plan.DeleteThenCreate {
			first = append(first, c)
		} else {
			second = append(second, c)
		}
	}
	r.runAll(first)
	r.runAll(second)

	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.st.DeepCopy()
	if r.skipped > 0 {
		r.errs = multierror.Append(r.errs, fmt.Errorf("%w (%d)", ErrInterrupted, r.skipped))
	}
	return out, r.errs.ErrorOrNil()
}

// observe records what refresh saw (live pids and statuses) in the
// working state, so the state written by this run is current. Restart
// counts stay as recorded: refresh reports the recorded count plus the
// live supervisor's own, and a relaunch folds that total in.
func (r *runner) observe(obs plan.Observations) {
	r.observed = obs
	for addr, p := range r.st.Pools {
		for _, rep := range p.Replicas {
			o, ok := obs[addr+"/"+rep.ID]
			if !ok || o.Status == "" {
				continue
			}
			rep.Status = o.Status
			rep.PID = o.PID
		}
	}
}

type runner struct {
	deps  Deps
	opts  Options
	hooks hooks
	sem   chan struct{}
	stop  <-chan struct{} // closed on Ctrl-C: start nothing new
	work  context.Context // in-flight steps run to completion

	observed plan.Observations // what refresh saw, by replica address
	retryMu  sync.Mutex        // one Ensure retry after a plugin crash at a time

	mu      sync.Mutex // guards st, changed, errs, skipped
	st      *state.State
	changed uint64 // mutations applied to st
	errs    *multierror.Error
	skipped int

	wmu     sync.Mutex // one state write at a time; guards saved, saveErr
	saved   uint64     // mutations covered by the last write
	saveErr error
}

func (r *runner) runAll(changes []*plan.Change) {
	var wg sync.WaitGroup
	for _, c := range changes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := r.change(c); err != nil {
				r.fail(c.Addr, err)
			}
		}()
	}
	wg.Wait()
}

// acquire takes a parallelism slot, or reports false when the run is being
// interrupted and the step must not start.
func (r *runner) acquire() bool {
	select {
	case <-r.stop:
		r.mu.Lock()
		r.skipped++
		r.mu.Unlock()
		return false
	default:
	}
	select {
	case r.sem <- struct{}{}:
		return true
	case <-r.stop:
		r.mu.Lock()
		r.skipped++
		r.mu.Unlock()
		return false
	}
}

func (r *runner) release() { <-r.sem }

// fail records a failed change. Errors that already name a replica are
// kept as they are, so each failure is listed once, under its own address.
func (r *runner) fail(addr string, err error) {
	var me *multierror.Error
	if errors.As(err, &me) {
		for _, e := range me.Errors {
			r.fail(addr, e)
		}
		return
	}
	var ae *Error
	if !errors.As(err, &ae) {
		err = &Error{Addr: addr, Err: err}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = multierror.Append(r.errs, err)
}

// mutate applies fn to the working state and returns once a save that
// includes the change is on disk, so a replica is reported done only when
// its record is durable. Concurrent finishes share one write (group
// commit): writers queue on wmu while a write holds mu, apply their
// changes when it ends, and the first of them writes for all.
func (r *runner) mutate(fn func(st *state.State)) error {
	r.mu.Lock()
	fn(r.st)
	r.changed++
	mine := r.changed
	r.mu.Unlock()

	r.wmu.Lock()
	defer r.wmu.Unlock()
	if r.saved >= mine {
		return r.saveErr
	}
	r.mu.Lock()
	upTo := r.changed
	err := r.deps.Store.Write(r.work, r.st)
	r.mu.Unlock()
	r.saved, r.saveErr = upTo, nil
	if err != nil {
		r.saveErr = fmt.Errorf("saving state: %w", err)
	}
	return r.saveErr
}

func (r *runner) change(c *plan.Change) error {
	switch c.Action {
	case plan.Create:
		return r.create(c)
	case plan.Update:
		return r.update(c)
	case plan.CreateThenDelete:
		return r.replaceCreateFirst(c)
	case plan.DeleteThenCreate:
		return r.replaceDrainFirst(c)
	case plan.Delete:
		if isReplicaAddr(c.Addr) {
			return r.deleteReplica(c)
		}
		return r.deletePool(c)
	case plan.Restart:
		return r.restart(c)
	case plan.NoOp:
		return nil
	}
	return fmt.Errorf("unknown action %q", string(c.Action))
}

// ensure runs the provider's Ensure for a pool and returns the prepared
// engine.
func (r *runner) ensure(d *plan.Desired) (*providers.PreparedEngine, error) {
	if !r.acquire() {
		return nil, ErrInterrupted
	}
	defer r.release()
	addr := d.Addr
	r.hooks.pre(addr, StepEnsure)
	prov, _, diags := r.deps.Providers.Provider(r.work, r.opts.Config, d.Pool.Engine)
	if diags.HasErrors() {
		err := fmt.Errorf("provider %q: %w", d.Pool.Engine, diags)
		r.hooks.post(addr, StepEnsure, Result{}, err)
		return nil, err
	}
	req := providers.EnsureRequest{
		Pool:     plan.PoolSpec(d.Pool),
		Config:   d.ProviderConfig,
		Progress: r.hooks.progress(addr),
	}
	pe, pdiags := prov.Ensure(r.work, req)
	if pdiags.ProviderGone() {
		// The plugin process died under this call, perhaps because of
		// another pool's request. Retry once on a fresh process, one pool
		// at a time, so a pool that crashes it cannot take others along.
		pe, pdiags = r.retryEnsure(d, req)
	}
	if err := pdiags.Err(); err != nil {
		err = fmt.Errorf("preparing engine: %w", err)
		r.hooks.post(addr, StepEnsure, Result{}, err)
		return nil, err
	}
	if pe == nil {
		err := fmt.Errorf("provider %q returned no prepared engine", d.Pool.Engine)
		r.hooks.post(addr, StepEnsure, Result{}, err)
		return nil, err
	}
	pe.PoolID = d.Pool.ID
	r.hooks.post(addr, StepEnsure, Result{EngineVersion: pe.EngineVersion}, nil)
	return pe, nil
}

// retryEnsure calls Ensure again on a freshly started provider process,
// serialized across pools.
func (r *runner) retryEnsure(d *plan.Desired, req providers.EnsureRequest) (*providers.PreparedEngine, providers.Diagnostics) {
	r.retryMu.Lock()
	defer r.retryMu.Unlock()
	// Resolve again: the resolver starts a fresh process when the last one
	// exited (an earlier retry may have crashed it too), and the new one
	// is configured before use.
	r.deps.Providers.Forget(d.Pool.Engine)
	prov, _, diags := r.deps.Providers.Provider(r.work, r.opts.Config, d.Pool.Engine)
	if diags.HasErrors() {
		return nil, providers.FromError("Provider did not restart", diags)
	}
	return prov.Ensure(r.work, req)
}

// started is a replica that is up, or the record of why it is not.
type started struct {
	replica *state.Replica
	client  supervisor.Client
}

// launch starts one replica's supervisor and waits for the health gate. It
// always returns a replica record: on failure its status is failed and
// last_error says why (nothing is left running; the launcher guarantees it).
func (r *runner) launch(d *plan.Desired, pe *providers.PreparedEngine, id string, index, generation int, freshPort bool, step Step) (started, error) {
	addr := d.Addr + "/" + id
	rec := &state.Replica{ID: id, Status: state.StatusFailed, Generation: generation}
	if !r.acquire() {
		rec.LastError = "not started: apply was interrupted"
		return started{replica: rec}, ErrInterrupted
	}
	defer r.release()
	r.hooks.pre(addr, step)

	port := 0
	if d.Pool.Port > 0 && !freshPort {
		port = d.Pool.Port + index
	} else {
		var err error
		if port, err = freePort(pe.Host); err != nil {
			rec.LastError = err.Error()
			r.hooks.post(addr, step, Result{}, err)
			return started{replica: rec}, err
		}
	}
	rpe := pe.ForReplica(id, port)
	spec := supervisorSpec(d.Pool, rpe, r.opts.Dirs, generation)
	rec.Port, rec.RunDir, rec.Handoff = port, spec.RunDir, spec.HandoffPath
	rec.StartedAt = r.deps.Clock.Now().UTC()

	client, status, err := r.deps.Launcher.Launch(r.work, spec)
	if err != nil {
		rec.LastError = err.Error()
		rec.PID, rec.SupervisorPID = 0, 0
		r.hooks.post(addr, step, Result{Port: port}, err)
		return started{replica: rec}, err
	}
	rec.Status = string(status.State)
	rec.PID, rec.SupervisorPID = status.PID, status.SupervisorPID
	rec.ReadyAt = status.ReadyAt.UTC()
	if !status.StartedAt.IsZero() {
		rec.StartedAt = status.StartedAt.UTC()
	}
	rec.LastError = ""
	r.hooks.post(addr, step, Result{PID: status.PID, Port: port}, nil)
	return started{replica: rec, client: client}, nil
}

func (r *runner) create(c *plan.Change) error {
	d := c.After
	pe, err := r.ensure(d)
	if err != nil {
		return err
	}
	if err := r.mutate(func(st *state.State) {
		st.Pools[d.Addr] = &state.Pool{
			Engine: d.Pool.Engine, SpecHash: d.SpecHash, Spec: d.Spec,
			Prepared: recordPrepared(pe), Replicas: []*state.Replica{},
		}
	}); err != nil {
		return err
	}
	return r.startReplicas(d, pe, replicaIDs(c, d), StepStart)
}

// startReplicas launches replicas concurrently, recording each in state
// as soon as it is ready or has failed.
func (r *runner) startReplicas(d *plan.Desired, pe *providers.PreparedEngine, ids []string, step Step) error {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs *multierror.Error
	)
	for _, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := r.launch(d, pe, id, replicaIndex(id), 0, false, step)
			if res.client != nil {
				_ = res.client.Close()
			}
			serr := r.mutate(func(st *state.State) { putReplica(st.Pools[d.Addr], res.replica) })
			if err == nil {
				err = serr
			}
			if err != nil {
				mu.Lock()
				errs = multierror.Append(errs, &Error{Addr: d.Addr + "/" + id, Err: err})
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return flatten(errs)
}

func (r *runner) update(c *plan.Change) error {
	d := c.After
	r.hooks.pre(c.Addr, StepUpdate)
	var (
		add, remove []string
		current     []*state.Replica
	)
	r.mu.Lock()
	if sp := r.st.Pools[d.Addr]; sp != nil {
		current = append(current, sp.Replicas...)
	}
	r.mu.Unlock()
	want := map[string]bool{}
	for i := 0; i < d.Pool.Replicas; i++ {
		want[replicaID(i)] = true
	}
	have := map[string]bool{}
	for _, rep := range current {
		have[rep.ID] = true
		if !want[rep.ID] {
			remove = append(remove, rep.ID)
		}
	}
	for i := 0; i < d.Pool.Replicas; i++ {
		if !have[replicaID(i)] {
			add = append(add, replicaID(i))
		}
	}

	var errs *multierror.Error
	for _, id := range remove {
		if err := r.stopReplica(d.Addr, id, true); err != nil {
			errs = multierror.Append(errs, &Error{Addr: d.Addr + "/" + id, Err: err})
		}
	}
	// Running replicas keep their engine: push the new settings to their
	// supervisors (labels reach the handoff file, health/restart/drain the
	// supervision loop).
	for _, rep := range current {
		if !want[rep.ID] {
			continue
		}
		if err := r.pushSettings(d, rep); err != nil {
			errs = multierror.Append(errs, &Error{Addr: d.Addr + "/" + rep.ID, Err: err})
		}
	}
	if err := r.mutate(func(st *state.State) {
		sp := st.Pools[d.Addr]
		sp.Spec, sp.SpecHash = d.Spec, d.SpecHash
	}); err != nil {
		errs = multierror.Append(errs, err)
	}
	if len(add) > 0 {
		pe, err := r.ensure(d)
		if err != nil {
			errs = multierror.Append(errs, err)
		} else if err := r.startReplicas(d, pe, add, StepStart); err != nil {
			errs = multierror.Append(errs, err)
		}
	}
	err := flatten(errs)
	r.hooks.post(c.Addr, StepUpdate, Result{}, err)
	return err
}

// pushSettings hands a running replica's supervisor the pool's new in-place
// settings; its engine keeps running.
func (r *runner) pushSettings(d *plan.Desired, rep *state.Replica) error {
	if rep.RunDir == "" || rep.Status == state.StatusStopped {
		return nil
	}
	client, err := r.deps.Launcher.Attach(r.work, rep.RunDir)
	if err != nil {
		if supervisorGone(err) {
			return nil // not running: the next start uses the new spec anyway
		}
		return fmt.Errorf("updating settings of %s: %w", rep.ID, err)
	}
	defer client.Close()
	s := supervisorSpec(d.Pool, providers.PreparedEngine{}, Dirs{}, 0)
	return client.Update(r.work, supervisor.Settings{
		Health: s.Health, Restart: s.Restart, Drain: s.Drain, Labels: copyMap(d.Pool.Labels),
	})
}

// replaceCreateFirst is create_before_destroy: each replica's successor
// comes up healthy on a fresh port (its supervisor takes over the handoff
// file), then the old one is drained and stopped. If the successor fails,
// the old replica keeps serving and its record says why.
func (r *runner) replaceCreateFirst(c *plan.Change) error {
	d := c.After
	pe, err := r.ensure(d)
	if err != nil {
		r.noteReplaceFailure(d.Addr, c.Replicas, err)
		return err
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs *multierror.Error
		ok   = true
	)
	ids := replicaIDs(c, d)
	for _, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := r.replaceOne(d, pe, id); err != nil {
				mu.Lock()
				ok = false
				errs = multierror.Append(errs, &Error{Addr: d.Addr + "/" + id, Err: err})
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	// Replicas beyond the new count go away.
	for _, id := range r.replicasBeyond(d) {
		if err := r.stopReplica(d.Addr, id, true); err != nil {
			ok = false
			errs = multierror.Append(errs, &Error{Addr: d.Addr + "/" + id, Err: err})
		}
	}
	if ok {
		if err := r.mutate(func(st *state.State) {
			sp := st.Pools[d.Addr]
			sp.Engine, sp.Spec, sp.SpecHash, sp.Prepared = d.Pool.Engine, d.Spec, d.SpecHash, recordPrepared(pe)
		}); err != nil {
			errs = multierror.Append(errs, err)
		}
	}
	return flatten(errs)
}

func (r *runner) replaceOne(d *plan.Desired, pe *providers.PreparedEngine, id string) error {
	old := r.replica(d.Addr, id)
	gen := 0
	if old != nil {
		gen = old.Generation + 1
	}
	// A fresh port: the old engine still holds its own, and llama-server can
	// fail to bind a just-released port for a while (ENGINE-NOTES).
	res, err := r.launch(d, pe, id, replicaIndex(id), gen, old != nil, StepStart)
	if res.client != nil {
		_ = res.client.Close()
	}
	if err != nil {
		if old == nil {
			_ = r.mutate(func(st *state.State) { putReplica(st.Pools[d.Addr], res.replica) })
			return err
		}
		_ = r.mutate(func(st *state.State) {
			if rep := st.Pools[d.Addr].Replica(id); rep != nil {
				rep.LastError = "replacement failed, old engine kept serving: " + err.Error()
			}
		})
		return fmt.Errorf("replacement failed, the old engine keeps serving: %w", err)
	}
	if old != nil {
		if err := r.stopRecorded(d.Addr+"/"+id, old, true); err != nil {
			// The successor serves; the old one could not be stopped cleanly.
			res.replica.LastError = "previous engine did not stop cleanly: " + err.Error()
		}
	}
	return r.mutate(func(st *state.State) { putReplica(st.Pools[d.Addr], res.replica) })
}

// replaceDrainFirst drains and stops each replica, then starts its
// successor on the configured port.
func (r *runner) replaceDrainFirst(c *plan.Change) error {
	d := c.After
	var errs *multierror.Error
	for _, rep := range r.replicas(d.Addr) {
		if err := r.stopReplica(d.Addr, rep.ID, true); err != nil {
			errs = multierror.Append(errs, &Error{Addr: d.Addr + "/" + rep.ID, Err: err})
		}
	}
	if err := errs.ErrorOrNil(); err != nil {
		return flatten(errs)
	}
	pe, err := r.ensure(d)
	if err != nil {
		return err
	}
	if err := r.mutate(func(st *state.State) {
		sp := st.Pools[d.Addr]
		sp.Engine, sp.Spec, sp.SpecHash, sp.Prepared = d.Pool.Engine, d.Spec, d.SpecHash, recordPrepared(pe)
	}); err != nil {
		return err
	}
	return r.startReplicas(d, pe, allReplicaIDs(d), StepStart)
}

func (r *runner) restart(c *plan.Change) error {
	poolAddr, id, ok := strings.Cut(c.Addr, "/")
	if !ok {
		return fmt.Errorf("restart of %s: not a replica address", c.Addr)
	}
	d := c.After
	if d == nil {
		return fmt.Errorf("restart of %s: the pool is not in the configuration", c.Addr)
	}
	old := r.replica(poolAddr, id)
	if old != nil {
		// A supervisor with an open circuit breaker is still running: end it
		// so the fresh one owns the replica alone.
		if err := r.stopRecorded(c.Addr, old, false); err != nil {
			return err
		}
	}
	pe, err := r.ensure(d)
	if err != nil {
		return err
	}
	gen := 0
	if old != nil {
		gen = old.Generation
	}
	res, err := r.launch(d, pe, id, replicaIndex(id), gen, false, StepRestart)
	if res.client != nil {
		_ = res.client.Close()
	}
	if old != nil {
		res.replica.Restarts = max(old.Restarts, r.observed[c.Addr].Restarts) + 1
	}
	if serr := r.mutate(func(st *state.State) {
		if sp := st.Pools[poolAddr]; sp != nil {
			putReplica(sp, res.replica)
		}
	}); err == nil {
		err = serr
	}
	return err
}

func (r *runner) deletePool(c *plan.Change) error {
	var errs *multierror.Error
	reps := r.replicas(c.Addr)
	var wg sync.WaitGroup
	var mu sync.Mutex
	for _, rep := range reps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := r.stopReplica(c.Addr, rep.ID, true); err != nil {
				mu.Lock()
				errs = multierror.Append(errs, &Error{Addr: c.Addr + "/" + rep.ID, Err: err})
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if errs.ErrorOrNil() != nil {
		return flatten(errs)
	}
	r.cleanup(c)
	return r.mutate(func(st *state.State) { delete(st.Pools, c.Addr) })
}

// cleanup tells the provider a pool is gone. Failures are reported but do
// not keep the pool in state: its engines are already stopped.
func (r *runner) cleanup(c *plan.Change) {
	if c.Before == nil || r.opts.Config == nil {
		return
	}
	prov, _, diags := r.deps.Providers.Provider(r.work, r.opts.Config, c.Before.Engine)
	if diags.HasErrors() {
		return
	}
	r.hooks.pre(c.Addr, StepCleanup)
	req := providers.CleanupRequest{Pool: providers.PoolSpec{Addr: c.Addr}}
	if c.Before.Prepared != nil {
		req.Prepared = &providers.PreparedEngine{
			BinaryPath: c.Before.Prepared.BinaryPath, ModelPath: c.Before.Prepared.ModelPath,
			EngineVersion: c.Before.Prepared.EngineVersion,
		}
	}
	err := prov.Cleanup(r.work, req).Err()
	r.hooks.post(c.Addr, StepCleanup, Result{}, err)
}

func (r *runner) deleteReplica(c *plan.Change) error {
	poolAddr, id, _ := strings.Cut(c.Addr, "/")
	return r.stopReplica(poolAddr, id, true)
}

// stopReplica drains (or stops) a recorded replica, removes its handoff
// file when it still names it, and drops it from state.
func (r *runner) stopReplica(poolAddr, id string, drain bool) error {
	rep := r.replica(poolAddr, id)
	if rep == nil {
		return nil
	}
	if err := r.stopRecorded(poolAddr+"/"+id, rep, drain); err != nil {
		_ = r.mutate(func(st *state.State) {
			if cur := st.Pools[poolAddr].Replica(id); cur != nil {
				cur.LastError = err.Error()
			}
		})
		return err
	}
	return r.mutate(func(st *state.State) {
		if sp := st.Pools[poolAddr]; sp != nil {
			removeReplica(sp, id)
		}
	})
}

// stopRecorded ends one replica generation: drain through its supervisor
// when it answers, otherwise make sure no engine it left is running. Its
// run directory is removed afterwards.
func (r *runner) stopRecorded(addr string, rep *state.Replica, drain bool) error {
	if !r.acquire() {
		return ErrInterrupted
	}
	defer r.release()
	step := StepStop
	if drain && rep.Status == state.StatusReady {
		step = StepDrain
	}
	r.hooks.pre(addr, step)
	poolAddr, _, _ := strings.Cut(addr, "/")
	r.mu.Lock()
	grace := killTimeout(r.st.Pools[poolAddr])
	r.mu.Unlock()
	err := stopGeneration(r.work, r.deps.Launcher, r.deps.Fs, rep, step == StepDrain, grace)
	if err == nil {
		removeHandoffIfOurs(r.deps.Fs, rep)
		err = removeRunDir(r.deps.Fs, rep)
	}
	r.hooks.post(addr, step, Result{PID: rep.PID, Port: rep.Port}, err)
	return err
}

// stopGeneration is the one stop path for apply, destroy and drain.
func stopGeneration(ctx context.Context, l supervisor.Launcher, fs afero.Fs, rep *state.Replica, drain bool, grace time.Duration) error {
	return stopGenerationWithin(ctx, l, fs, rep, drain, 0, grace)
}

// stopGenerationWithin is stopGeneration with a drain deadline overriding
// the pool's (0: the pool's).
func stopGenerationWithin(ctx context.Context, l supervisor.Launcher, fs afero.Fs, rep *state.Replica, drain bool, deadline, grace time.Duration) error {
	if rep.RunDir == "" {
		return nil
	}
	client, err := l.Attach(ctx, rep.RunDir)
	if err == nil {
		defer client.Close()
		if drain {
			err = client.DrainWithin(ctx, deadline)
		}
		if err == nil {
			err = client.Stop(ctx, grace)
		}
		if err != nil && !supervisorGone(err) {
			return fmt.Errorf("stopping %s: %w", rep.ID, err)
		}
	}
	// The supervisor is gone (or just stopped). Its engine died with it
	// (Pdeathsig), but an engine whose pid is still alive is killed here so
	// nothing is orphaned.
	return killLeftover(fs, rep.RunDir, rep.PID)
}

// removeRunDir deletes a stopped generation's files (its log included).
func removeRunDir(fs afero.Fs, rep *state.Replica) error {
	if rep.RunDir == "" {
		return nil
	}
	if err := fs.RemoveAll(rep.RunDir); err != nil {
		return fmt.Errorf("removing run directory %s: %w", rep.RunDir, err)
	}
	return nil
}

func removeHandoffIfOurs(fs afero.Fs, rep *state.Replica) {
	if rep.Handoff == "" {
		return
	}
	f, err := handoff.Read(fs, rep.Handoff)
	if err != nil {
		return
	}
	if f.PID == 0 || f.PID == rep.PID {
		_ = handoff.Remove(fs, rep.Handoff)
	}
}

func (r *runner) noteReplaceFailure(poolAddr string, ids []string, err error) {
	_ = r.mutate(func(st *state.State) {
		sp := st.Pools[poolAddr]
		if sp == nil {
			return
		}
		for _, rep := range sp.Replicas {
			rep.LastError = "replacement not started: " + err.Error()
		}
	})
}

func (r *runner) replica(poolAddr, id string) *state.Replica {
	r.mu.Lock()
	defer r.mu.Unlock()
	sp := r.st.Pools[poolAddr]
	if sp == nil {
		return nil
	}
	if rep := sp.Replica(id); rep != nil {
		cp := *rep
		return &cp
	}
	return nil
}

func (r *runner) replicas(poolAddr string) []*state.Replica {
	r.mu.Lock()
	defer r.mu.Unlock()
	sp := r.st.Pools[poolAddr]
	if sp == nil {
		return nil
	}
	out := make([]*state.Replica, 0, len(sp.Replicas))
	for _, rep := range sp.Replicas {
		cp := *rep
		out = append(out, &cp)
	}
	return out
}

func (r *runner) replicasBeyond(d *plan.Desired) []string {
	var out []string
	for _, rep := range r.replicas(d.Addr) {
		if replicaIndex(rep.ID) >= d.Pool.Replicas {
			out = append(out, rep.ID)
		}
	}
	return out
}

func replicaID(i int) string { return fmt.Sprintf("r%d", i) }

func replicaIndex(id string) int {
	var i int
	if _, err := fmt.Sscanf(id, "r%d", &i); err != nil {
		return 0
	}
	return i
}

// replicaIDs are the replicas a create or replace covers: the change's own
// list when the plan gave one, else every configured replica.
func replicaIDs(c *plan.Change, d *plan.Desired) []string {
	all := allReplicaIDs(d)
	if len(c.Replicas) == 0 {
		return all
	}
	want := map[string]bool{}
	for _, id := range all {
		want[id] = true
	}
	var out []string
	for _, id := range c.Replicas {
		if want[id] {
			out = append(out, id)
		}
	}
	if len(out) == 0 {
		return all
	}
	return out
}

func allReplicaIDs(d *plan.Desired) []string {
	out := make([]string, d.Pool.Replicas)
	for i := range out {
		out[i] = replicaID(i)
	}
	return out
}

func putReplica(sp *state.Pool, rep *state.Replica) {
	if sp == nil {
		return
	}
	for i, cur := range sp.Replicas {
		if cur.ID == rep.ID {
			sp.Replicas[i] = rep
			return
		}
	}
	sp.Replicas = append(sp.Replicas, rep)
	sort.Slice(sp.Replicas, func(i, j int) bool {
		return replicaIndex(sp.Replicas[i].ID) < replicaIndex(sp.Replicas[j].ID)
	})
}

func removeReplica(sp *state.Pool, id string) {
	out := sp.Replicas[:0]
	for _, rep := range sp.Replicas {
		if rep.ID != id {
			out = append(out, rep)
		}
	}
	sp.Replicas = out
}

func isReplicaAddr(addr string) bool { return strings.Contains(addr, "/") }

// flatten turns a possibly-nil *multierror.Error into an error without the
// typed-nil trap.
func flatten(errs *multierror.Error) error {
	if errs == nil {
		return nil
	}
	if len(errs.Errors) == 1 {
		return errs.Errors[0]
	}
	return errs.ErrorOrNil()
}
