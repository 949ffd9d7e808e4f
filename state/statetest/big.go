package statetest

import (
	"fmt"

	"github.com/llorch/llorch/state"
)

// Big is a state of lineage with n pools of two ready replicas each, with the
// spec and prepared engine apply records.
func Big(lineage string, n int) *state.State {
	st := state.New(lineage)
	for i := range n {
		addr := fmt.Sprintf("pool.p%04d", i)
		st.Pools[addr] = &state.Pool{
			Engine:   "llamacpp",
			SpecHash: "sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae",
			Spec: &state.Spec{
				Engine: "llamacpp", Replicas: 2, Host: "127.0.0.1", Port: 8000 + 2*i, Ctx: 4096,
				Model:   state.ModelSpec{Ref: "file:/srv/models/q.gguf"},
				Flags:   []string{"--parallel", "4"},
				Env:     map[string]string{"LLAMA_ARG_THREADS": "8"},
				Labels:  map[string]string{"team": "search"},
				Health:  state.HealthSpec{Path: "/health", Interval: "100ms", StartTimeout: "2m0s", LiveInterval: "5s", Failures: 3},
				Restart: state.RestartSpec{Policy: "always", InitialBackoff: "1s", MaxBackoff: "1m0s", Multiplier: 2, Jitter: 0.1, ResetAfter: "5m0s", MaxFailures: 5, Cooldown: "5m0s"},
				Drain:   state.DrainSpec{Deadline: "30s"},
				Update:  state.UpdateSpec{Strategy: "create_before_destroy"},
			},
			Prepared: &state.Prepared{BinaryPath: "/usr/local/bin/llama-server", Args: []string{"--parallel", "4", "--metrics"}, Host: "127.0.0.1", Port: 8000 + 2*i, ModelPath: "/srv/models/q.gguf", EngineVersion: "llamacpp-b6600-cpu", DeviceMask: "0"},
			Replicas: []*state.Replica{
				{ID: "r0", Port: 8000 + 2*i, PID: 10000 + i, SupervisorPID: 20000 + i, Status: state.StatusReady},
				{ID: "r1", Port: 8001 + 2*i, PID: 30000 + i, SupervisorPID: 40000 + i, Status: state.StatusReady},
			},
		}
	}
	return st
}
