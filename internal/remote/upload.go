package remote

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"sync"
	"time"
)

// sendFilter is what EnsureFile sends through: a seam for a test to
// corrupt a transfer.
var sendFilter = func(r io.Reader) io.Reader { return r }

// checksumMismatch is the exit status of the upload script when the copy
// on the machine is not what was sent.
const checksumMismatch = 3

// ChecksumError is an upload whose copy on the machine has other bytes
// than the local file: the transfer was corrupted. The file on the machine
// was left as it was.
type ChecksumError struct {
	Machine, Local, Remote string
	Want, Got              string // sha256, hex
}

func (e *ChecksumError) Error() string {
	return fmt.Sprintf("machine %q: uploading %s to %s: the copy's sha256 is %s, not %s: the transfer was corrupted, so %s was left as it was; try again",
		e.Machine, e.Local, e.Remote, e.Got, e.Want, e.Remote)
}

// EnsureFile makes remotePath on the machine a copy of localPath with
// mode's permission bits, and says whether it had to send the file. It
// sends it only when the sha256 of the machine's copy differs (or there
// is none); otherwise it at most fixes the mode. An upload is atomic: it
// goes to a temporary name in the same directory (made if missing), is
// checked against the local sha256 there, and only then renamed onto
// remotePath, so a reader never sees a partial or corrupted file.
//
// Hashing a 30 MB binary takes sha256sum 0.1 s, more than a whole refresh
// may, so the machine keeps the sum of what it holds beside it
// (.NAME.sha256: sum, size, inode, ctime) and rehashes only when the stat
// no longer matches; locally, a sum is kept for the process's lifetime
// per path, device, inode, size, mtime and ctime. Neither is kept for a
// file changed in the last racyWindow.
func (c *Conn) EnsureFile(ctx context.Context, localPath, remotePath string, mode fs.FileMode) (bool, error) {
	f, err := os.Open(localPath)
	if err != nil {
		return false, fmt.Errorf("machine %q: uploading %s: %w", c.machine.Name, localPath, err)
	}
	defer f.Close()
	want, err := localSHA256(f)
	if err != nil {
		return false, fmt.Errorf("machine %q: uploading %s: %w", c.machine.Name, localPath, err)
	}
	perm := fmt.Sprintf("%o", mode.Perm())
	dst := Quote(remotePath)
	fail := func(what string, res Result) error {
		return fmt.Errorf("machine %q: uploading %s to %s: %s failed (exit status %d): %s",
			c.machine.Name, localPath, remotePath, what, res.ExitCode, strings.TrimSpace(string(res.Stderr)))
	}

	// One round trip says whether the copy there is current.
	res, err := c.Run(ctx, fmt.Sprintf(probeScript, dst, Quote(sidecar(remotePath)), int(racyWindow.Seconds())), nil)
	if err != nil {
		return false, err
	}
	if res.ExitCode != 0 {
		return false, fail("checking the copy there", res)
	}
	if got, gotPerm, ok := parseProbe(res.Stdout); ok && got == want {
		if gotPerm == perm {
			return false, nil
		}
		res, err := c.Run(ctx, "chmod "+perm+" -- "+dst, nil)
		if err != nil {
			return false, err
		}
		if res.ExitCode != 0 {
			return false, fail("chmod", res)
		}
		return false, nil
	}

	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return false, fmt.Errorf("machine %q: uploading %s: %w", c.machine.Name, localPath, err)
	}
	var salt [8]byte
	_, _ = rand.Read(salt[:])
	tmp := Quote(path.Join(path.Dir(remotePath), "."+path.Base(remotePath)+tempInfix+hex.EncodeToString(salt[:])))
	// mv -T: a directory at remotePath is an error, not a place to move
	// the file into. A TERM (a cancelled Run) runs the EXIT trap.
	script := fmt.Sprintf(`set -e
tmp=%s
trap 'rm -f -- "$tmp"' EXIT
trap 'exit 143' TERM
mkdir -p -- %s
(umask 077; cat > "$tmp")
got=$(sha256sum < "$tmp")
got=${got%%%% *}
if [ "$got" != %s ]; then echo "$got" >&2; exit %d; fi
chmod %s -- "$tmp"
mv -fT -- "$tmp" %s`, tmp, Quote(path.Dir(remotePath)), want, checksumMismatch, perm, dst)
	res, err = c.Run(ctx, script, sendFilter(f))
	switch {
	case err != nil:
		return false, err
	case res.ExitCode == checksumMismatch:
		return false, &ChecksumError{Machine: c.machine.Name, Local: localPath, Remote: remotePath,
			Want: want, Got: strings.TrimSpace(string(res.Stderr))}
	case res.ExitCode != 0:
		return false, fail("writing the copy", res)
	}
	return true, nil
}

// tempInfix marks EnsureFile's temporary files.
const tempInfix = ".llorch-upload-"

// sidecar is where the machine records the sha256 of p.
func sidecar(p string) string { return path.Join(path.Dir(p), "."+path.Base(p)+".sha256") }

// probeScript prints "SHA256 MODE" of the file %[1]s, or nothing when
// there is none. The sum comes from the record in the sidecar %[2]s when
// its size, inode and ctime are the file's still; otherwise the file is
// hashed, and recorded if its ctime is %[3]d s old (see racyWindow: a
// change within a clock tick of the record would keep the ctime). The
// record is best effort: a read-only directory only costs the hash.
const probeScript = `f=%[1]s side=%[2]s
if [ -f "$f" ]; then
  set -- $(stat -c '%%s %%i %%.9Z %%a' -- "$f")
  rec=$(cat -- "$side" 2>/dev/null || true)
  case "$rec" in
  *" $1 $2 $3") echo "${rec%%%% *} $4" ;;
  *)
    sum=$(sha256sum < "$f")
    sum=${sum%%%% *}
    if [ "${3%%%%.*}" -lt $(($(date +%%s) - %[3]d)) ]; then
      { echo "$sum $1 $2 $3" > "$side.$$" && mv -f -- "$side.$$" "$side"; } 2>/dev/null || rm -f -- "$side.$$"
    fi
    echo "$sum $4" ;;
  esac
fi`

// parseProbe reads probeScript's "SHA256 MODE".
func parseProbe(out []byte) (sum, perm string, ok bool) {
	f := strings.Fields(string(bytes.TrimSpace(out)))
	if len(f) != 2 {
		return "", "", false
	}
	return f[0], f[1], true
}

// localSums are the sha256 sums of local files this process has hashed.
var localSums sync.Map // fileID → string

// racyWindow is how old a file's last change must be for its sum to be
// kept: a file's times have the granularity of the kernel's clock tick, so
// a file changed again within a tick of being hashed would keep them
// (git's "racy" index entries).
// A variable, so that a test can make every file old enough.
var racyWindow = 2 * time.Second

// localSHA256 is f's sha256, hex, from localSums when f is unchanged.
func localSHA256(f *os.File) (string, error) {
	fi, err := f.Stat()
	if err != nil {
		return "", err
	}
	id, changed, known := idOf(f.Name(), fi)
	if known {
		if sum, ok := localSums.Load(id); ok {
			return sum.(string), nil
		}
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if known && time.Since(changed) > racyWindow {
		localSums.Store(id, sum)
	}
	return sum, nil
}

// LocalSHA256 is the sha256 (hex) of the local file at path, as
// EnsureFile computes it: kept for the process's lifetime while the file
// is unchanged, so that an EnsureFile of the same file afterwards does
// not hash it again.
func LocalSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	return localSHA256(f)
}
