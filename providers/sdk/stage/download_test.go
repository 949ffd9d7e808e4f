package stage

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/llorch/llorch/internal/testgguf"
	"github.com/llorch/llorch/providers"
	"github.com/llorch/llorch/providers/sdk/gguf"
	"github.com/llorch/llorch/providers/sdk/sdktest"
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
	stall       bool   // send 10 bytes, then nothing until the client gives up
	commit      string // X-Repo-Commit, as Hugging Face sends with a resolve
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
		if s.commit != "" {
			w.Header().Set("X-Repo-Commit", s.commit)
		}
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

// hfStager is a Stager whose Hugging Face endpoint is srv, with an
// environment of its own and a GGUF check.
func hfStager(t *testing.T, srv *httptest.Server, extraEnv ...string) *Stager {
	t.Helper()
	env := append([]string{"HOME=" + t.TempDir(), "HF_ENDPOINT=" + srv.URL}, extraEnv...)
	return testStager(t, env)
}

func testStager(t *testing.T, env []string) *Stager {
	cache := filepath.Join(t.TempDir(), "cache")
	return &Stager{CacheDir: cache, Getenv: getenv(env), UserAgent: "llorch-test/1", Check: checkGGUF,
		Digests: NewDigests(filepath.Join(cache, "digests.json"))}
}

// getenv looks keys up in env, a list of KEY=VALUE.
func getenv(env []string) func(string) string {
	return func(key string) string {
		for _, kv := range env {
			if k, v, ok := strings.Cut(kv, "="); ok && k == key {
				return v
			}
		}
		return ""
	}
}

// checkGGUF is the check a GGUF provider passes.
func checkGGUF(_ context.Context, path string) error {
	if _, err := gguf.ReadFile(path); err != nil {
		return &Error{Summary: "Model Is Not GGUF", Err: err}
	}
	return nil
}

// stageRef parses ref and stages it.
func stageRef(t *testing.T, st *Stager, ref, want string, ev *sdktest.Events) (*Staged, error) {
	t.Helper()
	return stageIn(t, st, "/", ref, want, ev)
}

// stageIn parses ref with relative paths in dir and stages it.
func stageIn(t *testing.T, st *Stager, dir, ref, want string, ev *sdktest.Events) (*Staged, error) {
	t.Helper()
	r, err := ParseRef(ref, dir)
	if err != nil {
		t.Fatal(err)
	}
	progress := func(providers.Event) {}
	if ev != nil {
		progress = ev.Add
	}
	return st.Stage(context.Background(), r, want, progress)
}

const hfRef = "hf:org/repo/model.gguf"

func TestDownloadFromHuggingFace(t *testing.T) {
	data := testgguf.TinyLlama().Bytes()
	ms := &modelServer{data: data, commit: "0123456789abcdef0123456789abcdef01234567"}
	srv := httptest.NewServer(ms)
	defer srv.Close()
	st := hfStager(t, srv, "HF_TOKEN=hf_s3cret")

	var ev sdktest.Events
	m, err := stageRef(t, st, hfRef+"@v1.0", sha256Hex(data), &ev)
	if err != nil {
		t.Fatal(err)
	}
	if m.Revision != ms.commit {
		t.Errorf("revision %q, want the commit the server named", m.Revision)
	}
	wantPath := filepath.Join(st.CacheDir, "models", "hf", "org", "repo", "v1.0", "model.gguf")
	if m.Path != wantPath || m.SHA256 != sha256Hex(data) {
		t.Errorf("model %s (%s), want %s", m.Path, m.SHA256, wantPath)
	}
	got, err := os.ReadFile(m.Path)
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
	if h[0].Get("Authorization") != "Bearer hf_s3cret" || h[0].Get("Range") != "" || h[0].Get("User-Agent") != "llorch-test/1" {
		t.Errorf("request headers: Authorization %q, Range %q, User-Agent %q", h[0].Get("Authorization"), h[0].Get("Range"), h[0].Get("User-Agent"))
	}
	var last providers.Event
	for _, e := range ev.All() {
		if e.Stage == "download" && e.Total > 0 {
			last = e
		}
	}
	if last.Current != int64(len(data)) || last.Total != int64(len(data)) {
		t.Errorf("last download event = %+v, want %d of %d bytes", last, len(data), len(data))
	}

	// A second Stage uses the cached file without a request or a rehash,
	// and still knows the revision it came from.
	var ev2 sdktest.Events
	again, err := stageRef(t, st, hfRef+"@v1.0", sha256Hex(data), &ev2)
	if err != nil {
		t.Fatal(err)
	}
	if again.Revision != ms.commit {
		t.Errorf("revision from the cache %q, want %q", again.Revision, ms.commit)
	}
	if n := len(ms.headers()); n != 1 {
		t.Errorf("the second Stage made %d more request(s)", n-1)
	}
	if stages := ev2.Stages(); stages["download"] != 0 || stages["verify"] != 0 {
		t.Errorf("second Stage stages = %v, want no download or verify", stages)
	}
}

func TestDownloadResumesAnInterruptedTransfer(t *testing.T) {
	data := testgguf.TinyLlama().Bytes()
	cut := 1<<20 + 123
	ms := &modelServer{data: data, cutFirst: cut}
	srv := httptest.NewServer(ms)
	defer srv.Close()
	st := hfStager(t, srv)

	_, err := stageRef(t, st, hfRef, sha256Hex(data), nil)
	errHas(t, err, "downloading "+srv.URL+"/org/repo/resolve/main/model.gguf: stopped after 1.0 MiB of 8.7 MiB",
		"the connection closed early", "is kept and the next apply resumes it")
	partial := filepath.Join(st.CacheDir, "models", "hf", "org", "repo", "main", "model.gguf.partial")
	if fi, err := os.Stat(partial); err != nil || fi.Size() != int64(cut) {
		t.Fatalf("partial file after the interruption: %v, %v (want %d bytes)", fi, err, cut)
	}

	var ev sdktest.Events
	m, err := stageRef(t, st, hfRef, sha256Hex(data), &ev)
	if err != nil {
		t.Fatal(err)
	}
	h := ms.headers()
	if len(h) != 2 || h[1].Get("Range") != "bytes="+strconv.Itoa(cut)+"-" {
		t.Fatalf("resume request Range = %q (%d requests), want bytes=%d-", h[len(h)-1].Get("Range"), len(h), cut)
	}
	got, _ := os.ReadFile(m.Path)
	if !bytes.Equal(got, data) {
		t.Fatal("the resumed file is not byte-identical to the served one")
	}
	resumed := false
	for _, e := range ev.All() {
		if strings.HasPrefix(e.Message, "resuming "+hfRef+" at 1.0 MiB") {
			resumed = true
		}
	}
	if !resumed {
		t.Errorf("no resume event in %v", ev.All())
	}
}

func TestDownloadStartsOverWhenTheServerIgnoresRange(t *testing.T) {
	data := testgguf.TinyLlama().Bytes()
	ms := &modelServer{data: data, ignoreRange: true}
	srv := httptest.NewServer(ms)
	defer srv.Close()
	st := hfStager(t, srv)
	dest := filepath.Join(st.CacheDir, "models", "hf", "org", "repo", "main", "model.gguf")
	writeFile(t, filepath.Dir(dest), "model.gguf.partial", []byte("stale bytes from another file"), 0o644)

	m, err := stageRef(t, st, hfRef, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if h := ms.headers(); h[0].Get("Range") != "bytes=29-" {
		t.Errorf("Range = %q, want a resume attempt", h[0].Get("Range"))
	}
	got, _ := os.ReadFile(m.Path)
	if !bytes.Equal(got, data) || m.SHA256 != sha256Hex(data) {
		t.Fatal("after a 200 answer to a Range request the file must be the whole served file")
	}
}

func TestDownloadChecksumMismatchRemovesTheFile(t *testing.T) {
	data := testgguf.TinyLlama().Bytes()
	ms := &modelServer{data: data}
	srv := httptest.NewServer(ms)
	defer srv.Close()
	st := hfStager(t, srv)

	_, err := stageRef(t, st, hfRef, strings.Repeat("ab", 32), nil)
	errHas(t, err, "sha256 mismatch for "+hfRef, "expected "+strings.Repeat("ab", 32), "got "+sha256Hex(data),
		"the downloaded file was removed")
	stageError(t, err, "Model Checksum Mismatch", FieldSHA256)
	dir := filepath.Join(st.CacheDir, "models", "hf", "org", "repo", "main")
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
	st := hfStager(t, srv)
	_, err := stageRef(t, st, hfRef, "", nil)
	errHas(t, err, "the file downloaded from "+srv.URL+"/org/repo/resolve/main/model.gguf was removed: ", "not a GGUF file", `it starts with "<!DO"`)
	stageError(t, err, "Model Is Not GGUF", FieldRef)
	if _, err := os.Stat(filepath.Join(st.CacheDir, "models", "hf", "org", "repo", "main", "model.gguf.partial")); !os.IsNotExist(err) {
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
			st := hfStager(t, srv, extra...)
			_, err := stageRef(t, st, tc.ref, "", nil)
			errHas(t, err, tc.want...)
			stageError(t, err, "Model Download Failed", FieldRef)
			if tc.token != "" && strings.Contains(err.Error(), tc.token) {
				t.Errorf("the token leaked into the message: %q", err)
			}
		})
	}
}

func TestDownloadFollowsRedirectsWithoutLeakingTheToken(t *testing.T) {
	data := testgguf.TinyLlama().Bytes()
	cdn := &modelServer{data: data, cutFirst: 4096}
	cdnSrv := httptest.NewServer(cdn)
	defer cdnSrv.Close()
	// 127.0.0.1 and localhost are different hosts to Go's redirect policy.
	cdnURL := strings.Replace(cdnSrv.URL, "127.0.0.1", "localhost", 1)
	hub := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, cdnURL+"/blobs/abc", http.StatusFound)
	}))
	defer hub.Close()
	st := hfStager(t, hub, "HF_TOKEN=hf_s3cret")

	if _, err := stageRef(t, st, hfRef, "", nil); err == nil {
		t.Fatal("the first transfer should have been cut")
	}
	m, err := stageRef(t, st, hfRef, "", nil)
	if err != nil {
		t.Fatal(err)
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
	if got, _ := os.ReadFile(m.Path); !bytes.Equal(got, data) {
		t.Error("the file differs from the served one")
	}
}

func TestDownloadHTTPSURL(t *testing.T) {
	data := small(4096)
	ms := &modelServer{data: data}
	srv := httptest.NewTLSServer(ms)
	defer srv.Close()
	st := testStager(t, []string{"HF_TOKEN=hf_s3cret"})
	st.Client = srv.Client()

	m, err := stageRef(t, st, srv.URL+"/files/My%20Model.gguf?download=true", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(m.Path) != "My Model.gguf" || !strings.Contains(m.Path, filepath.Join("models", "url")) {
		t.Errorf("ModelPath = %q", m.Path)
	}
	if h := ms.headers(); h[0].Get("Authorization") != "" {
		t.Error("the Hugging Face token was sent to another host")
	}
}

func TestDownloadGivesUpOnAStalledTransfer(t *testing.T) {
	ms := &modelServer{data: testgguf.TinyLlama().Bytes(), stall: true}
	srv := httptest.NewServer(ms)
	defer srv.Close()
	st := hfStager(t, srv)
	st.StallTimeout = 50 * time.Millisecond

	_, err := stageRef(t, st, hfRef, "", nil)
	errHas(t, err, "stopped after 10 B of 976.6 KiB (no data for 50ms)", "the next apply resumes it")
}

func TestDownloadReplacesACachedCopyThatNoLongerMatches(t *testing.T) {
	old := small(2048)
	ms := &modelServer{data: old}
	srv := httptest.NewServer(ms)
	defer srv.Close()
	st := hfStager(t, srv)
	if _, err := stageRef(t, st, hfRef, "", nil); err != nil {
		t.Fatal(err)
	}

	// The revision moved upstream and the pool now pins the new digest.
	fresh := small(32768)
	ms.setData(fresh)
	m, err := stageRef(t, st, hfRef, sha256Hex(fresh), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(m.Path); !bytes.Equal(got, fresh) || len(ms.headers()) != 2 {
		t.Errorf("the stale cached copy was not replaced (%d requests)", len(ms.headers()))
	}
}

func TestDownloadUsesTheTokenFileOfHuggingFaceTools(t *testing.T) {
	ms := &modelServer{data: small(2048)}
	srv := httptest.NewServer(ms)
	defer srv.Close()
	hfHome := t.TempDir()
	writeFile(t, hfHome, "token", []byte("hf_fromfile\n"), 0o600)
	st := hfStager(t, srv, "HF_HOME="+hfHome)
	if _, err := stageRef(t, st, hfRef, "", nil); err != nil {
		t.Fatal(err)
	}
	if got := ms.headers()[0].Get("Authorization"); got != "Bearer hf_fromfile" {
		t.Errorf("Authorization = %q", got)
	}
}

func TestConcurrentStagesDownloadOnce(t *testing.T) {
	data := testgguf.TinyLlama().Bytes()
	ms := &modelServer{data: data}
	srv := httptest.NewServer(ms)
	defer srv.Close()
	st := hfStager(t, srv)

	var wg sync.WaitGroup
	results := make([]error, 4)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Two Stagers on one cache directory, as two llorch processes.
			s := *st
			s.Digests = NewDigests(filepath.Join(st.CacheDir, "digests.json"))
			_, results[i] = stageRef(t, &s, hfRef, sha256Hex(data), nil)
		}()
	}
	wg.Wait()
	for i, err := range results {
		if err != nil {
			t.Errorf("Stage %d: %v", i, err)
		}
	}
	if n := len(ms.headers()); n != 1 {
		t.Errorf("%d concurrent Stages made %d requests, want 1", len(results), n)
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
	data := small(4096)
	ms := &modelServer{data: data}
	srv := httptest.NewServer(ms)
	defer srv.Close()
	st := hfStager(t, srv)
	dir := filepath.Join(st.CacheDir, "models", "hf", "org", "repo", "main")
	// The previous run received every byte but stopped before the rename.
	writeFile(t, dir, "model.gguf.partial", data, 0o644)

	m, err := stageRef(t, st, hfRef, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	h := ms.headers()
	if len(h) != 1 || h[0].Get("Range") != "bytes="+strconv.Itoa(len(data))+"-" {
		t.Fatalf("requests %v", h)
	}
	if m.Path != filepath.Join(dir, "model.gguf") || m.SHA256 != sha256Hex(data) {
		t.Errorf("model %s (%s)", m.Path, m.SHA256)
	}
}

func TestCancellingStageKeepsThePartialDownload(t *testing.T) {
	ms := &modelServer{data: testgguf.TinyLlama().Bytes(), stall: true}
	srv := httptest.NewServer(ms)
	defer srv.Close()
	st := hfStager(t, srv)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	progress := func(e providers.Event) {
		if e.Stage == "download" && e.Total > 0 {
			cancel() // the response has begun
		}
	}
	ref, _ := ParseRef(hfRef, "/")
	_, err := st.Stage(ctx, ref, "", progress)
	errHas(t, err, "(context canceled)", "is kept and the next apply resumes it")
	fi, err := os.Stat(filepath.Join(st.CacheDir, "models", "hf", "org", "repo", "main", "model.gguf.partial"))
	if err != nil || fi.Size() > 10 {
		t.Errorf("partial file: %v, %v", fi, err)
	}
}

// small is a 250 KB GGUF model whose trained context is ctxLen.
func small(ctxLen uint32) []byte {
	m := testgguf.Small()
	m.ContextLength = ctxLen
	return m.Bytes()
}

// errHas fails unless err's text holds every part.
func errHas(t *testing.T, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error; want one containing %q", parts)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error %q does not contain %q", err, p)
		}
	}
}

// stageError asserts err is an *Error with this summary and field.
func stageError(t *testing.T, err error, summary string, field Field) {
	t.Helper()
	var se *Error
	if !errors.As(err, &se) || se.Summary != summary || se.Field != field {
		t.Errorf("error %v (%T) is not a stage.Error %q about field %d", err, err, summary, field)
	}
}

func writeFile(t testing.TB, dir, name string, data []byte, perm os.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := errors.Join(os.MkdirAll(filepath.Dir(p), 0o755), os.WriteFile(p, data, perm)); err != nil {
		t.Fatal(err)
	}
	return p
}

func sha256Hex(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}
