package llamacpp

import (
	"context"
	"sync"
)

// flight runs a function once per key and remembers the result for the
// life of the provider, which is one llorch command. Callers asking for a
// key whose function is running wait for that run instead of repeating it
// (as golang.org/x/sync/singleflight does), so that planning a thousand
// pools sharing one engine runs git ls-remote or nvidia-smi once.
//
// The zero flight is ready to use and keeps every result; max bounds it.
type flight[K comparable, V any] struct {
	max int // results kept, 0 for no bound; a full flight forgets an arbitrary finished one

	// joined, when set, is called each time a caller starts waiting for a
	// running call; tests use it to know every caller has arrived.
	joined func()

	mu    sync.Mutex
	calls map[K]*flightCall[V]
}

type flightCall[V any] struct {
	done chan struct{} // closed when val and err are set
	val  V
	err  error
	// abandoned: the run ended with its caller's context, so its result
	// says nothing about the key; the callers waiting for it run again.
	abandoned bool
}

// do returns key's remembered result, or runs fn for it. fn's keep result
// tells whether to remember what it returned (callers already waiting get
// it either way). A run whose context ended is never remembered: one
// cancelled caller must not decide for the next.
func (f *flight[K, V]) do(ctx context.Context, key K, fn func(context.Context) (v V, keep bool, err error)) (V, error) {
	for {
		f.mu.Lock()
		c, ok := f.calls[key]
		if !ok {
			c = &flightCall[V]{done: make(chan struct{})}
			f.addLocked(key, c)
			f.mu.Unlock()
			f.run(ctx, key, c, fn)
			return c.val, c.err
		}
		running := !isClosed(c.done)
		f.mu.Unlock()
		if running && f.joined != nil {
			f.joined()
		}
		select {
		case <-c.done:
		case <-ctx.Done():
			var zero V
			return zero, ctx.Err()
		}
		if !c.abandoned {
			return c.val, c.err
		}
	}
}

// run calls fn and publishes its result to the callers waiting on c; a
// result not to be kept (or a panic) is taken out of the map first.
func (f *flight[K, V]) run(ctx context.Context, key K, c *flightCall[V], fn func(context.Context) (V, bool, error)) {
	keep := false
	c.abandoned = true // until fn returns
	defer func() {
		if !keep {
			f.mu.Lock()
			if f.calls[key] == c {
				delete(f.calls, key)
			}
			f.mu.Unlock()
		}
		close(c.done)
	}()
	c.val, keep, c.err = fn(ctx)
	c.abandoned = ctx.Err() != nil
	keep = keep && !c.abandoned
}

func (f *flight[K, V]) addLocked(key K, c *flightCall[V]) {
	if f.calls == nil {
		f.calls = map[K]*flightCall[V]{}
	}
	if f.max > 0 && len(f.calls) >= f.max {
		for k, old := range f.calls {
			if isClosed(old.done) {
				delete(f.calls, k)
				break
			}
		}
	}
	f.calls[key] = c
}

// reset forgets every result; runs in progress finish for the callers
// already waiting on them.
func (f *flight[K, V]) reset() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = nil
}

func isClosed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
