package etcd

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/llorch/llorch/state"
	"github.com/llorch/llorch/state/statetest"
)

func benchStore(b *testing.B) *Store {
	b.Helper()
	s, err := New(Options{
		Endpoints: []string{shared.Endpoint}, Prefix: newPrefix(), Version: "0.1.0",
		ErroredPath: filepath.Join(b.TempDir(), "errored.state.json"),
		LockTTL:     15 * time.Second, DialTimeout: 2 * time.Second, RequestTimeout: 10 * time.Second,
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	return s
}

const benchLineage = "6e0d5a8c-5a57-4cb4-9b55-5d2d3c0f6b11"

// writeLocked takes the lock and writes st; it returns the unlock.
func writeLocked(b *testing.B, s *Store, st *state.State) func() {
	b.Helper()
	id, err := s.Lock(b.Context(), state.LockInfo{Operation: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	if err := s.Write(b.Context(), st); err != nil {
		b.Fatal(err)
	}
	return func() { _ = s.Unlock(b.Context(), id) }
}

// BenchmarkWrite is one state save on etcd under the lock, as apply makes
// after every replica: a fenced transaction that also keeps the backup.
func BenchmarkWrite(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		b.Run(fmt.Sprintf("pools=%d", n), func(b *testing.B) {
			s := benchStore(b)
			st := statetest.Big(benchLineage, n)
			defer writeLocked(b, s, st)()
			for b.Loop() {
				if err := s.Write(b.Context(), st); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkRead is what a no-change plan pays for the state on etcd: one
// read at one revision, decompressed and decoded.
func BenchmarkRead(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		b.Run(fmt.Sprintf("pools=%d", n), func(b *testing.B) {
			s := benchStore(b)
			writeLocked(b, s, statetest.Big(benchLineage, n))()
			for b.Loop() {
				if _, err := s.Read(b.Context()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkLock is one Lock and Unlock: a lease granted and kept alive,
// the lock key taken, then released and the lease revoked.
func BenchmarkLock(b *testing.B) {
	s := benchStore(b)
	for b.Loop() {
		id, err := s.Lock(b.Context(), state.LockInfo{Operation: "bench"})
		if err != nil {
			b.Fatal(err)
		}
		if err := s.Unlock(b.Context(), id); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPlanWait is what a plan of 1000 pools waits for on etcd once
// its prefetch (connection, lease, state) has run: the lock transaction,
// the read (the prefetched state), the release (the lease revoked) and
// closing the connection.
func BenchmarkPlanWait(b *testing.B) {
	prefix := newPrefix()
	statetest.BenchPlanWait(b, statetest.Big(benchLineage, 1000), func() state.Store {
		s, err := New(Options{Endpoints: []string{shared.Endpoint}, Prefix: prefix, Version: "0.1.0",
			ErroredPath: filepath.Join(b.TempDir(), "errored.state.json")})
		if err != nil {
			b.Fatal(err)
		}
		return s
	})
}
