package apply

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/spf13/afero"

	"github.com/llorch/llorch/internal/parallel"
	"github.com/llorch/llorch/internal/supervisor"
	"github.com/llorch/llorch/plan"
	"github.com/llorch/llorch/state"
)

// ReplicaStatus is one line of `llorch status`.
type ReplicaStatus struct {
	Addr          string    `json:"address"`
	Replica       string    `json:"replica"`
	State         string    `json:"state"`
	PID           int       `json:"pid"`
	SupervisorPID int       `json:"supervisor_pid"`
	Port          int       `json:"port"`
	Uptime        string    `json:"uptime"`
	ReadyAt       time.Time `json:"ready_at,omitzero"`
	Restarts      int       `json:"restarts"`
	LastError     string    `json:"last_error"`
	Handoff       string    `json:"handoff,omitempty"`
	// NotInState marks a supervisor running in a run directory that no
	// replica of the state names; apply and destroy stop it.
	// Cause classifies the engine's last end when it did not serve
	// (model_load_failed, out_of_memory, bad_argument, port_in_use,
	// crashed); CauseLine is the log line that proved it.
	Cause      string `json:"cause,omitempty"`
	CauseLine  string `json:"cause_line,omitempty"`
	NotInState bool   `json:"not_in_state,omitempty"`
	RunDir     string `json:"run_dir,omitempty"`
}

// UnknownStatuses reports the supervisors running under runRoot that st
// does not know, so that status shows every process llorch started.
func UnknownStatuses(ctx context.Context, fs afero.Fs, runRoot string, st *state.State) []ReplicaStatus {
	unknown, err := (&Refresher{Fs: fs, RunRoot: runRoot}).Unknown(ctx, st)
	if err != nil {
		return nil
	}
	out := make([]ReplicaStatus, 0, len(unknown))
	for _, u := range unknown {
		addr := u.Addr
		if addr == "" {
			addr = filepath.Base(u.RunDir)
		}
		_, id := plan.SplitReplicaAddr(addr)
		out = append(out, ReplicaStatus{
			Addr: addr, Replica: id, State: u.Status, PID: u.PID, SupervisorPID: u.SupervisorPID, Port: u.Port,
			LastError:  "not in the state; \"llorch apply\" or \"llorch destroy\" stops it",
			NotInState: true, RunDir: u.RunDir,
		})
	}
	return out
}

// Statuses asks every recorded replica's supervisor for its live status,
// concurrently; a supervisor that does not answer shows as stopped with
// the reason.
func Statuses(ctx context.Context, l supervisor.Launcher, fs afero.Fs, st *state.State, now time.Time) []ReplicaStatus {
	rf := &Refresher{Launcher: l, Fs: fs}
	var out []ReplicaStatus
	for _, addr := range st.Addrs() {
		for _, r := range st.Pools[addr].Replicas {
			out = append(out, ReplicaStatus{
				Addr: plan.ReplicaAddr(addr, r.ID), Replica: r.ID, State: r.Status, PID: r.PID,
				SupervisorPID: r.SupervisorPID, Port: r.Port, ReadyAt: r.ReadyAt,
				Restarts: r.Restarts, LastError: r.LastError, Handoff: r.Handoff,
			})
		}
	}
	// Every replica is reported (the loop itself ignores cancellation);
	// each supervisor's answer is bounded by ctx.
	_ = parallel.For(context.WithoutCancel(ctx), len(out), 16, func(i int) {
		rs := &out[i]
		poolAddr, id := plan.SplitReplicaAddr(rs.Addr)
		p := st.Pools[poolAddr]
		r := p.Replica(id)
		obs, live := rf.observe(ctx, p, r)
		rs.State = obs.Status
		if live != nil {
			rs.PID, rs.Restarts = live.PID, r.Restarts+live.Restarts
			rs.SupervisorPID, rs.ReadyAt = live.SupervisorPID, live.ReadyAt
			rs.Cause, rs.CauseLine = live.Cause, live.CauseLine
			// What the last apply recorded (a replacement that failed while
			// this engine kept serving) comes first: the supervisor does not
			// know it.
			rs.LastError = joinErrors(r.LastError, live.LastError)
			if live.Port > 0 {
				rs.Port = live.Port
			}
		} else {
			rs.PID = 0
			rs.LastError = obs.Reason
			if !obs.Alive && r.LastError != "" {
				// What the apply recorded says why (the supervisor's own
				// last word is in it when it failed the start).
				rs.LastError = r.LastError
			}
			if r.RunDir != "" {
				if last, err := supervisor.ReadStatus(fs, r.RunDir); err == nil {
					rs.Cause, rs.CauseLine = last.Cause, last.CauseLine
				}
			}
		}
		// The supervisor's word is not enough: one that is paused or hung
		// cannot record that its engine died. (Only real run directories
		// have real processes behind them.)
		if _, osFs := fs.(*afero.OsFs); osFs && live != nil && rs.PID > 0 && !supervisor.Alive(rs.PID) {
			rs.LastError = joinErrors(fmt.Sprintf("engine pid %d is not running, and its supervisor (pid %d) has not recorded why", rs.PID, rs.SupervisorPID), rs.LastError)
			rs.State, rs.PID = state.StatusExited, 0
		}
		if rs.State == string(supervisor.Ready) && !rs.ReadyAt.IsZero() {
			rs.Uptime = now.Sub(rs.ReadyAt).Round(time.Second).String()
		}
	})
	return out
}

// joinErrors joins two error texts with "; ", leaving out an empty or
// repeated one.
func joinErrors(a, b string) string {
	switch {
	case a == "" || a == b:
		return b
	case b == "" || strings.Contains(a, b):
		return a
	}
	return a + "; " + b
}

// DrainResult says what Drain did to one replica. CutOff is set when the
// drain deadline, not the end of the work, stopped the engine: InFlight
// requests (supervisor.InFlightUnknown when the engine gave no counts)
// were cut off.
type DrainResult struct {
	Addr     string
	Err      error
	CutOff   bool
	InFlight int
	Deadline time.Duration // the deadline that applied
}

// DrainOptions tune Drain. Deadline overrides the pool's drain.deadline
// when positive. Progress, when set, is called with the supervisor's
// status once a replica has drained for ProgressEvery and every
// ProgressEvery after, while it still drains.
type DrainOptions struct {
	Deadline      time.Duration
	Now           func() time.Time
	Progress      func(addr string, st supervisor.Status, elapsed time.Duration)
	ProgressEvery time.Duration
}

// Drain drains and stops the replicas at addr (a pool or "pool.x/rN", as
// plan.ParseAddr reads it): the
// handoff file says draining, in-flight requests finish (or the deadline
// passes), then the engine stops. Drained replicas stay in state as
// "stopped", so the next plan shows them as needing a start. st is updated
// in place; the caller saves it.
func Drain(ctx context.Context, l supervisor.Launcher, fs afero.Fs, st *state.State, addr string, o DrainOptions) ([]DrainResult, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	a, err := plan.ParseAddr(addr)
	if err != nil {
		return nil, err
	}
	poolAddr, id, isReplica := a.PoolAddr(), a.Replica, a.IsReplica()
	p := st.Pools[poolAddr]
	if p == nil {
		return nil, fmt.Errorf("%s is not in the state; run \"llorch state list\" to see what is", poolAddr)
	}
	var targets []*state.Replica
	for _, r := range p.Replicas {
		if !isReplica || r.ID == id {
			targets = append(targets, r)
		}
	}
	if len(targets) == 0 {
		if !isReplica {
			return nil, fmt.Errorf("%s has no replicas to drain", poolAddr)
		}
		return nil, fmt.Errorf("%s has no replica %s; run \"llorch state list\" to see them", poolAddr, id)
	}
	results := make([]DrainResult, len(targets))
	var wg sync.WaitGroup
	for i, r := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			addr := plan.ReplicaAddr(poolAddr, r.ID)
			timing := stopTimingOf(p)
			if o.Progress != nil && o.ProgressEvery > 0 {
				timing.watch = func(ctx context.Context, c supervisor.Client) {
					watchDrain(ctx, c, o.ProgressEvery, func(st supervisor.Status, elapsed time.Duration) { o.Progress(addr, st, elapsed) })
				}
			}
			end, err := stopGeneration(ctx, ctx.Done(), l, fs, r, true, o.Deadline, timing)
			if err == nil {
				err = removeHandoffFile(fs, r)
			}
			deadline := timing.deadline
			if o.Deadline > 0 {
				deadline = o.Deadline
			}
			results[i] = DrainResult{Addr: addr, Err: err, CutOff: end.drained.DrainCutOff, InFlight: end.drained.InFlight, Deadline: deadline}
		}()
	}
	wg.Wait()
	for i, r := range targets {
		if results[i].Err != nil {
			r.LastError = results[i].Err.Error()
			continue
		}
		// The run directory stays, so `llorch logs` still shows how the
		// engine ended; the next start of this replica replaces it.
		r.Status = state.StatusStopped
		r.PID, r.SupervisorPID = 0, 0
		r.LastError = drainedMark + o.Now().UTC().Format(time.RFC3339)
	}
	return results, nil
}

// watchDrain reports c's status every `every` until ctx is done, while the
// replica drains.
func watchDrain(ctx context.Context, c supervisor.Client, every time.Duration, report func(st supervisor.Status, elapsed time.Duration)) {
	t := time.NewTicker(every)
	defer t.Stop()
	start := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		st, err := c.Status(ctx)
		if err != nil || st.State != supervisor.Draining || ctx.Err() != nil {
			continue
		}
		report(st, time.Since(start))
	}
}

// drainedMark starts the last_error of a replica stopped by `llorch
// drain`: refresh tells it from one that died.
const drainedMark = "drained by llorch drain at "
