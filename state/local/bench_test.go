package local_test

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/spf13/afero"

	"github.com/llorch/llorch/state"
	"github.com/llorch/llorch/state/local"
)

// bigState is a state with n pools of two ready replicas each, with the
// spec and prepared engine apply records.
func bigState(n int) *state.State {
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
