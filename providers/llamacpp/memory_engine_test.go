package llamacpp

import (
	"bufio"
	"context"
	"math"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/llorch/llorch/internal/freeport"
	"github.com/llorch/llorch/internal/testgguf"
)

// bufferLine is how llama.cpp reports a buffer at load:
// "load_tensors:   CPU_Mapped model buffer size = 12853.02 MiB",
// "llama_kv_cache_init:        CPU KV buffer size =   256.00 MiB",
// "llama_init_from_model:        CPU compute buffer size =    70.50 MiB".
var bufferLine = regexp.MustCompile(`\s(\S+)\s+(model|KV|compute) buffer size =\s+([0-9.]+) MiB`)

// loadBuffers starts the real llama-server on model with args, reads what
// it allocates from its log and stops it once it has reported its compute
// buffer. The sizes are in MiB, summed per kind (model, KV, compute).
func loadBuffers(t *testing.T, bin, model string, args ...string) map[string]float64 {
	t.Helper()
	port, err := freeport.Port()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"-m", model, "--host", "127.0.0.1", "--port", strconv.Itoa(port),
		"--no-warmup"}, args...)...)
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = cmd.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sizes := map[string]float64{}
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		m := bufferLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		v, _ := strconv.ParseFloat(m[3], 64)
		sizes[m[2]] += v
		if m[2] == "compute" {
			break // the last buffer llama.cpp allocates at load
		}
	}
	cancel()
	_ = cmd.Wait()
	if len(sizes) != 3 {
		t.Fatalf("llama-server reported buffers %v; want model, KV and compute", sizes)
	}
	return sizes
}

// TestMemoryEstimateAgainstLlamaServer checks the estimate against what the
// real engine allocates on the CPU, for the tiny model and header-only
// GGUFs with Llama 2 7B, 13B and 70B shapes (llama.cpp mmaps the sparse
// file; --no-warmup keeps it from reading the zeros). It needs
// LLORCH_TEST_LLAMA_SERVER, the path of a llama-server build, and about
// 1 GiB of free memory; the errors go in the test log (docs/memory-fit.md
// has build 4748's).
func TestMemoryEstimateAgainstLlamaServer(t *testing.T) {
	bin := os.Getenv("LLORCH_TEST_LLAMA_SERVER")
	if bin == "" {
		t.Skip("LLORCH_TEST_LLAMA_SERVER is not set: no real llama-server to compare the estimate with")
	}
	shapes := []struct {
		name  string
		model testgguf.Model
		full  bool // the whole file, not a header-only one
	}{
		{"tiny", testgguf.TinyLlama(), true},
		{"7B", testgguf.Llama7B(), false},
		{"13B", testgguf.Llama13B(), false},
		{"70B", testgguf.Llama70B(), false},
	}
	for _, sh := range shapes {
		path := testgguf.HeaderOnlyFile(t, sh.model, sh.name+".gguf")
		if sh.full {
			path = testgguf.File(t, sh.model, sh.name+".gguf")
		}
		for _, run := range []struct{ ctx, parallel int }{{512, 1}, {2048, 2}, {4096, 4}} {
			t.Run(sh.name+"/ctx"+strconv.Itoa(run.ctx)+"/np"+strconv.Itoa(run.parallel), func(t *testing.T) {
				pool := testPool("file:" + path)
				pool.Ctx, pool.Devices, pool.Flags = run.ctx, []int{}, []string{"-np", strconv.Itoa(run.parallel)}
				est, why := planMemory(t, pool, "")
				if est == nil {
					t.Fatalf("no estimate: %s", why)
				}
				real := loadBuffers(t, bin, path, "-c", strconv.Itoa(run.ctx), "-np", strconv.Itoa(run.parallel), "-ngl", "0")
				for _, c := range []struct {
					kind      string
					est       int64
					tolerance float64
				}{
					{"model", est.Host.Weights, 0.01}, {"KV", est.Host.KVCache, 0.01}, {"compute", est.Host.Compute, 0.05},
				} {
					got := float64(c.est) / mib
					e := (got - real[c.kind]) / real[c.kind]
					t.Logf("%s: estimate %.2f MiB, llama-server %.2f MiB, error %+.1f%%", c.kind, got, real[c.kind], 100*e)
					if math.Abs(e) > c.tolerance {
						t.Errorf("%s buffer: estimate %.2f MiB is %+.1f%% off llama-server's %.2f MiB (tolerance %.0f%%)",
							c.kind, got, 100*e, real[c.kind], 100*c.tolerance)
					}
				}
			})
		}
	}
}
