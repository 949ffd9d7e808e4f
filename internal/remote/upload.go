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
func (c *Conn) EnsureFile(ctx context.Context, localPath, remotePath string, mode fs.FileMode) (bool, error) {
	f, err := os.Open(localPath)
	if err != nil {
		return false, fmt.Errorf("machine %q: uploading %s: %w", c.machine.Name, localPath, err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return false, fmt.Errorf("machine %q: uploading %s: %w", c.machine.Name, localPath, err)
	}
	want := hex.EncodeToString(h.Sum(nil))
	perm := fmt.Sprintf("%o", mode.Perm())
	dst := Quote(remotePath)
	fail := func(what string, res Result) error {
		return fmt.Errorf("machine %q: uploading %s to %s: %s failed (exit status %d): %s",
			c.machine.Name, localPath, remotePath, what, res.ExitCode, strings.TrimSpace(string(res.Stderr)))
	}

	// One round trip says whether the copy there is current.
	res, err := c.Run(ctx, fmt.Sprintf("if [ -f %[1]s ]; then sha256sum < %[1]s && stat -c %%a %[1]s; fi", dst), nil)
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
	tmp := Quote(path.Join(path.Dir(remotePath), "."+path.Base(remotePath)+".llorch-upload-"+hex.EncodeToString(salt[:])))
	// mv -T: a directory at remotePath is an error, not a place to move
	// the file into.
	script := fmt.Sprintf(`set -e
tmp=%s dst=%s
trap 'rm -f -- "$tmp"' EXIT
trap 'exit 143' TERM
mkdir -p -- %s
(umask 077; cat > "$tmp")
got=$(sha256sum < "$tmp")
got=${got%%%% *}
if [ "$got" != %s ]; then echo "$got" >&2; exit %d; fi
chmod %s -- "$tmp"
mv -fT -- "$tmp" "$dst"`, tmp, dst, Quote(path.Dir(remotePath)), want, checksumMismatch, perm)
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

// parseProbe reads "SHA256  -\nMODE\n".
func parseProbe(out []byte) (sum, perm string, ok bool) {
	lines := bytes.Split(bytes.TrimSpace(out), []byte("\n"))
	if len(lines) != 2 {
		return "", "", false
	}
	f := strings.Fields(string(lines[0]))
	if len(f) == 0 {
		return "", "", false
	}
	return f[0], strings.TrimSpace(string(lines[1])), true
}
