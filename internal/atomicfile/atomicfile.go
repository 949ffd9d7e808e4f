// Package atomicfile replaces a file so that a reader sees either the old
// bytes or the new ones, never a mix, and a crash never leaves a truncated
// file behind: write a temporary file in the same directory, fsync it, rename
// it over the target, then fsync the directory.
//
// Write does it in one call. Stage and Commit split it in two, so that a
// caller replacing several files (a state file and its backup) can prepare
// all of them before renaming any. Replace skips both fsyncs, for files that
// describe running processes and so mean nothing after the machine crashes.
package atomicfile

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/afero"
)

// Write atomically replaces path with data, with mode perm.
func Write(fs afero.Fs, path string, data []byte, perm os.FileMode) error {
	p, err := Stage(fs, path, data, perm)
	if err != nil {
		return err
	}
	return p.Commit()
}

// Replace atomically replaces path with data, with mode perm, as Write
// does, but without fsyncing the file or the directory: readers never see
// a mix of old and new bytes, but after a power loss the file may be empty
// or old. It is for a supervisor's status and pid files, rewritten at every
// state change of an engine; after a machine crash the processes they
// describe are gone, and readers treat an unreadable file as "not
// running". (Each fsync pair costs about 0.25 ms, eight of them per engine
// start.)
func Replace(fs afero.Fs, path string, data []byte, perm os.FileMode) error {
	p, err := stage(fs, path, data, perm, false)
	if err != nil {
		return err
	}
	return p.Rename()
}

// Pending is a temporary file, written, synced and given its mode, that is
// waiting to replace its target. Exactly one of Commit, Rename or Discard
// must be called.
type Pending struct {
	fs   afero.Fs
	tmp  string
	path string
}

// Stage writes data to a temporary file beside path, fsyncs it and sets
// perm on it. path itself is not touched until Commit. On error nothing is
// left behind.
func Stage(fs afero.Fs, path string, data []byte, perm os.FileMode) (*Pending, error) {
	return stage(fs, path, data, perm, true)
}

func stage(fs afero.Fs, path string, data []byte, perm os.FileMode, sync bool) (_ *Pending, err error) {
	dir := filepath.Dir(path)
	tmp, err := afero.TempFile(fs, dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return nil, fmt.Errorf("cannot create temporary file to update %s: %w", path, err)
	}
	tmpName := tmp.Name()
	defer func() {
		if err != nil {
			_ = fs.Remove(tmpName)
		}
	}()
	if _, err = tmp.Write(data); err != nil {
		_ = tmp.Close()
		return nil, fmt.Errorf("writing %s: %w", tmpName, err)
	}
	if sync {
		if err = tmp.Sync(); err != nil {
			_ = tmp.Close()
			return nil, fmt.Errorf("syncing %s: %w", tmpName, err)
		}
	}
	if err = tmp.Close(); err != nil {
		return nil, fmt.Errorf("closing %s: %w", tmpName, err)
	}
	// Chmod, not the create mode, so the umask cannot loosen or tighten it.
	if err = fs.Chmod(tmpName, perm); err != nil {
		return nil, fmt.Errorf("setting mode of %s: %w", tmpName, err)
	}
	return &Pending{fs: fs, tmp: tmpName, path: path}, nil
}

// Path is the file the Pending will replace.
func (p *Pending) Path() string { return p.path }

// Commit renames the temporary file over the target and fsyncs the
// directory. If the rename fails the temporary file is removed and the
// target is unchanged.
func (p *Pending) Commit() error {
	if err := p.Rename(); err != nil {
		return err
	}
	return SyncDir(p.fs, filepath.Dir(p.path))
}

// Rename is Commit without the directory fsync, for a caller that renames
// several files in one directory and then calls SyncDir once. If the rename
// fails the temporary file is removed and the target is unchanged.
func (p *Pending) Rename() error {
	if err := p.fs.Rename(p.tmp, p.path); err != nil {
		_ = p.fs.Remove(p.tmp)
		return fmt.Errorf("replacing %s: %w", p.path, err)
	}
	return nil
}

// Discard removes the temporary file; the target is untouched.
func (p *Pending) Discard() error {
	if err := p.fs.Remove(p.tmp); err != nil {
		return fmt.Errorf("removing %s: %w", p.tmp, err)
	}
	return nil
}

// SyncDir fsyncs a directory so a rename in it survives a crash. Only the
// OS filesystem has directories to sync; on others it does nothing.
func SyncDir(fs afero.Fs, dir string) error {
	switch fs.(type) {
	case *afero.OsFs, afero.OsFs:
	default:
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("opening directory %s to sync it: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing directory %s: %w", dir, err)
	}
	return nil
}
