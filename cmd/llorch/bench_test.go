package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
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
