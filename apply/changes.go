package apply

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/hashicorp/go-multierror"

	"github.com/llorch/llorch/internal/supervisor"
	"github.com/llorch/llorch/plan"
	"github.com/llorch/llorch/providers"
	"github.com/llorch/llorch/state"
)

func (r *runner) create(c *plan.Change) error {
	d := c.After
	pe, err := r.ensure(d)
	if err != nil {
		return err
	}
	if err := r.mutate(d.Addr, func(st *state.State) {
		st.Pools[d.Addr] = &state.Pool{
			Engine: d.Pool.Engine, SpecHash: d.SpecHash, Spec: d.Spec,
			Prepared: recordPrepared(r.deps.Fs, d, pe), Replicas: []*state.Replica{},
		}
	}); err != nil {
		return err
	}
	return r.startReplicas(d, pe, replicaIDs(c, d), StepStart)
}

// update changes a pool in place: replicas beyond the new count are
// drained and removed, new ones started, and running ones get the new
// settings without an engine restart. The new spec is recorded only when
// every running replica took it, so a failed push is retried next time.
func (r *runner) update(c *plan.Change) error {
	d := c.After
	r.hooks.pre(c.Addr, StepUpdate)
	current := r.replicas(d.Addr)
	want := map[string]bool{}
	for _, id := range allReplicaIDs(d) {
		want[id] = true
	}
	have := map[string]bool{}
	var remove, add []string
	for _, rep := range current {
		have[rep.ID] = true
		if !want[rep.ID] {
			remove = append(remove, rep.ID)
		}
	}
	for _, id := range allReplicaIDs(d) {
		if !have[id] {
			add = append(add, id)
		}
	}

	var errs *multierror.Error
	for _, id := range remove {
		if err := r.stopReplica(d.Addr, id, true); err != nil {
			errs = multierror.Append(errs, &Error{Addr: plan.ReplicaAddr(d.Addr, id), Err: err})
		}
	}
	pushed := true
	for _, rep := range current {
		if !want[rep.ID] {
			continue
		}
		if err := r.pushSettings(d, rep); err != nil {
			pushed = false
			errs = multierror.Append(errs, &Error{Addr: plan.ReplicaAddr(d.Addr, rep.ID), Err: err})
		}
	}
	if pushed {
		if err := r.mutate(d.Addr, func(st *state.State) {
			sp := st.Pools[d.Addr]
			sp.Spec, sp.SpecHash = d.Spec, d.SpecHash
		}); err != nil {
			errs = multierror.Append(errs, err)
		}
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
// settings; its engine keeps running. A supervisor that is not running
// needs none: its next start uses the new spec.
func (r *runner) pushSettings(d *plan.Desired, rep *state.Replica) error {
	if rep.RunDir == "" || rep.Status == state.StatusStopped {
		return nil
	}
	if !r.acquire() {
		return ErrInterrupted
	}
	defer r.release()
	ctx, cancel := context.WithTimeout(r.work, updateTimeout)
	defer cancel()
	client, err := r.deps.Launcher.Attach(ctx, rep.RunDir)
	if err != nil {
		if supervisorGone(err) {
			return nil
		}
		return fmt.Errorf("updating settings: %w", err)
	}
	defer client.Close()
	// The health path is the one the engine was launched with: a provider
	// may have chosen it.
	pe := providers.PreparedEngine{}
	r.mu.Lock()
	if sp := r.st.Pools[d.Addr]; sp != nil && sp.Prepared != nil {
		pe.HealthPath = sp.Prepared.HealthPath
	}
	r.mu.Unlock()
	s := supervisorSpec(d, pe, Dirs{}, 0)
	if err := client.Update(ctx, supervisor.Settings{
		Health: s.Health, Restart: s.Restart, Drain: s.Drain, Labels: s.Handoff.Labels,
	}); err != nil && !supervisorGone(err) {
		return fmt.Errorf("updating settings: %w", err)
	}
	return nil
}

// replace runs a replacement with strategy (replaceCreateFirst or
// replaceDrainFirst) once the new engine is prepared: a provider failure
// stops it before either strategy touches a replica, so the old ones keep
// serving and their records say why.
func (r *runner) replace(c *plan.Change, strategy func(d *plan.Desired, ids []string, pe *providers.PreparedEngine) error) error {
	d := c.After
	ids := replicaIDs(c, d)
	pe, err := r.ensure(d)
	if err != nil {
		r.noteReplaceFailure(d.Addr, ids, err)
		return err
	}
	return strategy(d, ids, pe)
}

// replaceCreateFirst is create_before_destroy: each replica's successor
// comes up healthy first (its supervisor takes over the handoff file),
// then the old one is drained and stopped. If a successor fails, its
// predecessor keeps serving and its record says why. The new spec is
// recorded once every replica was replaced.
func (r *runner) replaceCreateFirst(d *plan.Desired, ids []string, pe *providers.PreparedEngine) error {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs *multierror.Error
		ok   = true
	)
	for _, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := r.replaceOne(d, pe, id); err != nil {
				var moved *notHomeError
				mu.Lock()
				// A successor that serves off its port still runs the new
				// configuration: the pool is replaced all the same.
				ok = ok && errors.As(err, &moved)
				errs = multierror.Append(errs, &Error{Addr: plan.ReplicaAddr(d.Addr, id), Err: err})
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	for _, id := range r.replicasBeyond(d) {
		if err := r.stopReplica(d.Addr, id, true); err != nil {
			ok = false
			errs = multierror.Append(errs, &Error{Addr: plan.ReplicaAddr(d.Addr, id), Err: err})
		}
	}
	if ok {
		if err := r.recordPool(d, pe); err != nil {
			errs = multierror.Append(errs, err)
		}
	}
	return flatten(errs)
}

// recordPool records the pool's new spec and prepared engine.
func (r *runner) recordPool(d *plan.Desired, pe *providers.PreparedEngine) error {
	return r.mutate(d.Addr, func(st *state.State) {
		sp := st.Pools[d.Addr]
		sp.Engine, sp.Spec, sp.SpecHash, sp.Prepared = d.Pool.Engine, d.Spec, d.SpecHash, recordPrepared(r.deps.Fs, d, pe)
	})
}

// replaceOne brings up one replica's successor, then retires the
// predecessor. The successor listens on the configured port when it is
// free of the predecessor (the port changed, or there was none), else on
// a fresh one: two engines cannot share a port. A successor on a fresh
// port is then moved onto the configured one the same way (moveHome), so
// a fixed port stays fixed.
func (r *runner) replaceOne(d *plan.Desired, pe *providers.PreparedEngine, id string) error {
	old := r.replica(d.Addr, id)
	gen, port := 0, configuredPort(d, id)
	if old != nil {
		gen = old.Generation + 1
		if port == old.Port {
			port = 0
		}
	}
	var (
		res started
		err error
	)
	if old != nil {
		res, err = r.launchSuccessor(d, pe, id, port, gen)
	} else {
		res, err = r.launch(d, pe, id, port, gen, StepStart)
	}
	if res.client != nil {
		_ = res.client.Close()
	}
	if err != nil {
		if old == nil {
			_ = r.mutate(d.Addr, func(st *state.State) { putReplica(st.Pools[d.Addr], res.replica) })
			return err
		}
		_ = r.mutate(d.Addr, func(st *state.State) {
			if rep := st.Pools[d.Addr].Replica(id); rep != nil {
				rep.LastError = "replacement failed, old engine kept serving: " + err.Error()
				rep.ClearSuccessor() // the launcher leaves nothing running
			}
		})
		return fmt.Errorf("replacement failed, the old engine keeps serving: %w", err)
	}
	if err := r.retire(d, id, old, res.replica); err != nil {
		return err
	}
	if port == 0 && configuredPort(d, id) > 0 {
		return r.moveHome(d, pe, id, res.replica)
	}
	return nil
}

// retire drains and stops the predecessor old (when there is one) of the
// successor now serving, and records the successor.
func (r *runner) retire(d *plan.Desired, id string, old, successor *state.Replica) error {
	var stopErr error
	if old != nil {
		if stopErr = r.stopRecorded(plan.ReplicaAddr(d.Addr, id), old, true, keepHandoff); stopErr != nil {
			// The successor serves and is recorded; the predecessor's run
			// directory no longer is, so the next apply stops it as an
			// orphan.
			stopErr = fmt.Errorf("the replacement serves, but the previous engine did not stop cleanly (the next apply stops it): %w", stopErr)
			successor.LastError = stopErr.Error()
		}
	}
	if err := r.mutate(d.Addr, func(st *state.State) { putReplica(st.Pools[d.Addr], successor) }); err != nil {
		return err
	}
	return stopErr
}

// moveHome moves a replica that serves on a temporary port (its
// predecessor held the configured one while it started) onto the
// configured port, now free: one more create-before-destroy step, so some
// engine serves throughout. If the move fails, the replica keeps serving
// where it is and says why; the next plan shows the move again.
func (r *runner) moveHome(d *plan.Desired, pe *providers.PreparedEngine, id string, temp *state.Replica) error {
	home := configuredPort(d, id)
	res, err := r.launchSuccessor(d, pe, id, home, temp.Generation+1)
	if res.client != nil {
		_ = res.client.Close()
	}
	if err != nil {
		nh := &notHomeError{port: temp.Port, home: home, err: err}
		_ = r.mutate(d.Addr, func(st *state.State) {
			if rep := st.Pools[d.Addr].Replica(id); rep != nil {
				rep.LastError = nh.Error()
				rep.ClearSuccessor()
			}
		})
		return nh
	}
	return r.retire(d, id, temp, res.replica)
}

// notHomeError is a replacement that serves, but not on its configured
// port.
type notHomeError struct {
	port, home int
	err        error
}

func (e *notHomeError) Error() string {
	return fmt.Sprintf("serves on temporary port %d; moving it to its configured port %d failed (the next apply tries again): %v", e.port, e.home, e.err)
}

func (e *notHomeError) Unwrap() error { return e.err }

// replaceDrainFirst replaces one replica at a time, so a pool of several
// keeps serving: drain and stop it, then start its successor on the
// configured port. A successor that cannot start (the supervisor has
// already retried what can pass, such as a port still closing) is followed
// by the previous engine, started again from the spec its supervisor ran:
// drain_first never leaves a replica without an engine it had before. The
// new spec is recorded once every replica was replaced.
func (r *runner) replaceDrainFirst(d *plan.Desired, ids []string, pe *providers.PreparedEngine) error {
	var errs *multierror.Error
	for _, id := range ids {
		if err := r.drainThenStart(d, pe, id); err != nil {
			errs = multierror.Append(errs, &Error{Addr: plan.ReplicaAddr(d.Addr, id), Err: err})
		}
	}
	for _, id := range r.replicasBeyond(d) {
		if err := r.stopReplica(d.Addr, id, true); err != nil {
			errs = multierror.Append(errs, &Error{Addr: plan.ReplicaAddr(d.Addr, id), Err: err})
		}
	}
	if errs.ErrorOrNil() == nil {
		if err := r.recordPool(d, pe); err != nil {
			errs = multierror.Append(errs, err)
		}
	}
	return flatten(errs)
}

// drainThenStart is one replica of a drain_first replacement.
func (r *runner) drainThenStart(d *plan.Desired, pe *providers.PreparedEngine, id string) error {
	old := r.replica(d.Addr, id)
	var previous *supervisor.Spec
	gen := 0
	if old != nil {
		gen = old.Generation + 1
		// Read before the stop removes the run directory; the spec holds
		// the engine's secrets and stays in memory only.
		if sp, err := supervisor.ReadSpec(r.deps.Fs, old.RunDir); err == nil {
			previous = &sp
		}
		if err := r.stopReplica(d.Addr, id, true); err != nil {
			return err
		}
	}
	// The stopped predecessor's record is gone: the successor is recorded
	// as starting before it is spawned, so an apply killed now leaves
	// nothing the next run does not know.
	res, err := r.launchWith(d, pe, id, configuredPort(d, id), gen, StepStart, func(spec supervisor.Spec) error {
		return r.mutate(d.Addr, func(st *state.State) {
			putReplica(st.Pools[d.Addr], &state.Replica{
				ID: id, Status: state.StatusStarting, Port: spec.Port, RunDir: spec.RunDir, Handoff: spec.HandoffPath,
				Generation: gen, StartedAt: r.deps.Clock.Now().UTC(),
			})
		})
	})
	if res.client != nil {
		_ = res.client.Close()
	}
	if err != nil && previous != nil && !errors.Is(err, ErrInterrupted) {
		return r.startPrevious(d.Addr, id, *previous, old, err)
	}
	if serr := r.mutate(d.Addr, func(st *state.State) { putReplica(st.Pools[d.Addr], res.replica) }); err == nil {
		err = serr
	}
	return err
}

// startPrevious starts the engine a drain_first replacement stopped,
// because its successor failed with cause, and records which one serves.
func (r *runner) startPrevious(poolAddr, id string, spec supervisor.Spec, old *state.Replica, cause error) error {
	addr := plan.ReplicaAddr(poolAddr, id)
	rec := &state.Replica{ID: id, Status: state.StatusFailed, Generation: old.Generation}
	if !r.acquire() {
		rec.LastError = "replacement failed, and apply was interrupted before the previous engine could start again: " + cause.Error()
		_ = r.mutate(poolAddr, func(st *state.State) { putReplica(st.Pools[poolAddr], rec) })
		return fmt.Errorf("replacement failed: %w; the previous engine was not started again: %w", cause, ErrInterrupted)
	}
	defer r.release()
	r.hooks.pre(addr, StepRollback)
	res, err := r.launchSpec(spec, rec, StepRollback)
	if res.client != nil {
		_ = res.client.Close()
	}
	if err != nil {
		res.replica.LastError = fmt.Sprintf("replacement failed: %v; starting the previous engine again failed too: %v", cause, err)
		_ = r.mutate(poolAddr, func(st *state.State) { putReplica(st.Pools[poolAddr], res.replica) })
		return fmt.Errorf("replacement failed: %w; starting the previous engine again failed too: %v", cause, err)
	}
	res.replica.LastError = "replacement failed, the previous engine was started again and serves: " + cause.Error()
	res.replica.Restarts = old.Restarts
	if err := r.mutate(poolAddr, func(st *state.State) { putReplica(st.Pools[poolAddr], res.replica) }); err != nil {
		return err
	}
	return fmt.Errorf("replacement failed, the previous engine was started again and serves: %w", cause)
}

// restart starts a replica whose engine is gone (its supervisor was killed,
// gave up with an open circuit breaker, or it was drained) on its recorded
// port when the pool has no fixed one, so its URL stays the same.
func (r *runner) restart(c *plan.Change) error {
	poolAddr, id := plan.SplitReplicaAddr(c.Addr)
	if id == "" {
		return fmt.Errorf("restart of %s: not a replica address", c.Addr)
	}
	d := c.After
	if d == nil {
		return fmt.Errorf("restart of %s: the pool is not in the configuration", c.Addr)
	}
	old := r.replica(poolAddr, id)
	pe, err := r.ensure(d)
	if err != nil {
		_ = r.mutate(poolAddr, func(st *state.State) {
			if rep := st.Pools[poolAddr].Replica(id); rep != nil {
				rep.Status = state.StatusFailed
				rep.LastError = "restart failed: " + err.Error()
			}
		})
		return err
	}
	gen, port := 0, configuredPort(d, id)
	if old != nil {
		// A supervisor with an open circuit breaker is still running: end
		// it, so the fresh one owns the replica alone.
		if err := r.stopRecorded(c.Addr, old, false, removeHandoff); err != nil {
			return err
		}
		gen = old.Generation
		if port == 0 {
			port = old.Port
		}
	}
	res, err := r.launch(d, pe, id, port, gen, StepRestart)
	if err != nil && port != 0 && configuredPort(d, id) == 0 && strings.Contains(err.Error(), "already in use") {
		// The old port was taken meanwhile; any port will do.
		res, err = r.launch(d, pe, id, 0, gen, StepRestart)
	}
	if res.client != nil {
		_ = res.client.Close()
	}
	if old != nil {
		res.replica.Restarts = max(old.Restarts, r.observed[c.Addr].Restarts) + 1
	}
	if serr := r.mutate(poolAddr, func(st *state.State) { putReplica(st.Pools[poolAddr], res.replica) }); err == nil {
		err = serr
	}
	return err
}

func (r *runner) deletePool(c *plan.Change) error {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs *multierror.Error
	)
	for _, rep := range r.replicas(c.Addr) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := r.stopReplica(c.Addr, rep.ID, true); err != nil {
				mu.Lock()
				errs = multierror.Append(errs, &Error{Addr: plan.ReplicaAddr(c.Addr, rep.ID), Err: err})
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if errs.ErrorOrNil() != nil {
		return flatten(errs)
	}
	cerr := r.cleanup(c)
	if err := r.mutate(c.Addr, func(st *state.State) { delete(st.Pools, c.Addr) }); err != nil {
		return err
	}
	return cerr
}

// cleanup tells the provider a pool is gone. Failures are reported but do
// not keep the pool in state: its engines are already stopped.
func (r *runner) cleanup(c *plan.Change) error {
	if c.Before == nil || r.opts.Config == nil {
		return nil
	}
	prov, _, diags := r.deps.Providers.Provider(r.work, r.opts.Config, c.Before.Engine)
	if diags.HasErrors() {
		return nil // destroy needs nothing from a provider that no longer starts
	}
	r.hooks.pre(c.Addr, StepCleanup)
	err := prov.Cleanup(r.work, cleanupRequest(c.Addr, c.Before)).Err()
	r.hooks.post(c.Addr, StepCleanup, Result{}, err)
	if err != nil {
		return fmt.Errorf("its engines are stopped and it left the state, but the %s provider's cleanup failed (what it caches for the pool may remain): %w", c.Before.Engine, err)
	}
	return nil
}

func (r *runner) deleteReplica(c *plan.Change) error {
	poolAddr, id := plan.SplitReplicaAddr(c.Addr)
	return r.stopReplica(poolAddr, id, true)
}

// noteReplaceFailure records on the replicas a replacement was for why it
// did not start; they keep serving.
func (r *runner) noteReplaceFailure(poolAddr string, ids []string, err error) {
	_ = r.mutate(poolAddr, func(st *state.State) {
		sp := st.Pools[poolAddr]
		if sp == nil {
			return
		}
		for _, id := range ids {
			if rep := sp.Replica(id); rep != nil {
				rep.LastError = "replacement not started: " + err.Error()
			}
		}
	})
}
