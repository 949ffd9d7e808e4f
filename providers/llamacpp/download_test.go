package llamacpp

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/llorch/llorch/providers"
	"github.com/llorch/llorch/providers/sdk/sdktest"
)

// The download itself is tested in providers/sdk/stage; these tests cover
// what the provider adds: planning never downloads, errors point at the
// model block, and the GGUF check.

const hfRef = "hf:org/repo/model.gguf"

// modelServer serves data at every path, with Range support, and records
// the requests; status, when set, answers every request with it.
type modelServer struct {
	mu       sync.Mutex
	data     []byte
	status   int
	requests []http.Header
}

func (s *modelServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.requests = append(s.requests, r.Header.Clone())
	s.mu.Unlock()
	if s.status != 0 {
		http.Error(w, "nope", s.status)
		return
	}
	http.ServeContent(w, r, "model.gguf", time.Unix(1700000000, 0), bytes.NewReader(s.data))
}

func (s *modelServer) headers() []http.Header {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]http.Header(nil), s.requests...)
}

// hfProvider is a provider whose Hugging Face endpoint is srv.
func hfProvider(t *testing.T, srv *httptest.Server, extraEnv ...string) *Provider {
	t.Helper()
	bin := t.TempDir()
	fakeServer(t, bin, "llama-server", "version: 4748 (c392e5094)")
	env := append(testEnv(t, bin), "HF_ENDPOINT="+srv.URL)
	return newTestProvider(t, append(env, extraEnv...), "")
}

func ensure(t *testing.T, p *Provider, pool providers.PoolSpec, ev *sdktest.Events) (*providers.PreparedEngine, providers.Diagnostics) {
	t.Helper()
	req := providers.EnsureRequest{Pool: pool, Config: poolBlock(t, "")}
	if ev != nil {
		req.Progress = ev.Add
	}
	return p.Ensure(context.Background(), req)
}

func TestEnsureDownloadsWhatPlanningDoesNot(t *testing.T) {
	data := tinyLlamaBytes(t)
	ms := &modelServer{data: data}
	srv := httptest.NewServer(ms)
	defer srv.Close()
	p := hfProvider(t, srv, "HF_TOKEN=hf_s3cret")

	planned, diags := p.PlanPool(context.Background(), providers.PlanPoolRequest{Pool: testPool(hfRef), Config: poolBlock(t, "")})
	if len(diags) > 0 || planned.Model != nil {
		t.Fatalf("PlanPool before download: model %v, %s", planned.Model, describe(diags))
	}
	if n := len(ms.headers()); n != 0 {
		t.Fatalf("PlanPool made %d request(s)", n)
	}

	pool := testPool(hfRef + "@v1.0")
	pool.Model.SHA256 = sha256Hex(data)
	var ev sdktest.Events
	pe, diags := ensure(t, p, pool, &ev)
	if len(diags) > 0 {
		t.Fatal(describe(diags))
	}
	cfg, _ := p.config()
	if want := filepath.Join(cfg.CacheDir, "models", "hf", "org", "repo", "v1.0", "model.gguf"); pe.ModelPath != want || pe.ModelSHA256 != sha256Hex(data) {
		t.Errorf("model %s (%s), want %s", pe.ModelPath, pe.ModelSHA256, want)
	}
	h := ms.headers()
	if len(h) != 1 || h[0].Get("Authorization") != "Bearer hf_s3cret" || h[0].Get("User-Agent") != "llorch-llamacpp/"+Version {
		t.Errorf("requests %v", h)
	}
	if ev.Stages()["inspect"] != 1 {
		t.Errorf("stages %v, want the model inspected", ev.Stages())
	}

	// Planning now sees the downloaded model.
	planned, diags = p.PlanPool(context.Background(), providers.PlanPoolRequest{Pool: pool, Config: poolBlock(t, "")})
	if len(diags) > 0 || planned.Model == nil || planned.Model.Path != pe.ModelPath || planned.Model.Architecture != "llama" {
		t.Errorf("PlanPool after download: model %+v, %s", planned.Model, describe(diags))
	}
}

func TestEnsureDownloadErrorsPointAtTheModelBlock(t *testing.T) {
	data := tinyLlamaBytes(t)
	tests := []struct {
		name          string
		server        *modelServer
		sha256        string
		summary, path string
		want          []string
	}{
		{"a sha256 mismatch", &modelServer{data: data}, strings.Repeat("ab", 32), "Model Checksum Mismatch", "model.sha256",
			[]string{"sha256 mismatch for " + hfRef, "the downloaded file was removed"}},
		{"a 404", &modelServer{status: 404}, "", "Model Download Failed", "model.ref",
			[]string{"HTTP 404 Not Found", "the file or revision does not exist"}},
		{"a file that is not GGUF", &modelServer{data: []byte("<!DOCTYPE html><html>Sign in</html>")}, "", "Model Is Not GGUF", "model.ref",
			[]string{"was removed: model ", `it starts with "<!DO"`, "llama-server loads only GGUF models"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(tc.server)
			defer srv.Close()
			pool := testPool(hfRef)
			pool.Model.SHA256 = tc.sha256
			_, diags := ensure(t, hfProvider(t, srv), pool, nil)
			d := oneDiag(t, diags, providers.Error, tc.want...)
			if d.Summary != tc.summary || pathString(d.Attribute) != tc.path {
				t.Errorf("summary %q at %q, want %q at %q", d.Summary, pathString(d.Attribute), tc.summary, tc.path)
			}
		})
	}
}

func TestConcurrentEnsuresDownloadOnce(t *testing.T) {
	ms := &modelServer{data: tinyLlamaBytes(t)}
	srv := httptest.NewServer(ms)
	defer srv.Close()
	p := hfProvider(t, srv)

	var wg sync.WaitGroup
	results := make([]providers.Diagnostics, 4)
	req := providers.EnsureRequest{Pool: testPool(hfRef), Config: poolBlock(t, "")}
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, results[i] = p.Ensure(context.Background(), req)
		}()
	}
	wg.Wait()
	for i, d := range results {
		if len(d) > 0 {
			t.Errorf("Ensure %d: %s", i, describe(d))
		}
	}
	if n := len(ms.headers()); n != 1 {
		t.Errorf("%d concurrent Ensures made %d requests, want 1", len(results), n)
	}
}
