package handoff

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/spf13/afero"

	"github.com/llorch/llorch/internal/faultfs"
)

func TestFileName(t *testing.T) {
	tests := []struct {
		name, pool, replica, want string
	}{
		{"plain pool", "chat", "r0", "chat-r0.json"},
		{"for_each key", `embed["bge"]`, "r1", "embed_bge-r1.json"},
		{"count index", "x[0]", "r0", "x_0-r0.json"},
		{"key with spaces and symbols", `m["my model/v2"]`, "r0", "m_my_model_v2-r0.json"},
		{"path separators cannot escape the directory", "../../etc/passwd", "r0", ".._.._etc_passwd-r0.json"},
		{"kept characters", "a.b_c-D9", "r10", "a.b_c-D9-r10.json"},
		{"non-ASCII letters are replaced", "modèle", "r0", "mod_le-r0.json"},
		{"empty parts", "", "", "_-_.json"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := FileName(tc.pool, tc.replica); got != tc.want {
				t.Errorf("FileName(%q, %q) = %q, want %q", tc.pool, tc.replica, got, tc.want)
			}
		})
	}
}

func TestSanitizeNeverReturnsADirectoryName(t *testing.T) {
	for _, in := range []string{"", ".", "..", "...", "[]", `"`} {
		got := Sanitize(in)
		if got == "" || got == "." || got == ".." || strings.ContainsRune(got, '/') {
			t.Errorf("Sanitize(%q) = %q", in, got)
		}
	}
}

func sample() File {
	return File{
		Engine:           "llamacpp",
		EngineVersion:    "llamacpp-b6600-cpu",
		ProvisioningMode: "binary",
		URL:              "http://127.0.0.1:8080",
		PoolID:           "chat",
		ReplicaID:        "r0",
		Model:            Model{Ref: "file:/srv/models/q.gguf", Path: "/srv/models/q.gguf", SHA256: "9f86d081"},
		Flags:            []string{"--parallel", "4"},
		DeviceMask:       "0",
		PID:              4242,
		ReadyAt:          time.Date(2025, 6, 1, 10, 0, 3, 0, time.UTC),
		Labels:           map[string]string{"team": "search"},
	}
}

// The bytes are a contract with routers (DESIGN §7).
func TestWriteFormat(t *testing.T) {
	afs := afero.NewMemMapFs()
	if err := Write(afs, "/run/engines/chat-r0.json", sample()); err != nil {
		t.Fatal(err)
	}
	got, _ := afero.ReadFile(afs, "/run/engines/chat-r0.json")
	want := `{
  "engine": "llamacpp",
  "engine_version": "llamacpp-b6600-cpu",
  "provisioning_mode": "binary",
  "url": "http://127.0.0.1:8080",
  "pool_id": "chat",
  "replica_id": "r0",
  "model": {
    "ref": "file:/srv/models/q.gguf",
    "path": "/srv/models/q.gguf",
    "sha256": "9f86d081"
  },
  "flags": [
    "--parallel",
    "4"
  ],
  "device_mask": "0",
  "pid": 4242,
  "ready_at": "2025-06-01T10:00:03Z",
  "draining": false,
  "labels": {
    "team": "search"
  }
}
`
	if string(got) != want {
		t.Errorf("handoff file =\n%s\nwant\n%s", got, want)
	}
}

func TestWriteNeverWritesNullListsOrMaps(t *testing.T) {
	afs := afero.NewMemMapFs()
	f := sample()
	f.Flags, f.Labels = nil, nil
	if err := Write(afs, "/h/x.json", f); err != nil {
		t.Fatal(err)
	}
	got, _ := afero.ReadFile(afs, "/h/x.json")
	if strings.Contains(string(got), "null") || !strings.Contains(string(got), `"flags": []`) || !strings.Contains(string(got), `"labels": {}`) {
		t.Errorf("handoff file =\n%s\nwant [] and {} for empty flags and labels", got)
	}
}

func TestWriteThenRead(t *testing.T) {
	afs := afero.NewMemMapFs()
	path := "/h/" + FileName(`embed["bge"]`, "r1")
	want := sample()
	want.Draining = true
	if err := Write(afs, path, want); err != nil {
		t.Fatal(err)
	}
	got, err := Read(afs, path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Read = %+v\nwant   %+v", got, want)
	}
	// A second Write replaces the first.
	want.Draining = false
	want.PID = 5000
	if err := Write(afs, path, want); err != nil {
		t.Fatal(err)
	}
	if got, _ := Read(afs, path); got.PID != 5000 || got.Draining {
		t.Errorf("after rewrite: %+v", got)
	}
}

func TestWriteModesOnDisk(t *testing.T) {
	root := t.TempDir()
	path := filepath.Join(root, "runtime", "engines", "chat-r0.json")
	if err := Write(afero.NewOsFs(), path, sample()); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]os.FileMode{
		path:               0o644,
		filepath.Dir(path): 0o755 | os.ModeDir,
	} {
		fi, err := os.Stat(p)
		if err != nil || fi.Mode() != want {
			t.Errorf("%s: mode %v (%v), want %v", p, fi.Mode(), err, want)
		}
	}
}

func TestFailedWriteKeepsTheOldFile(t *testing.T) {
	for _, op := range []faultfs.Op{faultfs.OpenFile, faultfs.Write, faultfs.Sync, faultfs.Rename} {
		t.Run(string(op), func(t *testing.T) {
			base := afero.NewMemMapFs()
			if err := Write(base, "/h/chat-r0.json", sample()); err != nil {
				t.Fatal(err)
			}
			before, _ := afero.ReadFile(base, "/h/chat-r0.json")
			f := sample()
			f.Draining = true
			err := Write(faultfs.New(base).FailOn(op, 1), "/h/chat-r0.json", f)
			if !errors.Is(err, faultfs.ErrInjected) || !strings.HasPrefix(err.Error(), "writing handoff file: ") {
				t.Fatalf("error = %v, want the injected fault, wrapped", err)
			}
			after, _ := afero.ReadFile(base, "/h/chat-r0.json")
			if string(after) != string(before) {
				t.Errorf("file changed by a failed write:\n%s", after)
			}
			entries, _ := afero.ReadDir(base, "/h")
			if len(entries) != 1 {
				t.Errorf("%d files in the directory, want 1 (no temporary left)", len(entries))
			}
		})
	}
}

func TestWriteErrors(t *testing.T) {
	tests := []struct {
		name string
		afs  afero.Fs
		path string
		want string
	}{
		{"no path", afero.NewMemMapFs(), "", "writing handoff file: no path given"},
		{"read-only filesystem", afero.NewReadOnlyFs(afero.NewMemMapFs()), "/h/x.json", "creating handoff directory for /h/x.json: operation not permitted"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := Write(tc.afs, tc.path, sample())
			if err == nil || err.Error() != tc.want {
				t.Errorf("error = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestReadErrors(t *testing.T) {
	afs := afero.NewMemMapFs()
	_ = afero.WriteFile(afs, "/h/bad.json", []byte(`{"engine": "llamacpp",`), 0o644)
	_ = afero.WriteFile(afs, "/h/type.json", []byte(`{"pid": "4242"}`), 0o644)
	tests := []struct {
		name     string
		path     string
		want     string
		notExist bool
	}{
		{"missing file", "/h/none.json", "reading handoff file: open /h/none.json: file does not exist", true},
		{"truncated JSON", "/h/bad.json", "handoff file /h/bad.json is not valid JSON (byte 22): unexpected end of JSON input", false},
		{"wrong type", "/h/type.json", "handoff file /h/type.json: json: cannot unmarshal string into Go struct field File.pid of type int", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Read(afs, tc.path)
			if err == nil || err.Error() != tc.want {
				t.Errorf("error = %v\nwant    %s", err, tc.want)
			}
			if got := errors.Is(err, fs.ErrNotExist); got != tc.notExist {
				t.Errorf("errors.Is(err, fs.ErrNotExist) = %v, want %v", got, tc.notExist)
			}
		})
	}
}

func TestRemove(t *testing.T) {
	afs := afero.NewMemMapFs()
	if err := Write(afs, "/h/chat-r0.json", sample()); err != nil {
		t.Fatal(err)
	}
	if err := Remove(afs, "/h/chat-r0.json"); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	if ok, _ := afero.Exists(afs, "/h/chat-r0.json"); ok {
		t.Error("file still there")
	}
	if err := Remove(afs, "/h/chat-r0.json"); err != nil {
		t.Errorf("Remove of a missing file: %v", err)
	}
	ro := afero.NewReadOnlyFs(afs)
	_ = Write(afs, "/h/x.json", sample())
	if err := Remove(ro, "/h/x.json"); err == nil || err.Error() != "removing handoff file /h/x.json: operation not permitted" {
		t.Errorf("Remove on a read-only filesystem: error = %v", err)
	}
}
