package llamacpp

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/llorch/llorch/providers"
)

// BenchmarkEnsureCached is the Ensure of an apply that changes nothing: the
// binary's version and the model's digest are cached, so it neither runs
// --version nor hashes the model (the test fails if it does).
func BenchmarkEnsureCached(b *testing.B) {
	bin := b.TempDir()
	_, counter := fakeServer(b, bin, "llama-server", "version: 4748 (c392e5094)")
	p := newTestProvider(b, testEnv(b, bin), "")
	pool := testPool("file:" + tinyLlama(b))
	pool.Model.SHA256 = sha256Hex(tinyLlamaBytes(b))
	req := providers.EnsureRequest{Pool: pool, Config: poolBlock(b, "n_gpu_layers = 99")}
	if _, diags := p.Ensure(context.Background(), req); diags.HasErrors() {
		b.Fatal(describe(diags))
	}
	var ev events
	req.Progress = ev.add
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, diags := p.Ensure(context.Background(), req); diags.HasErrors() {
			b.Fatal(describe(diags))
		}
	}
	b.StopTimer()
	if n := runs(b, counter); n != 1 {
		b.Fatalf("--version ran %d times, want 1", n)
	}
	if n := ev.stages()["verify"]; n != 0 {
		b.Fatalf("the model was hashed %d times", n)
	}
}

// BenchmarkPlanPool plans a binary-mode pool with a local model.
func BenchmarkPlanPool(b *testing.B) {
	bin := b.TempDir()
	fakeServer(b, bin, "llama-server", "version: 4748 (c392e5094)")
	p := newTestProvider(b, testEnv(b, bin), "")
	req := providers.PlanPoolRequest{Pool: testPool("file:" + tinyLlama(b)), Config: poolBlock(b, "")}
	if _, diags := p.PlanPool(context.Background(), req); diags.HasErrors() {
		b.Fatal(describe(diags))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, diags := p.PlanPool(context.Background(), req); diags.HasErrors() {
			b.Fatal(describe(diags))
		}
	}
}

// BenchmarkDownload downloads a 64 MiB GGUF file from a local server:
// transfer, sha256 while writing, fsync, GGUF check and rename.
func BenchmarkDownload(b *testing.B) {
	data := append(smallGGUF("llama", 4096), make([]byte, 64<<20)...)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "model.gguf", time.Unix(1700000000, 0), bytes.NewReader(data))
	}))
	defer srv.Close()
	p := newTestProvider(b, append(testEnv(b), "HF_ENDPOINT="+srv.URL), "")
	ref, err := parseModelRef(hfRef, "/")
	if err != nil {
		b.Fatal(err)
	}
	src := p.downloadSource(ref)
	dest := filepath.Join(b.TempDir(), "model.gguf")
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for b.Loop() {
		if _, err := p.fetch(context.Background(), src, dest, "", func(providers.Event) {}); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := os.Remove(dest); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}
