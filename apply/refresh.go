package apply

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/spf13/afero"

	"github.com/llorch/llorch/internal/clock"
	"github.com/llorch/llorch/internal/supervisor"
	"github.com/llorch/llorch/plan"
	"github.com/llorch/llorch/state"
)

// Refresher reads each replica's live status from its supervisor; it
// implements plan.Refresher. One Refresher serves one refresh (one plan):
// it looks at each engine binary and model file once and remembers what it
// saw, so the next refresh needs a new Refresher.
type Refresher struct {
	Launcher supervisor.Launcher
	Fs       afero.Fs
	// RunRoot is <state_dir>/run, where Unknown looks for supervisors the
	// state does not know; "" looks nowhere.
	RunRoot string
	// Timeout bounds one supervisor's answer (default 2s): a hung
	// supervisor must not hang the plan.
	Timeout time.Duration
	Clock   clock.Clock // nil: the wall clock

	stats sync.Map // path → what the file looked like when first asked

	socksOnce sync.Once
	socks     *supervisor.ControlSockets // nil: not known, check each one
}

var _ plan.Refresher = (*Refresher)(nil)

// Refresh asks the replica's supervisor for its status. A replica is Alive
// while its supervisor answers and is keeping the engine up (starting,
// ready, unhealthy, restarting, backoff, draining); failed (circuit breaker
// open), stopped, or a supervisor that does not answer are not.
func (rf *Refresher) Refresh(ctx context.Context, pool *state.Pool, r *state.Replica) (plan.Observed, error) {
	obs, _ := rf.observe(ctx, pool, r)
	return obs, nil
}

// observe is Refresh plus the supervisor's full status when it answered.
func (rf *Refresher) observe(ctx context.Context, pool *state.Pool, r *state.Replica) (plan.Observed, *supervisor.Status) {
	now := time.Now
	if rf.Clock != nil {
		now = rf.Clock.Now
	}
	obs := plan.Observed{CheckedAt: now().UTC(), Restarts: r.Restarts}
	if pool != nil && pool.Prepared != nil {
		obs.BinaryChanged = rf.changedOnDisk(pool.Prepared.BinaryPath, pool.Prepared.BinarySize, pool.Prepared.BinaryMtime)
		obs.ModelChanged = rf.changedOnDisk(pool.Prepared.ModelPath, pool.Prepared.ModelSize, pool.Prepared.ModelMtime)
	}
	if r.RunDir == "" {
		obs.Status = r.Status
		obs.Reason = r.LastError
		if obs.Reason == "" {
			obs.Reason = "never started"
		}
		return obs, nil
	}
	live := func(st supervisor.Status) (plan.Observed, *supervisor.Status) {
		obs.Status = string(st.State)
		obs.PID = st.PID
		obs.Restarts = r.Restarts + st.Restarts
		obs.Alive = st.State != supervisor.Failed && st.State != supervisor.Stopped
		obs.Cause = st.Cause
		if !obs.Alive {
			obs.Reason = st.LastError
			if obs.Reason == "" {
				obs.Reason = "replica is " + string(st.State)
			}
		}
		return obs, &st
	}
	// A successor that an interrupted apply started and left serving is
	// what serves: the next apply adopts it (adoptSuccessors).
	if r.HasSuccessor() {
		if st, ok := rf.liveAt(ctx, r.SuccessorRunDir); ok && st.State == supervisor.Ready {
			return live(st)
		}
	}
	if st, ok := rf.liveAt(ctx, r.RunDir); ok {
		return live(st)
	}
	// Nobody answers. Either it was drained on purpose (`llorch drain`
	// recorded so), or the supervisor was killed (its engine died with it)
	// or never finished starting: status.json holds its last word.
	if r.Status == state.StatusStopped && strings.HasPrefix(r.LastError, drainedMark) {
		obs.Status, obs.Reason = state.StatusStopped, r.LastError
		return obs, nil
	}
	obs.Status = state.StatusExited
	last, rerr := supervisor.ReadStatus(rf.Fs, r.RunDir)
	obs.Cause = last.Cause
	switch {
	case rerr == nil && last.LastError != "":
		obs.Reason = fmt.Sprintf("supervisor (pid %d) is not running; last error: %s", last.SupervisorPID, last.LastError)
	case rerr == nil:
		obs.Reason = fmt.Sprintf("supervisor (pid %d) is not running", last.SupervisorPID)
	default:
		obs.Reason = fmt.Sprintf("supervisor (pid %d) is not running", r.SupervisorPID)
	}
	return obs, nil
}

// liveAt is the status of the supervisor running in runDir, if one runs.
// The supervisor mirrors its status to status.json atomically on every
// change: while it runs, reading that file is as good as asking it.
func (rf *Refresher) liveAt(ctx context.Context, runDir string) (supervisor.Status, bool) {
	if st, ok := supervisor.RunningIn(rf.Fs, runDir, rf.controlSockets()); ok {
		return st, true
	}
	timeout := rf.Timeout
	if timeout <= 0 {
		timeout = 2 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	client, err := rf.Launcher.Attach(ctx, runDir)
	if err != nil {
		return supervisor.Status{}, false
	}
	defer client.Close()
	st, err := client.Status(ctx)
	return st, err == nil
}

// controlSockets returns the listening unix sockets, asked of the kernel
// once per refresh. Only the OS file system has real supervisors behind
// its run directories.
func (rf *Refresher) controlSockets() *supervisor.ControlSockets {
	rf.socksOnce.Do(func() {
		if _, osFs := rf.Fs.(*afero.OsFs); osFs {
			rf.socks, _ = supervisor.ListeningControlSockets()
		}
	})
	return rf.socks
}

// changedOnDisk reports whether the file at path is not the one recorded:
// size or modification time differ, or it is gone. Nothing is hashed, and
// each file is looked at once per refresh: a thousand replicas usually
// share one binary and a few models.
func (rf *Refresher) changedOnDisk(path string, size int64, mtime time.Time) bool {
	if path == "" || (size == 0 && mtime.IsZero()) {
		return false
	}
	type seen struct {
		size  int64
		mtime time.Time
		ok    bool
	}
	v, found := rf.stats.Load(path)
	if !found {
		var s seen
		if fi, err := rf.Fs.Stat(path); err == nil {
			s = seen{size: fi.Size(), mtime: fi.ModTime(), ok: true}
		}
		v, _ = rf.stats.LoadOrStore(path, s)
	}
	s := v.(seen)
	return !s.ok || s.size != size || !s.mtime.Equal(mtime)
}

// LiveHandoffs returns the handoff paths of st's replicas that obs saw
// alive: their engines run, so their files are current.
func LiveHandoffs(st *state.State, obs plan.Observations) map[string]bool {
	live := map[string]bool{}
	for addr, p := range st.Pools {
		for _, r := range p.Replicas {
			if r.Handoff != "" && obs[plan.ReplicaAddr(addr, r.ID)].Alive {
				live[filepath.Clean(r.Handoff)] = true
			}
		}
	}
	return live
}
