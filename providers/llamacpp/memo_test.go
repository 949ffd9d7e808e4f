package llamacpp

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
)

// counted returns a flight function that counts its runs and answers v.
func counted(runs *atomic.Int32, v string, keep bool, err error) func(context.Context) (string, bool, error) {
	return func(context.Context) (string, bool, error) {
		runs.Add(1)
		return v, keep, err
	}
}

func TestFlightRemembersResults(t *testing.T) {
	errBroken := errors.New("broken")
	tests := []struct {
		name     string
		keep     bool
		err      error
		wantRuns int32
	}{
		{name: "a kept answer is not asked for again", keep: true, wantRuns: 1},
		{name: "a kept error is not asked for again", keep: true, err: errBroken, wantRuns: 1},
		{name: "an answer not to keep is asked for each time", keep: false, wantRuns: 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var f flight[string, string]
			var runs atomic.Int32
			for range 3 {
				v, err := f.do(context.Background(), "k", counted(&runs, "v", tc.keep, tc.err))
				if v != "v" || err != tc.err {
					t.Fatalf("do = %q, %v", v, err)
				}
			}
			if n := runs.Load(); n != tc.wantRuns {
				t.Errorf("ran %d times, want %d", n, tc.wantRuns)
			}
		})
	}
}

func TestFlightKeysAreSeparate(t *testing.T) {
	var f flight[string, string]
	var runs atomic.Int32
	for _, k := range []string{"a", "b", "a", "b"} {
		if v, _ := f.do(context.Background(), k, counted(&runs, k, true, nil)); v != k {
			t.Errorf("do(%q) = %q", k, v)
		}
	}
	if n := runs.Load(); n != 2 {
		t.Errorf("ran %d times for two keys, want 2", n)
	}
}

// startBlocked starts a run of f for key that blocks until release is
// closed, and returns once it is running.
func startBlocked(t *testing.T, ctx context.Context, f *flight[string, string], key string, runs *atomic.Int32,
	release chan struct{}, keep bool) <-chan string {
	t.Helper()
	started := make(chan struct{})
	result := make(chan string, 1)
	go func() {
		v, err := f.do(ctx, key, func(ctx context.Context) (string, bool, error) {
			runs.Add(1)
			close(started)
			select {
			case <-release:
				return "first", keep, nil
			case <-ctx.Done():
				return "", true, ctx.Err()
			}
		})
		if err != nil {
			v = "error: " + err.Error()
		}
		result <- v
	}()
	<-started
	return result
}

// arrivals reports each caller that waits for f's running call (through
// the joined hook) and, should f fail to share it, each one that runs the
// work itself (through the function arrival returns), so that a broken
// flight fails these tests instead of hanging them.
func arrivals[K comparable, V any](f *flight[K, V]) (arrived chan struct{}, signal func()) {
	arrived = make(chan struct{}, 64)
	signal = func() { arrived <- struct{}{} }
	f.joined = signal
	return arrived, signal
}

// answer is a flight function that signals, counts its run and answers v.
func answer(signal func(), runs *atomic.Int32, v string) func(context.Context) (string, bool, error) {
	return func(context.Context) (string, bool, error) {
		signal()
		runs.Add(1)
		return v, true, nil
	}
}

func TestFlightConcurrentCallersShareOneRun(t *testing.T) {
	for _, keep := range []bool{true, false} {
		t.Run(fmt.Sprintf("keep=%v", keep), func(t *testing.T) {
			const callers = 8
			var f flight[string, string]
			arrived, signal := arrivals(&f)
			var runs atomic.Int32
			release := make(chan struct{})
			first := startBlocked(t, context.Background(), &f, "k", &runs, release, keep)

			results := make(chan string, callers)
			for range callers {
				go func() {
					v, _ := f.do(context.Background(), "k", answer(signal, &runs, "second"))
					results <- v
				}()
			}
			for range callers {
				<-arrived
			}
			close(release)
			if v := <-first; v != "first" {
				t.Errorf("the running caller got %q", v)
			}
			for range callers {
				if v := <-results; v != "first" {
					t.Errorf("a waiting caller got %q, want the shared answer", v)
				}
			}
			if n := runs.Load(); n != 1 {
				t.Errorf("ran %d times, want 1", n)
			}
		})
	}
}

func TestFlightForgetsARunItsCallerCancelled(t *testing.T) {
	var f flight[string, string]
	arrived, signal := arrivals(&f)
	var runs atomic.Int32
	ctx, cancel := context.WithCancel(context.Background())
	first := startBlocked(t, ctx, &f, "k", &runs, make(chan struct{}), true)

	second := make(chan string, 1)
	go func() {
		v, err := f.do(context.Background(), "k", answer(signal, &runs, "second"))
		if err != nil {
			v = err.Error()
		}
		second <- v
	}()
	<-arrived
	cancel()
	if v := <-first; v != "error: context canceled" {
		t.Errorf("the cancelled caller got %q", v)
	}
	// The waiting caller runs the function again with its own context.
	if v := <-second; v != "second" {
		t.Errorf("the waiting caller got %q, want its own run's answer", v)
	}
	if v, _ := f.do(context.Background(), "k", answer(signal, &runs, "third")); v != "second" {
		t.Errorf("the next caller got %q, want the remembered answer", v)
	}
	if n := runs.Load(); n != 2 {
		t.Errorf("ran %d times, want 2", n)
	}
}

func TestFlightWaiterStopsWithItsContext(t *testing.T) {
	var f flight[string, string]
	arrived, signal := arrivals(&f)
	var runs atomic.Int32
	release := make(chan struct{})
	first := startBlocked(t, context.Background(), &f, "k", &runs, release, true)

	ctx, cancel := context.WithCancel(context.Background())
	waiter := make(chan error, 1)
	go func() {
		_, err := f.do(ctx, "k", answer(signal, &runs, "second"))
		waiter <- err
	}()
	<-arrived
	cancel()
	if err := <-waiter; !errors.Is(err, context.Canceled) {
		t.Errorf("the waiter got %v, want context.Canceled", err)
	}
	close(release)
	if v := <-first; v != "first" {
		t.Errorf("the running caller got %q", v)
	}
}

func TestFlightForgetsAPanickingRun(t *testing.T) {
	var f flight[string, string]
	func() {
		defer func() {
			if recover() == nil {
				t.Error("the panic did not reach the caller")
			}
		}()
		_, _ = f.do(context.Background(), "k", func(context.Context) (string, bool, error) { panic("boom") })
	}()
	var runs atomic.Int32
	if v, _ := f.do(context.Background(), "k", counted(&runs, "v", true, nil)); v != "v" || runs.Load() != 1 {
		t.Errorf("after a panic: %q after %d runs, want a new run", v, runs.Load())
	}
}

func TestFlightIsBounded(t *testing.T) {
	f := flight[int, int]{max: 3}
	for i := range 10 {
		_, _ = f.do(context.Background(), i, func(context.Context) (int, bool, error) { return i, true, nil })
	}
	f.mu.Lock()
	n := len(f.calls)
	_, newest := f.calls[9]
	f.mu.Unlock()
	if n != 3 || !newest {
		t.Errorf("%d results kept (newest kept: %v), want 3 including the newest", n, newest)
	}
}

func TestFlightResetForgets(t *testing.T) {
	var f flight[string, string]
	var runs atomic.Int32
	_, _ = f.do(context.Background(), "k", counted(&runs, "v", true, nil))
	f.reset()
	_, _ = f.do(context.Background(), "k", counted(&runs, "v", true, nil))
	if n := runs.Load(); n != 2 {
		t.Errorf("ran %d times across a reset, want 2", n)
	}
}
