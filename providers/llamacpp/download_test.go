package llamacpp

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/llorch/llorch/providers"
)

// modelServer serves one model at Hugging Face-style URLs, with Range
// support (http.ServeContent), and records every request.
type modelServer struct {
	mu          sync.Mutex
	data        []byte
	requests    []http.Header
	paths       []string
	cutFirst    int  // > 0: the first request gets this many bytes, then the connection drops
	ignoreRange bool // answer 200 with the whole file to Range requests
	status      int  // answer every request with this status
	errMessage  string
	stall       bool // send 10 bytes, then nothing until the client gives up
}

func (s *modelServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.requests = append(s.requests, r.Header.Clone())
	s.paths = append(s.paths, r.URL.Path)
	first := len(s.requests) == 1
	data, cut, status, stall := s.data, s.cutFirst, s.status, s.stall
	s.mu.Unlock()

	switch {
	case status != 0:
		if s.errMessage != "" {
			w.Header().Set("X-Error-Message", s.errMessage)
		}
		http.Error(w, "nope", status)
	case stall:
		w.Header().Set("Content-Length", "1000000")
		w.WriteHeader(http.StatusOK)
		w.Write(data[:10])
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	case cut > 0 && first:
		w.Header().Set("Content-Length", strconv.Itoa(len(data)))
		w.WriteHeader(http.StatusOK)
		w.Write(data[:cut])
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler) // drop the connection mid-body
	default:
		if s.ignoreRange {
			r.Header.Del("Range")
		}
		http.ServeContent(w, r, "model.gguf", time.Unix(1700000000, 0), bytes.NewReader(data))
	}
}

func (s *modelServer) headers() []http.Header {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]http.Header(nil), s.requests...)
}

func (s *modelServer) setData(data []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.data = data
}

// hfProvider is a provider whose Hugging Face endpoint is srv.
func hfProvider(t *testing.T, srv *httptest.Server, extraEnv ...string) *Provider {
	t.Helper()
	bin := t.TempDir()
	fakeServer(t, bin, "llama-server", "version: 4748 (c392e5094)")
	env := append(testEnv(t, bin), "HF_ENDPOINT="+srv.URL)
	return newTestProvider(t, append(env, extraEnv...), "")
}

func ensure(t *testing.T, p *Provider, pool providers.PoolSpec, ev *events) (*providers.PreparedEngine, providers.Diagnostics) {
	t.Helper()
	req := providers.EnsureRequest{Pool: pool, Config: poolBlock(t, "")}
	if ev != nil {
		req.Progress = ev.add
	}
	return p.Ensure(context.Background(), req)
}

const hfRef = "hf:org/repo/model.gguf"

func TestDownloadFromHuggingFace(t *testing.T) {
	data := tinyLlamaBytes(t)
	ms := &modelServer{data: data}
	srv := httptest.NewServer(ms)
	defer srv.Close()
	p := hfProvider(t, srv, "HF_TOKEN=hf_s3cret")

	// Planning never downloads.
	planned, diags := p.PlanPool(context.Background(), providers.PlanPoolRequest{Pool: testPool(hfRef), Config: poolBlock(t, "")})
	if len(diags) > 0 || planned.Model != nil {
		t.Fatalf("PlanPool before download: model %v, %s", planned.Model, describe(diags))
	}
	if n := len(ms.headers()); n != 0 {
		t.Fatalf("PlanPool made %d request(s)", n)
	}

	pool := testPool(hfRef + "@v1.0")
	pool.Model.SHA256 = sha256Hex(data)
	var ev events
	pe, diags := ensure(t, p, pool, &ev)
	if len(diags) > 0 {
		t.Fatal(describe(diags))
	}
	cfg, _ := p.config()
	wantPath := filepath.Join(cfg.CacheDir, "models", "hf", "org", "repo", "v1.0", "model.gguf")
	if pe.ModelPath != wantPath || pe.ModelSHA256 != sha256Hex(data) {
		t.Errorf("model %s (%s), want %s", pe.ModelPath, pe.ModelSHA256, wantPath)
	}
	got, err := os.ReadFile(pe.ModelPath)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("downloaded file differs from the served one (%d bytes, %v)", len(got), err)
	}
	if _, err := os.Stat(wantPath + ".partial"); !os.IsNotExist(err) {
		t.Errorf("the .partial file is still there: %v", err)
	}
	h := ms.headers()
	if len(h) != 1 || ms.paths[0] != "/org/repo/resolve/v1.0/model.gguf" {
		t.Fatalf("requests: %v %v", ms.paths, h)
	}
	if h[0].Get("Authorization") != "Bearer hf_s3cret" || h[0].Get("Range") != "" {
		t.Errorf("request headers: Authorization %q, Range %q", h[0].Get("Authorization"), h[0].Get("Range"))
	}
	var last providers.Event
	for _, e := range ev.all {
		if e.Stage == "download" && e.Total > 0 {
			last = e
		}
	}
	if last.Current != int64(len(data)) || last.Total != int64(len(data)) {
		t.Errorf("last download event = %+v, want %d of %d bytes", last, len(data), len(data))
	}

	// A second Ensure uses the cached file without a request or a rehash.
	var ev2 events
	if _, diags := ensure(t, p, pool, &ev2); len(diags) > 0 {
		t.Fatal(describe(diags))
	}
	if n := len(ms.headers()); n != 1 {
		t.Errorf("the second Ensure made %d more request(s)", n-1)
	}
	if st := ev2.stages(); st["download"] != 0 || st["verify"] != 0 {
		t.Errorf("second Ensure stages = %v, want no download or verify", st)
	}
}

func TestDownloadResumesAnInterruptedTransfer(t *testing.T) {
	data := tinyLlamaBytes(t)
	cut := 1<<20 + 123
	ms := &modelServer{data: data, cutFirst: cut}
	srv := httptest.NewServer(ms)
	defer srv.Close()
	p := hfProvider(t, srv)
	pool := testPool(hfRef)
	pool.Model.SHA256 = sha256Hex(data)

	_, diags := ensure(t, p, pool, nil)
	oneDiag(t, diags, providers.Error, "stopped after 1.0 MiB of 8.7 MiB", "the connection closed early", "is kept and the next apply resumes it")
	cfg, _ := p.config()
	partial := filepath.Join(cfg.CacheDir, "models", "hf", "org", "repo", "main", "model.gguf.partial")
	if fi, err := os.Stat(partial); err != nil || fi.Size() != int64(cut) {
		t.Fatalf("partial file after the interruption: %v, %v (want %d bytes)", fi, err, cut)
	}

	var ev events
	pe, diags := ensure(t, p, pool, &ev)
	if len(diags) > 0 {
		t.Fatal(describe(diags))
	}
	h := ms.headers()
	if len(h) != 2 || h[1].Get("Range") != "bytes="+strconv.Itoa(cut)+"-" {
		t.Fatalf("resume request Range = %q (%d requests), want bytes=%d-", h[len(h)-1].Get("Range"), len(h), cut)
	}
	got, _ := os.ReadFile(pe.ModelPath)
	if !bytes.Equal(got, data) {
		t.Fatal("the resumed file is not byte-identical to the served one")
	}
	resumed := false
	for _, e := range ev.all {
		if strings.HasPrefix(e.Message, "resuming "+hfRef+" at 1.0 MiB") {
			resumed = true
		}
	}
	if !resumed {
		t.Errorf("no resume event in %v", ev.all)
	}
}

func TestDownloadStartsOverWhenTheServerIgnoresRange(t *testing.T) {
	data := tinyLlamaBytes(t)
	ms := &modelServer{data: data, ignoreRange: true}
	srv := httptest.NewServer(ms)
	defer srv.Close()
	p := hfProvider(t, srv)
	cfg, _ := p.config()
	dest := filepath.Join(cfg.CacheDir, "models", "hf", "org", "repo", "main", "model.gguf")
	writeFile(t, filepath.Dir(dest), "model.gguf.partial", []byte("stale bytes from another file"), 0o644)

	pe, diags := ensure(t, p, testPool(hfRef), nil)
	if len(diags) > 0 {
		t.Fatal(describe(diags))
	}
	if h := ms.headers(); h[0].Get("Range") != "bytes=29-" {
		t.Errorf("Range = %q, want a resume attempt", h[0].Get("Range"))
	}
	got, _ := os.ReadFile(pe.ModelPath)
	if !bytes.Equal(got, data) || pe.ModelSHA256 != sha256Hex(data) {
		t.Fatal("after a 200 answer to a Range request the file must be the whole served file")
	}
}

func TestDownloadChecksumMismatchRemovesTheFile(t *testing.T) {
	data := tinyLlamaBytes(t)
	ms := &modelServer{data: data}
	srv := httptest.NewServer(ms)
	defer srv.Close()
	p := hfProvider(t, srv)
	pool := testPool(hfRef)
	pool.Model.SHA256 = strings.Repeat("ab", 32)

	_, diags := ensure(t, p, pool, nil)
	d := oneDiag(t, diags, providers.Error, "sha256 mismatch for "+hfRef, "expected "+strings.Repeat("ab", 32), "got "+sha256Hex(data),
		"the downloaded file was removed")
	if d.Summary != "Model Checksum Mismatch" || pathString(d.Attribute) != "model.sha256" {
		t.Errorf("summary %q at %q", d.Summary, pathString(d.Attribute))
	}
	cfg, _ := p.config()
	dir := filepath.Join(cfg.CacheDir, "models", "hf", "org", "repo", "main")
	for _, name := range []string{"model.gguf", "model.gguf.partial"} {
		if _, err := os.Stat(filepath.Join(dir, name)); !os.IsNotExist(err) {
			t.Errorf("%s still exists after a checksum mismatch: %v", name, err)
		}
	}
}

func TestDownloadOfANonGGUFFileRemovesIt(t *testing.T) {
	ms := &modelServer{data: []byte("<!DOCTYPE html><html>Sign in to continue</html>")}
	srv := httptest.NewServer(ms)
	defer srv.Close()
	p := hfProvider(t, srv)
	_, diags := ensure(t, p, testPool(hfRef), nil)
	oneDiag(t, diags, providers.Error, "is not a usable GGUF model", `it starts with "<!DO"`, "it was removed")
	cfg, _ := p.config()
	if _, err := os.Stat(filepath.Join(cfg.CacheDir, "models", "hf", "org", "repo", "main", "model.gguf.partial")); !os.IsNotExist(err) {
		t.Errorf("the partial file was kept: %v", err)
	}
}

func TestDownloadHTTPErrors(t *testing.T) {
	tests := []struct {
		name    string
		status  int
		token   string
		ref     string
		message string
		want    []string
	}{
		{name: "401 without a token asks for HF_TOKEN", status: 401, ref: hfRef,
			want: []string{"HTTP 401 Unauthorized", "/org/repo/resolve/main/model.gguf", "set HF_TOKEN to a Hugging Face access token"}},
		{name: "401 with a token says it was rejected", status: 401, token: "hf_wrong", ref: hfRef,
			want: []string{"HTTP 401 Unauthorized", "the token in HF_TOKEN was not accepted"}},
		{name: "403 is a gated repository", status: 403, token: "hf_tok", ref: hfRef, message: "Access to model org/repo is restricted.",
			want: []string{"HTTP 403 Forbidden", "(Access to model org/repo is restricted.)", "the repository is gated: accept the model's license on ",
				"/org/repo and set HF_TOKEN"}},
		{name: "404 names the URL and the revision", status: 404, token: "hf_tok", ref: hfRef + "@v9",
			want: []string{"HTTP 404 Not Found", "/org/repo/resolve/v9/model.gguf", "the file or revision does not exist", "(@v9)"}},
		{name: "500 is reported as is", status: 500, ref: hfRef,
			want: []string{"HTTP 500 Internal Server Error"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(&modelServer{status: tc.status, errMessage: tc.message})
			defer srv.Close()
			var extra []string
			if tc.token != "" {
				extra = append(extra, "HF_TOKEN="+tc.token)
			}
			p := hfProvider(t, srv, extra...)
			_, diags := ensure(t, p, testPool(tc.ref), nil)
			d := oneDiag(t, diags, providers.Error, tc.want...)
			if d.Summary != "Model Download Failed" || pathString(d.Attribute) != "model.ref" {
				t.Errorf("summary %q at %q", d.Summary, pathString(d.Attribute))
			}
			if tc.token != "" && strings.Contains(d.Detail, tc.token) {
				t.Errorf("the token leaked into the message: %q", d.Detail)
			}
		})
	}
}

func TestDownloadFollowsRedirectsWithoutLeakingTheToken(t *testing.T) {
	data := tinyLlamaBytes(t)
	cdn := &modelServer{data: data, cutFirst: 4096}
	cdnSrv := httptest.NewServer(cdn)
	defer cdnSrv.Close()
	// 127.0.0.1 and localhost are different hosts to Go's redirect policy.
	cdnURL := strings.Replace(cdnSrv.URL, "127.0.0.1", "localhost", 1)
	hub := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, cdnURL+"/blobs/abc", http.StatusFound)
	}))
	defer hub.Close()
	p := hfProvider(t, hub, "HF_TOKEN=hf_s3cret")

	if _, diags := ensure(t, p, testPool(hfRef), nil); !diags.HasErrors() {
		t.Fatal("the first transfer should have been cut")
	}
	pe, diags := ensure(t, p, testPool(hfRef), nil)
	if len(diags) > 0 {
		t.Fatal(describe(diags))
	}
	h := cdn.headers()
	if len(h) != 2 {
		t.Fatalf("CDN saw %d requests, want 2", len(h))
	}
	for i, hd := range h {
		if hd.Get("Authorization") != "" {
			t.Errorf("CDN request %d carried the Hugging Face token", i)
		}
	}
	if h[1].Get("Range") != "bytes=4096-" {
		t.Errorf("the redirected resume lost its Range header: %q", h[1].Get("Range"))
	}
	if got, _ := os.ReadFile(pe.ModelPath); !bytes.Equal(got, data) {
		t.Error("the file differs from the served one")
	}
}

func TestDownloadHTTPSURL(t *testing.T) {
	data := smallGGUF("llama", 4096)
	ms := &modelServer{data: data}
	srv := httptest.NewTLSServer(ms)
	defer srv.Close()
	bin := t.TempDir()
	fakeServer(t, bin, "llama-server", "version: 4748 (c392e5094)")
	p := newTestProvider(t, append(testEnv(t, bin), "HF_TOKEN=hf_s3cret"), "", WithHTTPClient(srv.Client()))

	pe, diags := ensure(t, p, testPool(srv.URL+"/files/My%20Model.gguf?download=true"), nil)
	if len(diags) > 0 {
		t.Fatal(describe(diags))
	}
	if filepath.Base(pe.ModelPath) != "My Model.gguf" || !strings.Contains(pe.ModelPath, filepath.Join("models", "url")) {
		t.Errorf("ModelPath = %q", pe.ModelPath)
	}
	if h := ms.headers(); h[0].Get("Authorization") != "" {
		t.Error("the Hugging Face token was sent to another host")
	}
}

func TestDownloadGivesUpOnAStalledTransfer(t *testing.T) {
	ms := &modelServer{data: tinyLlamaBytes(t), stall: true}
	srv := httptest.NewServer(ms)
	defer srv.Close()
	bin := t.TempDir()
	fakeServer(t, bin, "llama-server", "version: 4748 (c392e5094)")
	p := newTestProvider(t, append(testEnv(t, bin), "HF_ENDPOINT="+srv.URL), "", WithStallTimeout(50*time.Millisecond))

	_, diags := ensure(t, p, testPool(hfRef), nil)
	oneDiag(t, diags, providers.Error, "stopped after 10 B of 976.6 KiB (no data for 50ms)", "the next apply resumes it")
}

func TestDownloadReplacesACachedCopyThatNoLongerMatches(t *testing.T) {
	old := smallGGUF("llama", 2048)
	ms := &modelServer{data: old}
	srv := httptest.NewServer(ms)
	defer srv.Close()
	p := hfProvider(t, srv)
	if _, diags := ensure(t, p, testPool(hfRef), nil); len(diags) > 0 {
		t.Fatal(describe(diags))
	}

	// The revision moved upstream and the pool now pins the new digest.
	fresh := smallGGUF("qwen2", 32768)
	ms.setData(fresh)
	pool := testPool(hfRef)
	pool.Model.SHA256 = sha256Hex(fresh)
	pe, diags := ensure(t, p, pool, nil)
	if len(diags) > 0 {
		t.Fatal(describe(diags))
	}
	if got, _ := os.ReadFile(pe.ModelPath); !bytes.Equal(got, fresh) || len(ms.headers()) != 2 {
		t.Errorf("the stale cached copy was not replaced (%d requests)", len(ms.headers()))
	}
}

func TestDownloadUsesTheTokenFileOfHuggingFaceTools(t *testing.T) {
	ms := &modelServer{data: smallGGUF("llama", 2048)}
	srv := httptest.NewServer(ms)
	defer srv.Close()
	hfHome := t.TempDir()
	writeFile(t, hfHome, "token", []byte("hf_fromfile\n"), 0o600)
	p := hfProvider(t, srv, "HF_HOME="+hfHome)
	if _, diags := ensure(t, p, testPool(hfRef), nil); len(diags) > 0 {
		t.Fatal(describe(diags))
	}
	if got := ms.headers()[0].Get("Authorization"); got != "Bearer hf_fromfile" {
		t.Errorf("Authorization = %q", got)
	}
}

func TestConcurrentEnsuresDownloadOnce(t *testing.T) {
	data := tinyLlamaBytes(t)
	ms := &modelServer{data: data}
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

func TestParseContentRange(t *testing.T) {
	tests := []struct {
		in          string
		start, size int64
		ok          bool
	}{
		{"bytes 100-199/1000", 100, 1000, true},
		{"bytes */1000", -1, 1000, true},
		{"bytes 100-199/*", 0, 0, false},
		{"items 1-2/3", 0, 0, false},
		{"", 0, 0, false},
	}
	for _, tc := range tests {
		start, size, ok := parseContentRange(tc.in)
		if start != tc.start || size != tc.size || ok != tc.ok {
			t.Errorf("parseContentRange(%q) = %d, %d, %v", tc.in, start, size, ok)
		}
	}
}

func TestDownloadFinishesACompletePartialFile(t *testing.T) {
	data := smallGGUF("llama", 4096)
	ms := &modelServer{data: data}
	srv := httptest.NewServer(ms)
	defer srv.Close()
	p := hfProvider(t, srv)
	cfg, _ := p.config()
	dir := filepath.Join(cfg.CacheDir, "models", "hf", "org", "repo", "main")
	// The previous run received every byte but stopped before the rename.
	writeFile(t, dir, "model.gguf.partial", data, 0o644)

	pe, diags := ensure(t, p, testPool(hfRef), nil)
	if len(diags) > 0 {
		t.Fatal(describe(diags))
	}
	h := ms.headers()
	if len(h) != 1 || h[0].Get("Range") != "bytes="+strconv.Itoa(len(data))+"-" {
		t.Fatalf("requests %v", h)
	}
	if pe.ModelPath != filepath.Join(dir, "model.gguf") || pe.ModelSHA256 != sha256Hex(data) {
		t.Errorf("model %s (%s)", pe.ModelPath, pe.ModelSHA256)
	}
}

func TestCancellingEnsureKeepsThePartialDownload(t *testing.T) {
	ms := &modelServer{data: tinyLlamaBytes(t), stall: true}
	srv := httptest.NewServer(ms)
	defer srv.Close()
	p := hfProvider(t, srv)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	progress := func(e providers.Event) {
		if e.Stage == "download" && e.Total > 0 {
			cancel() // the response has begun
		}
	}
	_, diags := p.Ensure(ctx, providers.EnsureRequest{Pool: testPool(hfRef), Config: poolBlock(t, ""), Progress: progress})
	oneDiag(t, diags, providers.Error, "(context canceled)", "is kept and the next apply resumes it")
	cfg, _ := p.config()
	fi, err := os.Stat(filepath.Join(cfg.CacheDir, "models", "hf", "org", "repo", "main", "model.gguf.partial"))
	if err != nil || fi.Size() > 10 {
		t.Errorf("partial file: %v, %v", fi, err)
	}
}
