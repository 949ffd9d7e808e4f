package plan

import (
	"fmt"
	"testing"

	"github.com/llorch/llorch/plan/plantest"
	"github.com/llorch/llorch/state"
)

// BenchmarkDiff measures Diff against an empty state (everything is
// created) and against a state where every pool is applied (no change),
// with every replica observed ready.
func BenchmarkDiff(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		var desired []*Desired
		applied := map[string]*state.Pool{}
		obs := Observations{}
		for i := range n {
			p := plantest.Pool(fmt.Sprintf("pool.p%04d", i))
			p.Replicas = 2
			p.Env = map[string]string{"LLAMA_ARG_THREADS": "8"}
			p.Labels = map[string]string{"team": "search"}
			plantest.SetProviderBlock(b, p, "n_gpu_layers = 99\napi_key = \"k\"", nil)
			d := testDesired(b, p, nil)
			desired = append(desired, d)
			applied[d.Addr] = recorded(b, d)
			for _, r := range applied[d.Addr].Replicas {
				obs[ReplicaAddr(d.Addr, r.ID)] = Observed{Status: state.StatusReady, Alive: true, PID: r.PID}
			}
		}
		empty := stateWith(nil)
		full := stateWith(applied)
		b.Run(fmt.Sprintf("pools=%d/state=empty", n), func(b *testing.B) {
			for b.Loop() {
				if p, _ := Diff(desired, empty, nil, Options{}); len(p.Changes) != n {
					b.Fatalf("%d changes", len(p.Changes))
				}
			}
		})
		b.Run(fmt.Sprintf("pools=%d/state=applied", n), func(b *testing.B) {
			for b.Loop() {
				if p, _ := Diff(desired, full, obs, Options{Refresh: true}); !p.Empty() {
					b.Fatalf("%d changes", len(p.Changes))
				}
			}
		})
	}
}
