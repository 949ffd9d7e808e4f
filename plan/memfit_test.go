package plan

import (
	"testing"

	"github.com/hashicorp/hcl/v2"

	"github.com/llorch/llorch/plan/fit"
	"github.com/llorch/llorch/state"
)

func TestRunningReplicas(t *testing.T) {
	prior := state.New("")
	prior.Pools["pool.chat"] = &state.Pool{Replicas: []*state.Replica{
		{ID: "r0", Status: state.StatusReady},
		{ID: "r1", Status: state.StatusReady},
		{ID: "r2", Status: state.StatusFailed},
		{ID: "r3", Status: state.StatusStarting},
	}}
	obs := Observations{
		"pool.chat/r0": {Alive: true},
		"pool.chat/r1": {Alive: false, Status: state.StatusFailed},
	}
	// r0 is alive, r1 refreshed dead, r2 recorded failed, r3 not refreshed
	// and recorded starting.
	if n := running("pool.chat", prior, obs); n != 2 {
		t.Errorf("running = %d, want 2 (r0 alive, r3 recorded starting)", n)
	}
	if n := running("pool.new", prior, obs); n != 0 {
		t.Errorf("a pool the state does not know runs %d replicas", n)
	}
}

func TestFitReportTravelsInTheError(t *testing.T) {
	rep := &fit.Report{}
	d := &hcl.Diagnostic{Severity: hcl.DiagError, Extra: rep}
	if FitReport(d) != rep || FitReport(&hcl.Diagnostic{}) != nil {
		t.Error("FitReport does not give back the report a diagnostic carries")
	}
}
