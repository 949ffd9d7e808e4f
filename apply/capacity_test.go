package apply_test

import (
	"strings"
	"testing"

	"github.com/llorch/llorch/apply"
	"github.com/llorch/llorch/plan"
)

// An apply that cannot fit in the tasks the machine has left is refused
// before anything starts, not halfway with fork/exec errors.
func TestApplyRefusesWhatTheMachineHasNoTasksFor(t *testing.T) {
	e := newEnv(t)
	cfg := configOf(pool("pool.chat", replicas(2)), pool("pool.embed"))
	p := e.plan(cfg, plan.Options{})
	deps := e.deps()
	deps.TaskRoom = func() (apply.TaskRoom, error) {
		return apply.TaskRoom{Free: 17, Limit: "kernel.pid_max is 32768 and 32751 tasks are running"}, nil
	}
	_, err := apply.Run(e.ctx, p, deps, e.options(cfg, 0))
	if err == nil {
		t.Fatal("Run started 3 replicas with room for 17 tasks")
	}
	containsAll(t, "error", err.Error(),
		"this apply starts 3 replicas, which need at least 18 tasks",
		"the machine has room for 17 more: kernel.pid_max is 32768 and 32751 tasks are running",
		"Nothing was started", "apply fewer pools at a time (-target)")
	if n := len(e.fake.launchedAddrs()); n != 0 {
		t.Errorf("%d replicas launched", n)
	}

	deps.TaskRoom = func() (apply.TaskRoom, error) { return apply.TaskRoom{Free: 18, Limit: "x"}, nil }
	if _, err := apply.Run(e.ctx, p, deps, e.options(cfg, 0)); err != nil {
		t.Fatalf("Run with room for exactly what it needs: %v", err)
	}
}

func TestHostTaskRoomReadsTheKernelsLimits(t *testing.T) {
	r, err := apply.HostTaskRoom()
	if err != nil {
		t.Fatal(err)
	}
	if r.Free <= 0 || !(strings.Contains(r.Limit, "kernel.") || strings.Contains(r.Limit, "pids cgroup")) {
		t.Errorf("HostTaskRoom = %+v", r)
	}
}
