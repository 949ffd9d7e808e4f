package stage

import (
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/llorch/llorch/providers/sdk/sdktest"
)

func TestStageLocalFile(t *testing.T) {
	dir := t.TempDir() // the configuration directory
	data := small(4096)
	path := writeFile(t, dir, "models/m.gguf", data, 0o644)
	writeFile(t, dir, "notes.txt", []byte("not a model"), 0o644)
	if err := os.Mkdir(filepath.Join(dir, "adir"), 0o755); err != nil {
		t.Fatal(err)
	}
	st := testStager(t, nil)
	stage := func(ref, want string, ev *sdktest.Events) (*Staged, error) {
		t.Helper()
		return stageIn(t, st, dir, ref, want, ev)
	}

	t.Run("a relative path resolves against the configuration directory", func(t *testing.T) {
		var ev sdktest.Events
		m, err := stage("file:models/m.gguf", sha256Hex(data), &ev)
		if err != nil {
			t.Fatal(err)
		}
		if m.Path != path || m.SHA256 != sha256Hex(data) || m.Size != int64(len(data)) {
			t.Errorf("staged %+v, want %s", m, path)
		}
		if ev.Stages()["verify"] == 0 {
			t.Error("hashing sent no verify events")
		}
		// The second time the digest comes from the cache.
		var ev2 sdktest.Events
		if _, err := stage("file:"+path, "", &ev2); err != nil || ev2.Stages()["verify"] != 0 {
			t.Errorf("second Stage: %v, events %v", err, ev2.All())
		}
	})
	tests := []struct {
		name, ref, want string
		summary         string
		field           Field
		errWant         []string
	}{
		{"a missing file", "file:models/gone.gguf", "", "Model File Not Found", FieldRef,
			[]string{"model file " + filepath.Join(dir, "models/gone.gguf") + ` not found (model ref "file:models/gone.gguf")`}},
		{"a directory", "file:adir", "", "Model File Not Found", FieldRef,
			[]string{`model ref "file:adir" names ` + filepath.Join(dir, "adir") + ", which is not a regular file"}},
		{"a sha256 mismatch", "file:models/m.gguf", strings.Repeat("0", 64), "Model Checksum Mismatch", FieldSHA256,
			[]string{"sha256 mismatch for model file " + path, "expected " + strings.Repeat("0", 64), "got " + sha256Hex(data)}},
		{"a file that fails the check", "file:notes.txt", "", "Model Is Not GGUF", FieldRef,
			[]string{"not a GGUF file"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := stage(tc.ref, tc.want, nil)
			errHas(t, err, tc.errWant...)
			stageError(t, err, tc.summary, tc.field)
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "notes.txt")); err != nil {
		t.Errorf("a local file that failed was touched: %v", err)
	}
}

func TestStageHTTPSErrors(t *testing.T) {
	srv := httptest.NewTLSServer(&modelServer{status: 404})
	defer srv.Close()
	st := testStager(t, nil)
	st.Client = srv.Client()
	_, err := stageRef(t, st, srv.URL+"/m.gguf", "", nil)
	errHas(t, err, "downloading "+srv.URL+"/m.gguf: HTTP 404 Not Found; the file does not exist at this URL")
	stageError(t, err, "Model Download Failed", FieldRef)

	// An unreachable server: nothing listens any more.
	gone := httptest.NewServer(&modelServer{})
	url := gone.URL
	gone.Close()
	_, err = stageRef(t, testStager(t, nil), strings.Replace(url, "http://", "https://", 1)+"/m.gguf", "", nil)
	errHas(t, err, "downloading https://"+strings.TrimPrefix(url, "http://")+"/m.gguf: ", "connection refused")
}

func TestStageWithoutACheckOrDigestCache(t *testing.T) {
	data := []byte("safetensors are not checked here")
	ms := &modelServer{data: data}
	srv := httptest.NewServer(ms)
	defer srv.Close()
	st := &Stager{CacheDir: t.TempDir(), Getenv: getenv([]string{"HF_ENDPOINT=" + srv.URL})}
	m, err := stageRef(t, st, "hf:org/repo/model.safetensors", sha256Hex(data), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(m.Path); string(got) != string(data) || m.Path != filepath.Join(st.CacheDir, "models/hf/org/repo/main/model.safetensors") {
		t.Errorf("staged %s: %q", m.Path, got)
	}
}

func TestStageNeedsAnAbsoluteCacheDirectoryToDownload(t *testing.T) {
	st := &Stager{CacheDir: ""}
	_, err := stageRef(t, st, "https://example.com/m.gguf", "", nil)
	errHas(t, err, `staging https://example.com/m.gguf: the cache directory "" is not an absolute path`)
}
