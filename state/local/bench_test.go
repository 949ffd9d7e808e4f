package local_test

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/spf13/afero"

	"github.com/llorch/llorch/state"
	"github.com/llorch/llorch/state/local"
	"github.com/llorch/llorch/state/statetest"
)

func bigState(n int) *state.State { return statetest.Big(lineage, n) }

// BenchmarkWrite measures one state save, as apply makes after every
// replica: read and check the stored file, stage state and backup, rename
// both, fsync. On the OS filesystem the fsyncs dominate.
func BenchmarkWrite(b *testing.B) {
	for _, fsName := range []string{"os", "memory"} {
		for _, n := range []int{10, 100, 1000} {
			b.Run(fmt.Sprintf("fs=%s/pools=%d", fsName, n), func(b *testing.B) {
				var fs afero.Fs = afero.NewMemMapFs()
				dir := "/bench/.llorch"
				if fsName == "os" {
					fs, dir = afero.NewOsFs(), filepath.Join(b.TempDir(), ".llorch")
				}
				s := local.New(fs, dir, local.Options{})
				st := bigState(n)
				if err := s.Write(b.Context(), st); err != nil {
					b.Fatal(err)
				}
				data, _ := afero.ReadFile(fs, s.Path())
				b.SetBytes(int64(len(data)))
				for b.Loop() {
					if err := s.Write(b.Context(), st); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

func BenchmarkRead(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		b.Run(fmt.Sprintf("pools=%d", n), func(b *testing.B) {
			s := local.New(afero.NewMemMapFs(), "/bench/.llorch", local.Options{})
			if err := s.Write(b.Context(), bigState(n)); err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				if _, err := s.Read(b.Context()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkLock is one Lock and Unlock on the OS filesystem: open, flock,
// write and fsync the holder info, then clear it.
func BenchmarkLock(b *testing.B) {
	s := local.New(afero.NewOsFs(), filepath.Join(b.TempDir(), ".llorch"), local.Options{})
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

// BenchmarkPlanWait is what a plan of 1000 pools waits for on the local
// file once its prefetch (the state read and decoded) has run: the flock
// and lock info, the read (the prefetched state, the file unchanged) and
// the release.
func BenchmarkPlanWait(b *testing.B) {
	dir := filepath.Join(b.TempDir(), ".llorch")
	statetest.BenchPlanWait(b, bigState(1000), func() state.Store {
		return local.New(afero.NewOsFs(), dir, local.Options{})
	})
}
