package apply

import (
	"context"
	"fmt"

	"github.com/llorch/llorch/internal/supervisor"
	"github.com/llorch/llorch/plan"
	"github.com/llorch/llorch/state"
)

// adoptSuccessors settles the successors an apply recorded before it
// spawned them but did not live to record the outcome of (it was killed
// with -9 mid-replace). A successor that serves is adopted: the
// predecessor, if it still runs, is drained and stopped (the successor
// already holds the handoff file), and the successor takes its record. A
// successor that does not serve is stopped and forgotten, and the
// predecessor stays. Either way nothing that serves is stopped before
// something else serves, and no supervisor is left unknown. It returns the
// replica addresses it settled, whose refresh observations are stale.
func (r *runner) adoptSuccessors() map[string]bool {
	type pending struct {
		poolAddr string
		rep      *state.Replica
	}
	var todo []pending
	r.mu.Lock()
	for _, addr := range r.st.Addrs() {
		for _, rep := range r.st.Pools[addr].Replicas {
			if rep.HasSuccessor() {
				cp := *rep
				todo = append(todo, pending{addr, &cp})
			}
		}
	}
	r.mu.Unlock()
	settled := map[string]bool{}
	for _, p := range todo {
		addr := plan.ReplicaAddr(p.poolAddr, p.rep.ID)
		if err := r.adoptSuccessor(p.poolAddr, p.rep); err != nil {
			r.fail(addr, err)
		}
		settled[addr] = true
	}
	return settled
}

func (r *runner) adoptSuccessor(poolAddr string, old *state.Replica) error {
	addr := plan.ReplicaAddr(poolAddr, old.ID)
	succ := &state.Replica{
		ID: old.ID, RunDir: old.SuccessorRunDir, Port: old.SuccessorPort, Generation: old.SuccessorGeneration,
		Handoff: old.Handoff, Status: state.StatusExited,
	}
	live, serves := r.liveStatus(succ.RunDir)
	if !serves {
		// Not serving (still loading, failed, or gone): stop whatever runs
		// there; the predecessor and the plan stand.
		if err := r.stopRecorded(addr+" (unrecorded successor)", succ, false, keepHandoff); err != nil {
			return fmt.Errorf("stopping the successor an interrupted apply left in %s: %w", succ.RunDir, err)
		}
		return r.mutate(poolAddr, func(st *state.State) {
			if rep := st.Pools[poolAddr].Replica(old.ID); rep != nil {
				rep.ClearSuccessor()
			}
		})
	}
	r.hooks.pre(addr, StepAdopt)
	if err := r.stopRecorded(addr, old, true, keepHandoff); err != nil {
		r.hooks.post(addr, StepAdopt, Result{}, err)
		return fmt.Errorf("the successor in %s serves, but its predecessor did not stop: %w", succ.RunDir, err)
	}
	succ.Status, succ.PID, succ.SupervisorPID = string(live.State), live.PID, live.SupervisorPID
	succ.StartedAt, succ.ReadyAt = live.StartedAt.UTC(), live.ReadyAt.UTC()
	if live.Port > 0 {
		succ.Port = live.Port
	}
	succ.Restarts = live.Restarts
	err := r.mutate(poolAddr, func(st *state.State) { putReplica(st.Pools[poolAddr], succ) })
	r.hooks.post(addr, StepAdopt, Result{PID: succ.PID, Port: succ.Port}, err)
	return err
}

// liveStatus asks the supervisor in runDir for its status; serves is true
// when it answers and its engine is ready.
func (r *runner) liveStatus(runDir string) (supervisor.Status, bool) {
	ctx, cancel := context.WithTimeout(r.work, attachTimeout)
	defer cancel()
	client, err := r.deps.Launcher.Attach(ctx, runDir)
	if err != nil {
		return supervisor.Status{}, false
	}
	defer client.Close()
	st, err := client.Status(ctx)
	return st, err == nil && st.State == supervisor.Ready
}
