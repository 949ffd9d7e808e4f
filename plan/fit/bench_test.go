package fit

import (
	"fmt"
	"testing"
)

// BenchmarkCheck is the fit of a 1000-pool plan: 999 pools on the two
// GPUs of machine() and the host, sharing ten model files, and one pool
// that does not fit (so the diagnostic is built too).
func BenchmarkCheck(b *testing.B) {
	const n = 1000
	pools := make([]Pool, n)
	for i := range pools {
		e := gpuEstimate(i%2, fmt.Sprintf("/m/%d.gguf", i%10))
		e.GPUs[0].Weights, e.GPUs[0].KVCache, e.GPUs[0].Compute = 1<<20, 1<<20, 1<<20
		e.Host.Weights, e.Host.Compute, e.Host.Other = 1<<20, 1<<20, 1<<20
		pools[i] = poolAt(fmt.Sprintf("pool.p%04d", i), i+1, 1, []int{i % 2}, e)
	}
	pools[n-1].Estimate = gpuEstimate(0, "/m/big.gguf")
	pools[n-1].Replicas = 2
	for b.Loop() {
		if rep := Check(machine(), pools); len(rep.Diags) != 1 {
			b.Fatalf("diags: %v", rep.Diags)
		}
	}
}
