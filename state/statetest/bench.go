package statetest

import (
	"context"
	"io"
	"testing"

	"github.com/llorch/llorch/state"
)

// BenchPlanWait measures what a plan waits for on the backend once its
// prefetch has run (which it does while the configuration is parsed, so
// off the critical path): Lock, Read, Unlock, and Close where the store
// has one. open returns a new Store, as a new llorch process would, on a
// backend that holds st; it runs outside the timer, and so does Prefetch.
func BenchPlanWait(b *testing.B, st *state.State, open func() state.Store) {
	s := open()
	id, err := s.Lock(b.Context(), state.LockInfo{Operation: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	if err := s.Write(b.Context(), st); err != nil {
		b.Fatal(err)
	}
	if err := s.Unlock(b.Context(), id); err != nil {
		b.Fatal(err)
	}
	closeStore(s)
	for b.Loop() {
		b.StopTimer()
		s := open()
		if p, ok := s.(interface{ Prefetch(context.Context) }); ok {
			p.Prefetch(b.Context())
		}
		b.StartTimer()
		id, err := s.Lock(b.Context(), state.LockInfo{Operation: "plan"})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := s.Read(b.Context()); err != nil {
			b.Fatal(err)
		}
		if err := s.Unlock(b.Context(), id); err != nil {
			b.Fatal(err)
		}
		closeStore(s)
	}
}

func closeStore(s state.Store) {
	if c, ok := s.(io.Closer); ok {
		_ = c.Close()
	}
}
