package parallel

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
)

func TestForCallsEveryIndexOnce(t *testing.T) {
	for _, tc := range []struct{ n, workers int }{{0, 4}, {1, 4}, {7, 1}, {100, 3}, {5, 0}} {
		seen := make([]atomic.Int32, tc.n)
		if err := For(context.Background(), tc.n, tc.workers, func(i int) { seen[i].Add(1) }); err != nil {
			t.Fatalf("n=%d workers=%d: %v", tc.n, tc.workers, err)
		}
		for i := range seen {
			if got := seen[i].Load(); got != 1 {
				t.Errorf("n=%d workers=%d: fn(%d) called %d times, want once", tc.n, tc.workers, i, got)
			}
		}
	}
}

func TestForRunsAtMostWorkersAtATime(t *testing.T) {
	var running, peak atomic.Int32
	var mu sync.Mutex
	err := For(context.Background(), 50, 3, func(int) {
		now := running.Add(1)
		mu.Lock()
		if now > peak.Load() {
			peak.Store(now)
		}
		mu.Unlock()
		running.Add(-1)
	})
	if err != nil || peak.Load() > 3 {
		t.Fatalf("peak concurrency %d with 3 workers (err %v)", peak.Load(), err)
	}
}

func TestForStartsNothingNewOnceCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var calls atomic.Int32
	err := For(ctx, 1000, 1, func(i int) {
		calls.Add(1)
		if i == 9 {
			cancel()
		}
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if calls.Load() != 10 {
		t.Fatalf("%d calls, want 10: none after the cancel", calls.Load())
	}
}
