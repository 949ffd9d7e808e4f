package apply

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-multierror"
	"github.com/spf13/afero"

	"github.com/llorch/llorch/config"
	"github.com/llorch/llorch/internal/supervisor"
	"github.com/llorch/llorch/plan"
	"github.com/llorch/llorch/providers"
	"github.com/llorch/llorch/state"
	"github.com/llorch/llorch/state/handoff"
)

// Bounds on talking to a supervisor, so one that hangs cannot hang apply.
const (
	attachTimeout = 5 * time.Second
	updateTimeout = 10 * time.Second
	// stopMargin is what a stop may take beyond the drain deadline and the
	// kill timeout: the supervisor's own bookkeeping.
	stopMargin = 30 * time.Second
)

// started is a replica that is up, or the record of why it is not.
type started struct {
	replica *state.Replica
	client  supervisor.Client
}

// launch starts one replica's supervisor and waits for the health gate. It
// always returns a replica record: on failure its status is failed and
// last_error says why (nothing is left running; the launcher guarantees it).
// port is the port to listen on, 0 to pick a free one.
func (r *runner) launch(d *plan.Desired, pe *providers.PreparedEngine, id string, port, generation int, step Step) (started, error) {
	return r.launchWith(d, pe, id, port, generation, step, nil)
}

// launchSuccessor is launch for the successor of the recorded replica id:
// the state records the successor's run directory before it is spawned,
// so an apply killed before it records the outcome leaves nothing the next
// run does not know (see adoptSuccessors).
func (r *runner) launchSuccessor(d *plan.Desired, pe *providers.PreparedEngine, id string, port, generation int) (started, error) {
	return r.launchWith(d, pe, id, port, generation, StepStart, func(spec supervisor.Spec) error {
		return r.mutate(d.Addr, func(st *state.State) {
			if rep := st.Pools[d.Addr].Replica(id); rep != nil {
				rep.SuccessorRunDir, rep.SuccessorPort, rep.SuccessorGeneration = spec.RunDir, spec.Port, generation
			}
		})
	})
}

func (r *runner) launchWith(d *plan.Desired, pe *providers.PreparedEngine, id string, port, generation int, step Step, intent func(supervisor.Spec) error) (started, error) {
	addr := plan.ReplicaAddr(d.Addr, id)
	rec := &state.Replica{ID: id, Status: state.StatusFailed, Generation: generation}
	if !r.acquire() {
		rec.LastError = "not started: apply was interrupted"
		return started{replica: rec}, ErrInterrupted
	}
	defer r.release()
	r.hooks.pre(addr, step)

	if port == 0 {
		var err error
		if port, err = r.ports.pick(pe.Host); err != nil {
			rec.LastError = err.Error()
			r.hooks.post(addr, step, Result{}, err)
			return started{replica: rec}, err
		}
	}
	rpe := pe.ForReplica(id, port)
	spec := supervisorSpec(d, rpe, r.opts.Dirs, generation)
	if intent != nil {
		if err := intent(spec); err != nil {
			err = fmt.Errorf("recording the successor before starting it: %w", err)
			rec.LastError = err.Error()
			r.hooks.post(addr, step, Result{}, err)
			return started{replica: rec}, err
		}
	}
	return r.launchSpec(spec, rec, step)
}

// launchSpec launches the supervisor spec describes (the hooks' pre is
// already sent, a run slot held) and fills in rec from its first status.
func (r *runner) launchSpec(spec supervisor.Spec, rec *state.Replica, step Step) (started, error) {
	rec.Port, rec.RunDir, rec.Handoff = spec.Port, spec.RunDir, spec.HandoffPath
	rec.StartedAt = r.deps.Clock.Now().UTC()

	client, status, err := r.deps.Launcher.Launch(r.work, spec)
	if err != nil {
		rec.LastError = err.Error()
		rec.PID, rec.SupervisorPID = 0, 0
		r.hooks.post(spec.Addr, step, Result{Port: spec.Port}, err)
		return started{replica: rec}, err
	}
	rec.Status = string(status.State)
	rec.PID, rec.SupervisorPID = status.PID, status.SupervisorPID
	rec.ReadyAt = status.ReadyAt.UTC()
	if !status.StartedAt.IsZero() {
		rec.StartedAt = status.StartedAt.UTC()
	}
	r.hooks.post(spec.Addr, step, Result{PID: status.PID, Port: spec.Port}, nil)
	return started{replica: rec, client: client}, nil
}

// configuredPort is the port replica id listens on by the configuration:
// port + index, or 0 (pick one) when the pool has no fixed port.
func configuredPort(d *plan.Desired, id string) int {
	if d.Pool.Port > 0 {
		i, _ := plan.ReplicaIndex(id)
		return d.Pool.Port + i
	}
	return 0
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
			res, err := r.launch(d, pe, id, configuredPort(d, id), 0, step)
			if res.client != nil {
				_ = res.client.Close()
			}
			serr := r.mutate(d.Addr, func(st *state.State) { putReplica(st.Pools[d.Addr], res.replica) })
			if err == nil {
				err = serr
			}
			if err != nil {
				mu.Lock()
				errs = multierror.Append(errs, &Error{Addr: plan.ReplicaAddr(d.Addr, id), Err: err})
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return flatten(errs)
}

// handoffRule says what becomes of a stopped generation's handoff file.
type handoffRule int

const (
	// removeHandoff: the replica stops serving (delete, drain, restart,
	// drain_first replace): routers must stop sending to it.
	removeHandoff handoffRule = iota
	// keepHandoff: a successor already serves under the same name
	// (create_before_destroy) and owns the file now.
	keepHandoff
)

// stopReplica drains (or stops) a recorded replica that goes away, removes
// its handoff file, and drops it from state.
func (r *runner) stopReplica(poolAddr, id string, drain bool) error {
	rep := r.replica(poolAddr, id)
	if rep == nil {
		return nil
	}
	served := rep.Status == state.StatusReady
	start := r.deps.Clock.Now()
	if err := r.stopRecorded(plan.ReplicaAddr(poolAddr, id), rep, drain, removeHandoff); err != nil {
		if !errors.Is(err, ErrInterrupted) {
			_ = r.mutate(poolAddr, func(st *state.State) {
				if cur := st.Pools[poolAddr].Replica(id); cur != nil {
					cur.LastError = err.Error()
				}
			})
		}
		return err
	}
	took := r.deps.Clock.Now().Sub(start)
	return r.mutate(poolAddr, func(st *state.State) {
		if sp := st.Pools[poolAddr]; sp != nil {
			removeReplica(sp, id)
			if served {
				sp.RecordStop(took) // from serving to gone: what a drain_first gap is made of
			}
		}
	})
}

// stopRecorded ends one replica generation: drain through its supervisor
// when it serves, otherwise just stop it, making sure nothing it ran is
// left; then its run directory is removed.
func (r *runner) stopRecorded(addr string, rep *state.Replica, drain bool, rule handoffRule) error {
	if !r.acquire() {
		return ErrInterrupted
	}
	defer r.release()
	step := StepStop
	if drain && rep.Status == state.StatusReady {
		step = StepDrain
	}
	r.hooks.pre(addr, step)
	poolAddr, _ := plan.SplitReplicaAddr(addr)
	r.mu.Lock()
	timing := stopTimingOf(r.st.Pools[poolAddr])
	r.mu.Unlock()
	end, err := stopGeneration(r.work, r.stop, r.deps.Launcher, r.deps.Fs, rep, step == StepDrain, 0, timing)
	if err == nil {
		if rule == removeHandoff {
			err = removeHandoffFile(r.deps.Fs, rep)
		}
		if err == nil {
			err = removeRunDir(r.deps.Fs, rep)
		}
	}
	r.hooks.post(addr, step, Result{PID: end.pid, Port: rep.Port}, err)
	return err
}

// stopTiming is what bounds a stop: the pool's drain deadline and kill
// timeout as they were applied. watch, when set, runs while a drain waits
// (to show its progress) and must return once ctx is done.
type stopTiming struct {
	deadline time.Duration
	grace    time.Duration
	watch    func(ctx context.Context, c supervisor.Client)
}

// stopped is what a stop did: the engine pid it stopped (0 when none ran)
// and, after a drain, the status the drain ended in.
type stopped struct {
	pid     int
	drained supervisor.Status
}

func stopTimingOf(sp *state.Pool) stopTiming {
	t := stopTiming{deadline: config.DefaultDrain.Deadline, grace: killTimeout(sp)}
	if sp != nil && sp.Spec != nil {
		if d, err := time.ParseDuration(sp.Spec.Drain.Deadline); err == nil && d > 0 {
			t.deadline = d
		}
	}
	return t
}

// stopGeneration is the one stop path for apply, destroy and drain. With
// drain, the supervisor first waits for in-flight requests (up to deadline,
// or its own drain deadline when 0). A supervisor that does not answer
// in time is killed (its engine dies with it), and an engine left without
// its supervisor is killed too: nothing it ran stays behind.
//
// Reaching the supervisor is abandoned when interrupt closes (Ctrl-C): the
// replica stays recorded as it is, and ErrInterrupted is returned. Once it
// answers, the stop runs to its end. The pid returned is the engine that
// was stopped: the one the supervisor ran at the time (a restart since
// apply gave it a pid the state does not have), 0 when none ran.
func stopGeneration(ctx context.Context, interrupt <-chan struct{}, l supervisor.Launcher, fs afero.Fs, rep *state.Replica, drain bool, deadline time.Duration, t stopTiming) (stopped, error) {
	var out stopped
	if rep.RunDir == "" {
		return out, nil
	}
	out.pid = rep.PID
	actx, cancel := context.WithTimeout(ctx, attachTimeout)
	go func() {
		select {
		case <-interrupt:
			cancel()
		case <-actx.Done():
		}
	}()
	client, err := l.Attach(actx, rep.RunDir)
	interrupted := err != nil && isClosed(interrupt)
	cancel()
	if interrupted {
		return out, ErrInterrupted
	}
	if err == nil {
		if st, serr := client.Status(ctx); serr == nil {
			out.pid = st.PID
		}
		budget := t.grace + stopMargin
		if drain {
			budget += max(deadline, t.deadline)
		}
		sctx, cancel := context.WithTimeout(ctx, budget)
		if drain {
			out.drained, err = drainWatched(sctx, client, deadline, t.watch)
		}
		if err == nil || supervisorGone(err) {
			err = client.Stop(sctx, t.grace)
		}
		cancel()
		_ = client.Close()
	}
	if err != nil && !supervisorGone(err) {
		// It answers no more (hung) or could not stop its engine: kill the
		// supervisor; its engine dies with it (Pdeathsig). When there is no
		// supervisor to kill, the failure stands.
		killed, kerr := supervisor.KillSupervisor(fs, rep.RunDir, 10*time.Second)
		switch {
		case kerr != nil:
			return out, fmt.Errorf("stopping %s: %w; killing its supervisor failed too: %v", rep.ID, err, kerr)
		case !killed:
			return out, fmt.Errorf("stopping %s: %w", rep.ID, err)
		}
	}
	return out, killLeftover(fs, rep.RunDir, rep.PID)
}

// drainWatched drains through c, running watch (when set) until the drain
// has ended.
func drainWatched(ctx context.Context, c supervisor.Client, deadline time.Duration, watch func(context.Context, supervisor.Client)) (supervisor.Status, error) {
	if watch == nil {
		return c.DrainWithin(ctx, deadline)
	}
	wctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		watch(wctx, c)
	}()
	st, err := c.DrainWithin(ctx, deadline)
	stop()
	<-done
	return st, err
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// removeRunDir deletes a stopped generation's files (its log included).
func removeRunDir(fs afero.Fs, rep *state.Replica) error {
	if rep.RunDir == "" {
		return nil
	}
	if err := fs.RemoveAll(rep.RunDir); err != nil && !errors.Is(err, syscall.ENAMETOOLONG) {
		return fmt.Errorf("removing run directory %s: %w", rep.RunDir, err)
	}
	return nil
}

// removeHandoffFile removes the replica's handoff file: it goes away (or
// stops serving), and no successor took the name over.
func removeHandoffFile(fs afero.Fs, rep *state.Replica) error {
	if rep.Handoff == "" {
		return nil
	}
	// A name too long to exist was never written.
	if err := handoff.Remove(fs, rep.Handoff); err != nil && !errors.Is(err, syscall.ENAMETOOLONG) {
		return fmt.Errorf("removing handoff file: %w", err)
	}
	return nil
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
		// An id that is not rN (never written by llorch) is beyond too.
		if i, ok := plan.ReplicaIndex(rep.ID); !ok || i >= d.Pool.Replicas {
			out = append(out, rep.ID)
		}
	}
	return out
}

// replicaIDs are the replicas a create or replace covers: the change's own
// list when the plan gave one (-replace=pool.x/r1), else every configured
// replica.
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
		out[i] = plan.ReplicaID(i)
	}
	return out
}

func putReplica(sp *state.Pool, rep *state.Replica) {
	if sp == nil {
		return
	}
	for i, cur := range sp.Replicas {
		if cur.ID == rep.ID {
			recordStart(sp, cur, rep)
			sp.Replicas[i] = rep
			return
		}
	}
	recordStart(sp, nil, rep)
	sp.Replicas = append(sp.Replicas, rep)
	sort.Slice(sp.Replicas, func(i, j int) bool {
		a, _ := plan.ReplicaIndex(sp.Replicas[i].ID)
		b, _ := plan.ReplicaIndex(sp.Replicas[j].ID)
		return a < b
	})
}

// recordStart remembers how long rep took from spawn to ready when it is
// a start this run made (not the record of an engine already known).
func recordStart(sp *state.Pool, old, rep *state.Replica) {
	if rep.Status != state.StatusReady || rep.StartedAt.IsZero() || !rep.ReadyAt.After(rep.StartedAt) {
		return
	}
	if old != nil && old.ReadyAt.Equal(rep.ReadyAt) {
		return
	}
	sp.RecordStart(rep.ReadyAt.Sub(rep.StartedAt))
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

// isReplicaAddr tells a replica's change (pool.embed["a/b"]/r1) from its
// pool's (pool.embed["a/b"]): a "/" inside a key does not count.
func isReplicaAddr(addr string) bool {
	_, id := plan.SplitReplicaAddr(addr)
	return id != ""
}

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
