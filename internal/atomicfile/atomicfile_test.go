package atomicfile

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/spf13/afero"

	"github.com/llorch/llorch/internal/faultfs"
)

func TestWriteCreatesAndReplaces(t *testing.T) {
	fs := afero.NewMemMapFs()
	if err := fs.MkdirAll("/d", 0o755); err != nil {
		t.Fatal(err)
	}
	for _, content := range []string{"first", "second, longer than the first", "3"} {
		if err := Write(fs, "/d/f.json", []byte(content), 0o640); err != nil {
			t.Fatalf("Write(%q): %v", content, err)
		}
		got, err := afero.ReadFile(fs, "/d/f.json")
		if err != nil || string(got) != content {
			t.Errorf("content = %q, %v; want %q", got, err, content)
		}
	}
	fi, err := fs.Stat("/d/f.json")
	if err != nil || fi.Mode().Perm() != 0o640 {
		t.Errorf("mode = %v, %v; want 0640", fi.Mode().Perm(), err)
	}
	assertOnlyFiles(t, fs, "/d", "f.json")
}

func TestWriteSetsTheModeDespiteTheUmask(t *testing.T) {
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	dir := t.TempDir()
	path := filepath.Join(dir, "handoff.json")
	if err := Write(afero.NewOsFs(), path, []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("mode = %v, %v; want 0644", fi.Mode().Perm(), err)
	}
}

// Failing any single step leaves the target exactly as it was and no
// temporary file behind.
func TestWriteFailureLeavesTheTargetAlone(t *testing.T) {
	for _, op := range []faultfs.Op{faultfs.OpenFile, faultfs.Write, faultfs.Sync, faultfs.Rename} {
		t.Run(string(op), func(t *testing.T) {
			base := afero.NewMemMapFs()
			if err := afero.WriteFile(base, "/d/f", []byte("old"), 0o600); err != nil {
				t.Fatal(err)
			}
			ffs := faultfs.New(base).FailOn(op, 1)
			err := Write(ffs, "/d/f", []byte("new"), 0o600)
			if !errors.Is(err, faultfs.ErrInjected) {
				t.Fatalf("error = %v, want the injected fault", err)
			}
			if got, _ := afero.ReadFile(base, "/d/f"); string(got) != "old" {
				t.Errorf("target = %q, want %q", got, "old")
			}
			assertOnlyFiles(t, base, "/d", "f")
		})
	}
}

func TestWriteErrorsNameTheFile(t *testing.T) {
	tests := []struct {
		op   faultfs.Op
		want string
	}{
		{faultfs.OpenFile, "cannot create temporary file to update /d/f: open /d/.f.tmp-"},
		{faultfs.Write, "writing /d/.f.tmp-"},
		{faultfs.Sync, "syncing /d/.f.tmp-"},
		{faultfs.Rename, "replacing /d/f: rename /d/.f.tmp-"},
	}
	for _, tc := range tests {
		t.Run(string(tc.op), func(t *testing.T) {
			ffs := faultfs.New(afero.NewMemMapFs()).FailOn(tc.op, 1)
			_ = ffs.MkdirAll("/d", 0o755)
			err := Write(ffs, "/d/f", []byte("new"), 0o600)
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("error = %v, want prefix %q", err, tc.want)
			}
		})
	}
}

func TestStageDoesNotTouchTheTargetUntilCommit(t *testing.T) {
	fs := afero.NewMemMapFs()
	if err := afero.WriteFile(fs, "/d/f", []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := Stage(fs, "/d/f", []byte("new"), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if p.Path() != "/d/f" {
		t.Errorf("Path() = %q", p.Path())
	}
	if got, _ := afero.ReadFile(fs, "/d/f"); string(got) != "old" {
		t.Errorf("target changed before Commit: %q", got)
	}
	if err := p.Commit(); err != nil {
		t.Fatal(err)
	}
	if got, _ := afero.ReadFile(fs, "/d/f"); string(got) != "new" {
		t.Errorf("target after Commit = %q", got)
	}
	assertOnlyFiles(t, fs, "/d", "f")
}

func TestRenameReplacesWithoutSyncingTheDirectory(t *testing.T) {
	ffs := faultfs.New(afero.NewMemMapFs())
	if err := afero.WriteFile(ffs, "/d/f", []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := Stage(ffs, "/d/f", []byte("new"), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	ffs.FailOn(faultfs.Rename, ffs.Calls(faultfs.Rename)+1)
	if err := p.Rename(); !errors.Is(err, faultfs.ErrInjected) {
		t.Fatalf("Rename: error = %v, want the injected fault", err)
	}
	if got, _ := afero.ReadFile(ffs, "/d/f"); string(got) != "old" {
		t.Errorf("target = %q after a failed Rename", got)
	}
	assertOnlyFiles(t, ffs, "/d", "f")
}

func TestDiscardRemovesTheTemporaryFile(t *testing.T) {
	fs := afero.NewMemMapFs()
	if err := afero.WriteFile(fs, "/d/f", []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := Stage(fs, "/d/f", []byte("new"), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Discard(); err != nil {
		t.Fatal(err)
	}
	if got, _ := afero.ReadFile(fs, "/d/f"); string(got) != "old" {
		t.Errorf("target = %q after Discard", got)
	}
	assertOnlyFiles(t, fs, "/d", "f")
}

func TestSyncDir(t *testing.T) {
	dir := t.TempDir()
	if err := SyncDir(afero.NewOsFs(), dir); err != nil {
		t.Errorf("SyncDir on a real directory: %v", err)
	}
	err := SyncDir(afero.NewOsFs(), filepath.Join(dir, "missing"))
	if err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("SyncDir on a missing directory: error = %v, want not-exist", err)
	}
	if err := SyncDir(afero.NewMemMapFs(), "/missing"); err != nil {
		t.Errorf("SyncDir on a memory fs should do nothing: %v", err)
	}
}

func assertOnlyFiles(t *testing.T, fs afero.Fs, dir string, want ...string) {
	t.Helper()
	entries, err := afero.ReadDir(fs, dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	if len(got) != len(want) {
		t.Errorf("files in %s = %q, want %q", dir, got, want)
		return
	}
	for i := range got {
		if got[i] != want[i] {
			t.Errorf("files in %s = %q, want %q", dir, got, want)
			return
		}
	}
}

func TestReplaceSwapsTheFileWithoutAnyFsync(t *testing.T) {
	ffs := faultfs.New(afero.NewMemMapFs())
	if err := afero.WriteFile(ffs, "/d/status.json", []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	before := ffs.Calls(faultfs.Sync)
	if err := Replace(ffs, "/d/status.json", []byte("new"), 0o644); err != nil {
		t.Fatalf("Replace: %v", err)
	}
	if got, _ := afero.ReadFile(ffs, "/d/status.json"); string(got) != "new" {
		t.Errorf("content = %q, want %q", got, "new")
	}
	if n := ffs.Calls(faultfs.Sync) - before; n != 0 {
		t.Errorf("Replace fsynced %d times, want none", n)
	}
	assertOnlyFiles(t, ffs, "/d", "status.json")
}

func TestReplaceFailureLeavesTheTargetAlone(t *testing.T) {
	for _, op := range []faultfs.Op{faultfs.OpenFile, faultfs.Write, faultfs.Rename} {
		t.Run(string(op), func(t *testing.T) {
			base := afero.NewMemMapFs()
			if err := afero.WriteFile(base, "/d/f", []byte("old"), 0o600); err != nil {
				t.Fatal(err)
			}
			err := Replace(faultfs.New(base).FailOn(op, 1), "/d/f", []byte("new"), 0o600)
			if !errors.Is(err, faultfs.ErrInjected) {
				t.Fatalf("error = %v, want the injected fault", err)
			}
			if got, _ := afero.ReadFile(base, "/d/f"); string(got) != "old" {
				t.Errorf("target = %q, want %q", got, "old")
			}
			assertOnlyFiles(t, base, "/d", "f")
		})
	}
}
