package apply

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/spf13/afero"

	"github.com/llorch/llorch/internal/supervisor"
	"github.com/llorch/llorch/plan"
	"github.com/llorch/llorch/state"
)

// Refresher reads each replica's live status from its supervisor; it
// implements plan.Refresher.
type Refresher struct {
	Launcher supervisor.Launcher
	Fs       afero.Fs
	// Timeout bounds one supervisor's answer (default 2s): a hung
	// supervisor must not hang the plan.
	Timeout time.Duration
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
	obs := plan.Observed{CheckedAt: time.Now().UTC(), Restarts: r.Restarts}
	if pool != nil && pool.Prepared != nil {
		obs.BinaryChanged = changedOnDisk(pool.Prepared.BinaryPath, pool.Prepared.BinarySize, pool.Prepared.BinaryMtime)
		obs.ModelChanged = changedOnDisk(pool.Prepared.ModelPath, pool.Prepared.ModelSize, pool.Prepared.ModelMtime)
	}
	if r.RunDir == "" {
		obs.Status = r.Status
		obs.Reason = r.LastError
		if obs.Reason == "" {
			obs.Reason = "never started"
		}
		return obs, nil
	}
	timeout := rf.Timeout
	if timeout <= 0 {
		timeout = 2 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	client, err := rf.Launcher.Attach(ctx, r.RunDir)
	if err == nil {
		defer client.Close()
		var st supervisor.Status
		if st, err = client.Status(ctx); err == nil {
			obs.Status = string(st.State)
			obs.PID = st.PID
			obs.Restarts = r.Restarts + st.Restarts
			obs.Alive = st.State != supervisor.Failed && st.State != supervisor.Stopped
			if !obs.Alive {
				obs.Reason = st.LastError
				if obs.Reason == "" {
					obs.Reason = "replica is " + string(st.State)
				}
			}
			return obs, &st
		}
	}
	// Nobody answers: the supervisor was killed (its engine died with it) or
	// never finished starting. status.json holds its last word.
	obs.Status = state.StatusStopped
	last, rerr := supervisor.ReadStatus(rf.Fs, r.RunDir)
	switch {
	case r.Status == state.StatusStopped && r.LastError != "":
		obs.Reason = r.LastError // drained on purpose: say so
	case rerr == nil && last.LastError != "":
		obs.Reason = fmt.Sprintf("supervisor (pid %d) is not running; last error: %s", last.SupervisorPID, last.LastError)
	case rerr == nil:
		obs.Reason = fmt.Sprintf("supervisor (pid %d) is not running", last.SupervisorPID)
	default:
		obs.Reason = fmt.Sprintf("supervisor (pid %d) is not running", r.SupervisorPID)
	}
	return obs, nil
}

// changedOnDisk reports whether the file at path is not the one recorded:
// size or modification time differ, or it is gone. Nothing is hashed.
func changedOnDisk(path string, size int64, mtime time.Time) bool {
	if path == "" || (size == 0 && mtime.IsZero()) {
		return false
	}
	fi, err := os.Stat(path)
	if err != nil {
		return true
	}
	return fi.Size() != size || !fi.ModTime().Equal(mtime)
}
