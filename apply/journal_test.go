package apply_test

import (
	"errors"
	"testing"

	"github.com/llorch/llorch/apply"
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
