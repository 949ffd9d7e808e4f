package apply_test

import (
	"errors"
	"testing"

	"github.com/llorch/llorch/apply"
	"github.com/llorch/llorch/internal/faultfs"
	"github.com/llorch/llorch/plan"
	"github.com/llorch/llorch/state/local"
)

// A run whose final write of the state never happens (killed after its
// last step, or the write failed) leaves every step in the journal: a new
// process reads a state that records every engine started, and a plan
// made before the run is stale.
func TestEveryStartedReplicaIsRecordedWithoutTheFold(t *testing.T) {
	e := newEnv(t)
	cfg := configOf(pool("pool.chat", replicas(3)), pool("pool.embed"))
	p := e.plan(cfg, plan.Options{})
	e.store.FailWrites = errors.New("killed")
	_, err := e.run(e.ctx, cfg, p, 0)
	var se *apply.StateSaveError
	if !errors.As(err, &se) {
		t.Fatalf("Run = %v, want a *apply.StateSaveError for the fold", err)
	}
	if w, a := e.store.saves(); w != 0 || a == 0 {
		t.Errorf("%d writes and %d appends; want no write and the steps appended", w, a)
	}

	st, err := local.New(e.fs, stateDir, local.Options{}).Read(e.ctx)
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	launched := map[string]int{}
	for _, s := range e.fake.Launches() {
		launched[s.RunDir]++
	}
	recorded := 0
	for _, addr := range st.Addrs() {
		for _, r := range st.Pools[addr].Replicas {
			if launched[r.RunDir] == 0 || r.Status != "ready" || r.PID == 0 {
				t.Errorf("%s/%s recorded as %+v, which was not what was launched", addr, r.ID, r)
			}
			recorded++
		}
	}
	if recorded != len(launched) || recorded != 4 {
		t.Errorf("%d replicas recorded, %d launched; want 4 of each", recorded, len(launched))
	}
	if st.Serial <= p.Prior.Serial {
		t.Errorf("the state read is at serial %d, the plan's at %d: the plan would not be stale", st.Serial, p.Prior.Serial)
	}

	// The next run folds the journal into the state file.
	e.store.FailWrites = nil
	if _, err := e.run(e.ctx, cfg, e.plan(cfg, plan.Options{}), 0); err != nil {
		t.Fatalf("next Run: %v", err)
	}
	if w, _ := e.store.saves(); w != 1 {
		t.Errorf("the next run wrote the state %d times, want once", w)
	}
	if _, err := e.fs.Stat(stateDir + "/" + local.JournalFile); err == nil {
		t.Error("the journal is still there after a run that folded it")
	}
}

// A journal append that fails (a failed fsync) fails the step's save and
// leaves no torn record; the final write still records the step. The
// first append records the pool, the second the replica that was started.
func TestAFailedAppendIsReportedAndTheFoldRecordsTheStep(t *testing.T) {
	e := newEnv(t)
	ffs := faultfs.New(e.fs).FailOn(faultfs.Sync, 2)
	e.store = &recordingStore{Store: local.New(ffs, stateDir, local.Options{Version: "0.1.0-test"})}
	cfg := configOf(pool("pool.chat"))
	_, err := e.run(e.ctx, cfg, e.plan(cfg, plan.Options{}), 1)
	var se *apply.StateSaveError
	if !errors.As(err, &se) || !errors.Is(err, faultfs.ErrInjected) {
		t.Fatalf("Run = %v, want the failed append as a *apply.StateSaveError", err)
	}
	containsAll(t, "error", err.Error(), "saving state: appending to the state journal "+stateDir+"/"+local.JournalFile)
	st := e.stored()
	if r := replicaOf(t, st, "pool.chat", "r0"); r.Status != "ready" || r.PID == 0 {
		t.Errorf("r0 recorded as %+v", r)
	}
	if _, err := e.fs.Stat(stateDir + "/" + local.JournalFile); err == nil {
		t.Error("the journal is still there after the fold")
	}
	if n := len(e.fake.Launches()); n != 1 {
		t.Errorf("%d launches, want 1", n)
	}
}
