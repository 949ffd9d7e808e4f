package apply

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/hashicorp/go-multierror"
	"github.com/hashicorp/hcl/v2"
	"github.com/spf13/afero"

	"github.com/llorch/llorch/config"
	"github.com/llorch/llorch/internal/clock"
	"github.com/llorch/llorch/internal/supervisor"
	"github.com/llorch/llorch/plan"
	"github.com/llorch/llorch/providers"
	"github.com/llorch/llorch/state"
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
	// TaskRoom says how many more tasks the machine can start; nil does
	// not check. cmd passes HostTaskRoom.
	TaskRoom TaskRoomFunc
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
	// Pins and LockMode are the lock file's pins and what to do with an
	// engine or model Ensure prepared that they do not pin (the plan
	// checked what it could know; Ensure may download or build what it
	// could not).
	Pins     *providers.Pins
	LockMode providers.LockMode
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

// StateSaveError is a failure to save the state during a run: what was
// done since the last save is not recorded.
type StateSaveError struct{ Err error }

func (e *StateSaveError) Error() string { return "saving state: " + e.Err.Error() }
func (e *StateSaveError) Unwrap() error { return e.Err }

// ErrInterrupted is returned (wrapped) when ctx was cancelled and some
// changes were therefore not started.
var ErrInterrupted = errors.New("interrupted: changes not yet started were skipped")

// Run executes p. Deletions run first (so a renamed pool can take over its
// predecessor's port), then everything else, up to Parallelism steps at a
// time. State is saved after every replica, not only at the end: as a
// journal record where the store keeps one (the whole state is written
// once, at the end), else as a whole-state write. A failing
// change does not stop the others: each failure is recorded in state
// (last_error) and returned. When ctx is cancelled nothing new starts;
// steps in flight finish (or roll back) and their results are saved.
func Run(ctx context.Context, p *plan.Plan, deps Deps, opts Options) (*state.State, error) {
	r, err := newRunner(ctx, p, deps, opts)
	if err != nil {
		return nil, err
	}
	st := r.st

	if err := checkCapacity(p, deps.TaskRoom); err != nil {
		return st, fmt.Errorf("not enough room for new processes: %w", err)
	}
	settled := r.adoptSuccessors()
	r.observe(p.Observations, settled)
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
	if err := r.fold(); err != nil {
		r.fail("run", err)
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.st.DeepCopy()
	if r.skipped > 0 {
		r.errs = multierror.Append(r.errs, fmt.Errorf("%w (%d)", ErrInterrupted, r.skipped))
	}
	return out, r.errs.ErrorOrNil()
}

// newRunner is the state of one run over p's prior state.
func newRunner(ctx context.Context, p *plan.Plan, deps Deps, opts Options) (*runner, error) {
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
		ports: portPicker{free: freePort},
		stop:  ctx.Done(),
		work:  context.WithoutCancel(ctx),
	}
	r.journal, _ = deps.Store.(state.Journal)
	return r, nil
}

// observe records what refresh saw (live pids and statuses) in the
// working state, so the state written by this run is current. Restart
// counts stay as recorded: refresh reports the recorded count plus the
// live supervisor's own, and a relaunch folds that total in.
func (r *runner) observe(obs plan.Observations, settled map[string]bool) {
	r.observed = obs
	for addr, p := range r.st.Pools {
		for _, rep := range p.Replicas {
			raddr := plan.ReplicaAddr(addr, rep.ID)
			o, ok := obs[raddr]
			if !ok || o.Status == "" || rep.Status == state.StatusStopped || settled[raddr] {
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
	ports portPicker
	stop  <-chan struct{} // closed on Ctrl-C: start nothing new
	work  context.Context // in-flight steps run to completion

	observed plan.Observations // what refresh saw, by replica address
	retryMu  sync.Mutex        // one Ensure retry after a plugin crash at a time

	mu      sync.Mutex // guards st, changed, errs, skipped
	st      *state.State
	changed uint64 // mutations applied to st
	errs    *multierror.Error
	skipped int

	journal state.Journal      // deps.Store, when it keeps a journal
	pending []state.PoolChange // mutations not yet in the journal; guarded by mu

	wmu     sync.Mutex // one state save at a time; guards saved, saveErr
	saved   uint64     // mutations covered by the last save
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

// mutate applies fn, which changes the pool at addr, to the working state
// and returns once a save that includes the change is on disk, so a
// replica is reported done only when its record is durable. With a store
// that keeps a journal (state.Journal) the save is one small record of
// the pools changed, and the whole state is written once, at the end of
// the run (fold); with any other store it is a write of the whole state.
// Concurrent finishes share one save (group commit): savers queue on wmu
// while a save is in flight, and the first of them saves for all.
func (r *runner) mutate(addr string, fn func(st *state.State)) error {
	r.mu.Lock()
	fn(r.st)
	if r.journal != nil {
		r.pending = append(r.pending, state.PoolChange{Addr: addr, Pool: r.st.Pools[addr].DeepCopy()})
	}
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
	var err error
	if r.journal == nil {
		err = r.deps.Store.Write(r.work, r.st)
		r.mu.Unlock()
	} else {
		changes, lineage, serial := lastPerPool(r.pending), r.st.Lineage, r.st.Serial
		r.pending = nil
		r.mu.Unlock()
		// Outside mu: steps go on changing the working state while the
		// record is synced, and their changes go in the next one.
		serial, err = r.journal.Append(r.work, lineage, serial, changes)
		if err == nil {
			r.mu.Lock()
			r.st.Serial = serial
			r.mu.Unlock()
		}
	}
	r.saved, r.saveErr = upTo, nil
	if err != nil {
		r.saveErr = &StateSaveError{Err: err}
	}
	return r.saveErr
}

// lastPerPool keeps the last change of each pool, in the order of first
// change: each is the whole pool, so an earlier one adds nothing.
func lastPerPool(changes []state.PoolChange) []state.PoolChange {
	at := make(map[string]int, len(changes))
	out := changes[:0]
	for _, c := range changes {
		if i, ok := at[c.Addr]; ok {
			out[i] = c
			continue
		}
		at[c.Addr] = len(out)
		out = append(out, c)
	}
	return out
}

// fold writes the whole working state once the run's steps are done, when
// they were saved as journal records (or tried to be: a failed append is
// written now): the state file then holds them, and the journal is
// dropped. Should it fail, the journal still holds every step it
// recorded, and the next read folds it.
func (r *runner) fold() error {
	r.wmu.Lock()
	defer r.wmu.Unlock()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.journal == nil {
		return nil // every save was a whole-state write
	}
	if r.changed == 0 {
		// Nothing changed by this run; an earlier one killed before its
		// fold may have left records, which this run read.
		if unfolded, err := r.journal.Unfolded(r.work); err != nil || !unfolded {
			return nil
		}
	}
	if err := r.deps.Store.Write(r.work, r.st); err != nil {
		return &StateSaveError{Err: err}
	}
	return nil
}

func (r *runner) change(c *plan.Change) error {
	switch c.Action {
	case plan.Create:
		return r.create(c)
	case plan.Update:
		return r.update(c)
	case plan.CreateThenDelete:
		return r.replace(c, r.replaceCreateFirst)
	case plan.DeleteThenCreate:
		return r.replace(c, r.replaceDrainFirst)
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
