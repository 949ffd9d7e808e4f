package remote_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/llorch/llorch/internal/remote"
)

// The sshd runs on this machine, so the tests look at what EnsureFile
// wrote with os.ReadFile.
func TestEnsureFile(t *testing.T) {
	c := dial(t, shared(t))
	// With sums kept, the changes change the size: a change within a clock
	// tick of a record keeps the file's times, which is what racyWindow
	// is there for, and what a window of -1 s here does away with.
	for _, tc := range []struct {
		name                 string
		window               time.Duration
		build2, changedThere string
	}{
		{"files just changed, whose sums are not kept", 2 * time.Second, "build 2", "build X"},
		{"files old enough for their sums to be kept", -time.Second, "build 22", "build XXX"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			window := tc.window
			defer remote.SetRacyWindow(window)()
			dir := t.TempDir()
			local := filepath.Join(dir, "llorch")
			remotePath := filepath.Join(dir, "data dir", "it's", "bin", "llorch") // made, and quoted
			write(t, local, "build 1")

			ensure := func(want bool) {
				t.Helper()
				uploaded, err := c.EnsureFile(t.Context(), local, remotePath, 0o755)
				if err != nil {
					t.Fatal(err)
				}
				if uploaded != want {
					t.Errorf("EnsureFile uploaded = %v, want %v", uploaded, want)
				}
				wantContent, _ := os.ReadFile(local)
				if got, err := os.ReadFile(remotePath); err != nil || !bytes.Equal(got, wantContent) {
					t.Errorf("remote copy = %q, %v, want %q", got, err, wantContent)
				}
				if fi, err := os.Stat(remotePath); err != nil || fi.Mode().Perm() != 0o755 {
					t.Errorf("remote copy's mode = %v, %v, want 0755", fi.Mode(), err)
				}
				noTemporaries(t, filepath.Dir(remotePath))
			}
			ensure(true)  // first: sent
			ensure(false) // same bytes: not sent
			ensure(false) // again (from the record, when it is kept)
			write(t, local, tc.build2)
			ensure(true) // changed here: sent again
			if err := os.Chmod(remotePath, 0o600); err != nil {
				t.Fatal(err)
			}
			ensure(false)                         // only the mode differs: fixed, not sent
			write(t, remotePath, tc.changedThere) // changed there, in place (the same size, unless sums are kept)
			ensure(true)
			if err := os.Chmod(remotePath, 0o755); err != nil {
				t.Fatal(err)
			}
			ensure(false)
			_, err := os.Stat(filepath.Join(filepath.Dir(remotePath), ".llorch.sha256"))
			if kept := err == nil; kept != (window < 0) {
				t.Errorf("record of the sum kept = %v (%v), want %v", kept, err, window < 0)
			}
		})
	}
}

// The machine's record of a file's sum is used while the file's stat
// matches it, and a record that does not match the local file makes it
// sent again (a record is never a reason not to send).
func TestEnsureFileUsesTheRecordedSum(t *testing.T) {
	c := dial(t, shared(t))
	defer remote.SetRacyWindow(-time.Second)()
	dir := t.TempDir()
	local, remotePath := filepath.Join(dir, "llorch"), filepath.Join(dir, "remote", "llorch")
	record := filepath.Join(dir, "remote", ".llorch.sha256")
	write(t, local, "build 1")
	for range 2 { // the second call hashes and records
		if _, err := c.EnsureFile(t.Context(), local, remotePath, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(record)
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b))
	if len(f) != 4 || f[0] != sum("build 1") || f[1] != "7" {
		t.Fatalf("record = %q, want the sum, size 7, inode and ctime", b)
	}
	// A record whose stat matches is believed without hashing: here it
	// names another sum, so the file is sent again.
	write(t, record, sum("other")+" "+strings.Join(f[1:], " ")+"\n")
	if uploaded, err := c.EnsureFile(t.Context(), local, remotePath, 0o755); err != nil || !uploaded {
		t.Errorf("EnsureFile with a record of another sum = %v, %v, want it sent", uploaded, err)
	}
}

// A transfer that arrives with other bytes is caught on the machine, and
// the file there stays as it was.
func TestEnsureFileDetectsACorruptedTransfer(t *testing.T) {
	c := dial(t, shared(t))
	dir := t.TempDir()
	local, remotePath := filepath.Join(dir, "llorch"), filepath.Join(dir, "remote", "llorch")
	write(t, local, "build 1")
	if _, err := c.EnsureFile(t.Context(), local, remotePath, 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, local, "build 2")
	restore := remote.SetSendFilter(func(r io.Reader) io.Reader { return &flipFirstByte{r: r} })
	defer restore()

	_, err := c.EnsureFile(t.Context(), local, remotePath, 0o755)
	want := fmt.Sprintf(`machine "local": uploading %s to %s: the copy's sha256 is %s, not %s: the transfer was corrupted, so %s was left as it was; try again`,
		local, remotePath, sum("Cuild 2"), sum("build 2"), remotePath)
	var ce *remote.ChecksumError
	if err == nil || err.Error() != want || !errors.As(err, &ce) {
		t.Errorf("EnsureFile of a corrupted transfer = %v, want %s", err, want)
	}
	if got, _ := os.ReadFile(remotePath); string(got) != "build 1" {
		t.Errorf("remote copy after a corrupted transfer = %q, want the old %q", got, "build 1")
	}
	noTemporaries(t, filepath.Dir(remotePath))
}

func TestEnsureFileErrors(t *testing.T) {
	c := dial(t, shared(t))
	dir := t.TempDir()
	local := filepath.Join(dir, "llorch")
	write(t, local, "build 1")
	if err := os.Mkdir(filepath.Join(dir, "a-dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(dir, "a-file"), "")
	tests := []struct{ name, local, remote, want string }{
		{
			name: "no local file", local: filepath.Join(dir, "missing"), remote: filepath.Join(dir, "x"),
			want: fmt.Sprintf(`machine "local": uploading %[1]s: open %[1]s: no such file or directory`, filepath.Join(dir, "missing")),
		},
		{
			name: "a directory where the file goes", local: local, remote: filepath.Join(dir, "a-dir"),
			want: fmt.Sprintf(`machine "local": uploading %s to %s: writing the copy failed (exit status 1): mv: cannot overwrite directory '%s' with non-directory`,
				local, filepath.Join(dir, "a-dir"), filepath.Join(dir, "a-dir")),
		},
		{
			name: "a file where a directory goes", local: local, remote: filepath.Join(dir, "a-file", "llorch"),
			want: fmt.Sprintf(`machine "local": uploading %s to %s: writing the copy failed (exit status 1): mkdir: cannot create directory '%s': File exists`,
				local, filepath.Join(dir, "a-file", "llorch"), filepath.Join(dir, "a-file")),
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.EnsureFile(t.Context(), tc.local, tc.remote, 0o755)
			if err == nil || err.Error() != tc.want {
				t.Errorf("EnsureFile error:\n got: %v\nwant: %s", err, tc.want)
			}
		})
	}
	noTemporaries(t, dir)
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func sum(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// noTemporaries fails t if an upload left its temporary file in dir.
func noTemporaries(t *testing.T, dir string) {
	t.Helper()
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.Contains(d.Name(), ".llorch-upload-") {
			t.Errorf("temporary file left behind: %s", p)
		}
		return nil
	})
}

// flipFirstByte corrupts the first byte of a stream: b becomes C.
type flipFirstByte struct {
	r    io.Reader
	done bool
}

func (f *flipFirstByte) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if n > 0 && !f.done {
		f.done = true
		p[0] -= 'b' - 'C'
	}
	return n, err
}

// An upload cancelled halfway leaves the old file and no temporary one.
func TestEnsureFileCancelled(t *testing.T) {
	c := dial(t, shared(t))
	dir := t.TempDir()
	local, remotePath := filepath.Join(dir, "llorch"), filepath.Join(dir, "remote", "llorch")
	write(t, local, "build 1")
	if _, err := c.EnsureFile(t.Context(), local, remotePath, 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, local, "build 2")
	stalled := &stallingReader{sent: make(chan struct{}), release: make(chan struct{})}
	defer close(stalled.release)
	restore := remote.SetSendFilter(func(r io.Reader) io.Reader { stalled.r = r; return stalled })
	defer restore()

	ctx, cancel := context.WithCancel(t.Context())
	go func() {
		<-stalled.sent
		cancel()
	}()
	_, err := c.EnsureFile(ctx, local, remotePath, 0o755)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("EnsureFile cancelled = %v, want context.Canceled", err)
	}
	if got, _ := os.ReadFile(remotePath); string(got) != "build 1" {
		t.Errorf("remote copy after a cancelled upload = %q, want the old %q", got, "build 1")
	}
	noTemporaries(t, filepath.Dir(remotePath))
}

// stallingReader passes on its first Read, then blocks until release.
type stallingReader struct {
	r             io.Reader
	reads         int
	sent, release chan struct{}
}

func (s *stallingReader) Read(p []byte) (int, error) {
	s.reads++
	if s.reads == 1 {
		n, err := s.r.Read(p[:1])
		close(s.sent)
		return n, err
	}
	<-s.release
	return 0, io.EOF
}
