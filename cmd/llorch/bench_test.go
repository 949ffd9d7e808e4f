package main

import (
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/llorch/llorch/internal/etcdtest"
	"github.com/llorch/llorch/plan"
	"github.com/llorch/llorch/state"
)

// benchPools writes n pools of one replica each, on the fake engine, with
// automatic ports and an engine that is ready as soon as it listens: what
// remains of an apply's time is llorch's own work (Ensure, launching the
// supervisor, the health gate, state saves) plus the engine's start.
func benchPools(b *testing.B, dir string, n int) {
	b.Helper()
	model, err := os.ReadFile(filepath.Join(repoRoot(), "examples", "demo", "models", "demo.gguf"))
	if err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "model.gguf"), model, 0o644); err != nil {
		b.Fatal(err)
	}
	var cfg strings.Builder
	cfg.WriteString("provider \"llamacpp\" {\n  binary = \"fake-llama-server\"\n}\n")
	for i := range n {
		fmt.Fprintf(&cfg, `
pool "p%04d" {
  engine  = "llamacpp"
  devices = []
  env     = { FAKE_LOAD_DELAY = "0s" }
  model {
    ref = "file:model.gguf"
  }
  health {
    interval = "100ms"
  }
}
`, i)
	}
	if err := os.WriteFile(filepath.Join(dir, "main.llorch.hcl"), []byte(cfg.String()), 0o644); err != nil {
		b.Fatal(err)
	}
}

func llorchIn(b *testing.B, dir string, args ...string) {
	b.Helper()
	wd, err := os.Getwd()
	if err != nil {
		b.Fatal(err)
	}
	defer os.Chdir(wd) // run() honours -chdir by changing directory
	var errOut strings.Builder
	if code := run(append([]string{"-chdir=" + dir}, args...), strings.NewReader(""), io.Discard, &errOut); code != 0 {
		b.Fatalf("llorch %s: exit %d\n%s", strings.Join(args, " "), code, errOut.String())
	}
}

// BenchmarkApply measures `llorch apply` of 1, 10 and 100 fake-engine
// pools (one replica each) at -parallelism 1 and 10, reporting the wall
// time per replica. The engines start in a few ms, so ms/replica at
// parallelism 1 is llorch's overhead per replica plus that start.
func BenchmarkApply(b *testing.B) {
	for _, n := range []int{1, 10, 100} {
		for _, par := range []int{1, 10} {
			if n == 1 && par > 1 {
				continue
			}
			b.Run(fmt.Sprintf("pools=%d/parallelism=%d", n, par), func(b *testing.B) {
				var total time.Duration
				for b.Loop() {
					b.StopTimer()
					dir := b.TempDir()
					// A failed iteration stops before its destroy: leave no
					// supervisor or engine running behind it.
					b.Cleanup(func() { stopEverything(dir) })
					benchPools(b, dir, n)
					b.StartTimer()
					start := time.Now()
					llorchIn(b, dir, "apply", "-auto-approve", "-no-color", fmt.Sprintf("-parallelism=%d", par))
					total += time.Since(start)
					b.StopTimer()
					llorchIn(b, dir, "destroy", "-auto-approve", "-no-color", "-parallelism=50")
					stopEverything(dir)
					b.StartTimer()
				}
				b.ReportMetric(float64(total.Milliseconds())/float64(b.N*n), "ms/replica")
			})
		}
	}
}

// BenchmarkPlanNoChange measures a whole `llorch plan` (in process: parse,
// lock, read the state, plan every pool through the llamacpp provider,
// diff, render, unlock) of 1000 pools whose state says they are applied,
// with the state in the local file and on a real etcd started for the
// benchmark. One op is ten pairs of plans, one against each right after
// the other, taking turns which goes first, so that a machine busy with
// something else slows both alike, and so that even one op (make bench's
// default benchtime) gives medians of ten. It reports the median milliseconds of
// each (local-ms, etcd-ms) and their difference, what the etcd backend adds
// (etcd-added-ms), and the difference of the fastest runs
// (etcd-added-fastest-ms). -refresh=false, because the pools' supervisors do
// not run (starting 1000 fake engines would dwarf what is measured);
// refresh talks to supervisors, not to the backend, so it would add the
// same to both.
func BenchmarkPlanNoChange(b *testing.B) {
	if _, err := etcdtest.Binary(); err != nil {
		b.Skip(err)
	}
	const n, pairsPerOp = 1000, 10
	b.Run(fmt.Sprintf("pools=%d", n), func(b *testing.B) {
		srv := etcdtest.Start(b, etcdtest.Options{})
		local := planDir(b, n, "")
		onEtcd := planDir(b, n, fmt.Sprintf("llorch {\n  backend \"etcd\" {\n    endpoints = [%q]\n    prefix    = \"bench/\"\n  }\n}\n", srv.Endpoint))
		plan := func(dir string) time.Duration {
			// Each run starts with a clean heap, as a process would, not
			// paying for the garbage the one before left.
			runtime.GC()
			start := time.Now()
			llorchIn(b, dir, "plan", "-refresh=false", "-detailed-exitcode", "-no-color")
			return time.Since(start)
		}
		var locals, etcds []float64
		for b.Loop() {
			for range pairsPerOp {
				// Take turns going first: the second may find caches warm.
				var l, e time.Duration
				if len(locals)%2 == 0 {
					l, e = plan(local), plan(onEtcd)
				} else {
					e, l = plan(onEtcd), plan(local)
				}
				locals, etcds = append(locals, ms(l)), append(etcds, ms(e))
			}
		}
		// Medians, and the fastest runs, the least disturbed: a burst of
		// load from something else on the machine moves one run, not the
		// figures.
		b.ReportMetric(median(locals), "local-ms")
		b.ReportMetric(median(etcds), "etcd-ms")
		b.ReportMetric(median(etcds)-median(locals), "etcd-added-ms")
		b.ReportMetric(slices.Min(etcds)-slices.Min(locals), "etcd-added-fastest-ms")
	})
}

// planDir is a directory of n applied pools, with llorchBlock (the
// backend) in a file of its own.
func planDir(b *testing.B, n int, llorchBlock string) string {
	dir := b.TempDir()
	benchPools(b, dir, n)
	if llorchBlock != "" {
		if err := os.WriteFile(filepath.Join(dir, "backend.llorch.hcl"), []byte(llorchBlock), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	writeApplied(b, dir)
	return dir
}

// writeApplied plans the pools in dir and stores, in dir's backend, the
// state an apply of that plan would leave: every replica ready, with the
// spec and engine the plan gives, so that planning again finds nothing to
// do.
func writeApplied(b *testing.B, dir string) {
	b.Helper()
	wd, err := os.Getwd()
	if err != nil {
		b.Fatal(err)
	}
	if err := os.Chdir(dir); err != nil { // as run does for -chdir
		b.Fatal(err)
	}
	defer os.Chdir(wd)
	var errOut strings.Builder
	m := newMeta(strings.NewReader(""), io.Discard, &errOut)
	m.dir, m.ctx = dir, b.Context()
	defer m.close()
	s, ok := m.openSession(nil, lockFlags{lock: true}, "bench")
	if !ok {
		b.Fatalf("opening the state:\n%s", errOut.String())
	}
	defer s.unlock()
	p, ok := m.makePlan(s, plan.Options{})
	if !ok {
		b.Fatalf("planning:\n%s", errOut.String())
	}
	st := s.st
	runRoot := filepath.Join(s.dirs.State, "run")
	for i, addr := range slices.Sorted(maps.Keys(p.Desired)) {
		d := p.Desired[addr]
		port := 20000 + 2*i
		pr := &state.Prepared{BinaryPath: "fake-llama-server", Host: d.Spec.Host, Port: port, DeviceMask: "0",
			Args: []string{"--host", d.Spec.Host, "--port", strconv.Itoa(port), "--model", "model.gguf", "--metrics"}}
		if pl := d.Planned; pl != nil {
			pr.EngineVersion, pr.BinarySHA256 = pl.EngineVersion, pl.BinarySHA256
			if pl.Model != nil {
				pr.ModelPath, pr.ModelSHA256, pr.ModelSize = pl.Model.Path, pl.Model.SHA256, pl.Model.SizeBytes
			}
		}
		sp := &state.Pool{Engine: d.Pool.Engine, Spec: d.Spec, SpecHash: d.SpecHash, Prepared: pr}
		for r := range d.Spec.Replicas {
			id := plan.ReplicaID(r)
			sp.Replicas = append(sp.Replicas, &state.Replica{ID: id, Port: port + r, PID: 5_000_000 + i, SupervisorPID: 5_500_000 + i,
				Status: state.StatusReady, RunDir: filepath.Join(runRoot, d.Pool.ID+"-"+id)})
		}
		st.Pools[addr] = sp
	}
	if err := s.store.Write(m.ctx, st); err != nil {
		b.Fatalf("writing the applied state: %v", err)
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(xs))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
