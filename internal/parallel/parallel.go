// Package parallel runs independent pieces of work on a few goroutines.
package parallel

import (
	"context"
	"sync"
	"sync/atomic"
)

// For calls fn(i) for every i in [0, n), on at most workers goroutines at a
// time. Once ctx is done it starts no more calls, waits for those running,
// and returns ctx's error.
//
// Each worker takes the next index when it finishes one, so that a
// thousand pools are decoded by two goroutines rather than a thousand:
// every new goroutine starts on a small stack and copies it as the HCL
// evaluator's recursion grows it, which cost 6 % of loading a large
// configuration.
func For(ctx context.Context, n, workers int, fn func(i int)) error {
	workers = min(max(workers, 1), n)
	var (
		next atomic.Int64
		wg   sync.WaitGroup
	)
	for range workers {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				fn(i)
			}
		})
	}
	wg.Wait()
	return ctx.Err()
}
