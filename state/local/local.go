package local

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/spf13/afero"

	"github.com/llorch/llorch/internal/atomicfile"
	"github.com/llorch/llorch/state"
)

// File names inside the state directory.
const (
	StateFile  = "state.json"
	BackupFile = "state.json.backup"
	LockFile   = "state.lock"

	// DefaultErroredPath is where a state that could not be written goes,
	// relative to the current directory, as Terraform's errored.tfstate.
	DefaultErroredPath = "errored.state.json"
)

// Options tune a Store. The zero value is usable.
type Options struct {
	// ErroredPath receives the state when a write fails
	// (DefaultErroredPath when empty).
	ErroredPath string
	// Version is recorded as llorch_version in the state and in lock info.
	Version string
	// Now is the clock for lock times (time.Now when nil).
	Now func() time.Time
}

// Store keeps state in <dir>/state.json. It is safe for concurrent use.
type Store struct {
	fs   afero.Fs
	dir  string
	opts Options

	writeMu sync.Mutex // one Write at a time in this process; guards last
	last    lastWrite

	lockMu sync.Mutex // guards held
	held   *heldLock  // the lock this Store holds, if any

	prefetchMu sync.Mutex // guards prefetched
	prefetched *prefetch  // what Prefetch decoded, for the next Read
}

// prefetch is a state Prefetch decoded and the file it came from: its
// identity, or its bytes where the file system gives none.
type prefetch struct {
	id   fileID
	data []byte
	st   *state.State
}

var _ state.Store = (*Store)(nil)

// New returns the Store for the state directory dir on fs.
func New(fs afero.Fs, dir string, opts Options) *Store {
	if opts.ErroredPath == "" {
		opts.ErroredPath = DefaultErroredPath
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Store{fs: fs, dir: dir, opts: opts}
}

// Path is the state file.
func (s *Store) Path() string { return filepath.Join(s.dir, StateFile) }

// BackupPath is the previous version of the state file.
func (s *Store) BackupPath() string { return filepath.Join(s.dir, BackupFile) }

// LockPath is the lock file.
func (s *Store) LockPath() string { return filepath.Join(s.dir, LockFile) }

// ErroredPath is where a state that could not be written is dumped.
func (s *Store) ErroredPath() string { return s.opts.ErroredPath }

// Read returns the stored state, freshly decoded and so shared with no one.
// With no state file yet it returns an empty state with a new lineage and
// serial 0; nothing is written until Write. A corrupt or newer-format file
// is a *state.CorruptError or *state.VersionError naming the backup.
func (s *Store) Read(ctx context.Context) (*state.State, error) {
	pre := s.takePrefetched()
	if pre != nil && pre.id != (fileID{}) {
		if fi, err := s.fs.Stat(s.Path()); err == nil && idOf(fi) == pre.id {
			return pre.st, nil
		}
	}
	data, err := afero.ReadFile(s.fs, s.Path())
	if errors.Is(err, fs.ErrNotExist) {
		st := state.New(uuid.NewString())
		st.LlorchVersion = s.opts.Version
		return st, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading state file %s: %w", s.Path(), err)
	}
	if pre != nil && pre.data != nil && bytes.Equal(pre.data, data) {
		return pre.st, nil
	}
	return state.Decode(data, s.Path(), s.existingBackup())
}

// Prefetch reads and decodes the state file ahead of a Read, typically
// while the caller waits for the lock or does other work, without taking
// the lock. The next Read, under whatever lock the caller holds by then,
// uses what Prefetch decoded only if the file is still the one Prefetch
// read, so it returns exactly what it would have without Prefetch, only
// sooner. On an OS file system that is the same inode with the same size
// and modification and change times (Write replaces the file by renaming
// a new one over it, and an edit in place changes the times), which spares
// Read a second read of a file of megabytes; elsewhere Read compares the
// bytes. Problems are left for Read to report.
func (s *Store) Prefetch(ctx context.Context) {
	data, id, err := readWithID(s.fs, s.Path())
	if err != nil || ctx.Err() != nil {
		return
	}
	st, err := state.Decode(data, s.Path(), "")
	if err != nil {
		return
	}
	pre := &prefetch{id: id, st: st}
	if id == (fileID{}) {
		pre.data = data
	}
	s.prefetchMu.Lock()
	defer s.prefetchMu.Unlock()
	s.prefetched = pre
}

// readWithID reads the file at path and says which version of it was read:
// the identity of the open file, taken before its bytes are read.
func readWithID(fsys afero.Fs, path string) ([]byte, fileID, error) {
	f, err := fsys.Open(path)
	if err != nil {
		return nil, fileID{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fileID{}, err
	}
	buf := bytes.NewBuffer(make([]byte, 0, fi.Size()+bytes.MinRead))
	if _, err := buf.ReadFrom(f); err != nil {
		return nil, fileID{}, err
	}
	return buf.Bytes(), idOf(fi), nil
}

// takePrefetched hands over what Prefetch decoded, once: a State returned
// by Read is the caller's alone.
func (s *Store) takePrefetched() *prefetch {
	s.prefetchMu.Lock()
	defer s.prefetchMu.Unlock()
	pre := s.prefetched
	s.prefetched = nil
	return pre
}

// existingBackup is BackupPath if the backup exists, else "", for errors
// that offer it.
func (s *Store) existingBackup() string {
	if _, err := s.fs.Stat(s.BackupPath()); err != nil {
		return ""
	}
	return s.BackupPath()
}

// Write stores st. The serial written is the stored serial + 1, and on
// success st.Serial, st.FormatVersion and st.LlorchVersion are updated to
// what was written. The previous state file becomes the backup.
//
// Write refuses to replace a state of another lineage (*state.LineageError)
// and a corrupt or newer-format state file. On a failure the state files are
// left exactly as they were (should even putting the old backup back fail,
// the error says so), st is dumped to the errored path, and the error is a
// *WriteError saying where. Two failures are different: a State that
// cannot be encoded is a plain error, with nothing to dump; and if only the
// directory fsync after the renames fails, the new state is in place, st is
// updated, and the error says the write may not survive a crash.
//
// ctx is not consulted: a write is short, and a command interrupted with
// Ctrl-C must still be able to save what it did.
func (s *Store) Write(_ context.Context, st *state.State) error {
	if st == nil {
		return errors.New("writing state: the state is nil")
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()

	cp := *st // shallow: only header fields change
	cp.FormatVersion = state.FormatVersion
	if s.opts.Version != "" {
		cp.LlorchVersion = s.opts.Version
	}
	cp.Serial = st.Serial + 1 // until the stored serial is known
	if err := s.write(&cp); err != nil {
		var ee *encodeError
		var de *durabilityError
		switch {
		case errors.As(err, &ee):
			// A state that cannot be encoded cannot be dumped either;
			// it is a bug in the caller, not a failed disk.
			return fmt.Errorf("writing state to %s: %w", s.Path(), ee.err)
		case errors.As(err, &de):
			// The new file is in place; a dump would only confuse.
			st.Serial, st.FormatVersion, st.LlorchVersion = cp.Serial, cp.FormatVersion, cp.LlorchVersion
			return fmt.Errorf("state written to %s, but it may not survive a crash: %w", s.Path(), de.err)
		}
		return s.dump(&cp, err)
	}
	st.Serial, st.FormatVersion, st.LlorchVersion = cp.Serial, cp.FormatVersion, cp.LlorchVersion
	return nil
}

// encodeError marks a state that state.Encode refused.
type encodeError struct{ err error }

func (e *encodeError) Error() string { return e.err.Error() }

// durabilityError marks a write whose renames happened but whose directory
// could not be synced.
type durabilityError struct{ err error }

func (e *durabilityError) Error() string { return e.err.Error() }

// lastWrite is what this Store last wrote, so the next Write can recognise
// its own file without decoding it again: decoding is most of a write's
// cost, and apply writes after every replica.
type lastWrite struct {
	data    []byte
	lineage string
	serial  uint64
}

// stored returns the lineage and serial of the state file bytes old.
func (s *Store) stored(old []byte) (lineage string, serial uint64, err error) {
	if s.last.data != nil && bytes.Equal(old, s.last.data) {
		return s.last.lineage, s.last.serial, nil
	}
	prev, err := state.Decode(old, s.Path(), s.existingBackup())
	if err != nil {
		return "", 0, err
	}
	return prev.Lineage, prev.Serial, nil
}

// write does the work of Write; on error the state files are as they were.
func (s *Store) write(cp *state.State) error {
	path, backupPath := s.Path(), s.BackupPath()
	old, err := afero.ReadFile(s.fs, path)
	exists := err == nil
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("reading the current state: %w", err)
	}
	cp.Serial = 1
	if exists {
		lineage, serial, err := s.stored(old)
		if err != nil {
			return err
		}
		if lineage != cp.Lineage {
			return &state.LineageError{Path: path, Stored: lineage, Writing: cp.Lineage}
		}
		cp.Serial = serial + 1
	}
	data, err := state.Encode(cp)
	if err != nil {
		return &encodeError{err}
	}

	if err := s.fs.MkdirAll(s.dir, 0o700); err != nil {
		return fmt.Errorf("creating state directory %s: %w", s.dir, err)
	}
	// Stage both files first, so that nothing is renamed until everything
	// that can fail slowly (writes, fsyncs) has succeeded.
	var backup *atomicfile.Pending
	var oldBackup []byte
	hadBackup := false
	if exists {
		oldBackup, err = afero.ReadFile(s.fs, backupPath)
		hadBackup = err == nil
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("reading the current backup: %w", err)
		}
		if backup, err = atomicfile.Stage(s.fs, backupPath, old, 0o600); err != nil {
			return err
		}
	}
	next, err := atomicfile.Stage(s.fs, path, data, 0o600)
	if err != nil {
		if backup != nil {
			_ = backup.Discard()
		}
		return err
	}
	if backup != nil {
		if err := backup.Rename(); err != nil {
			_ = next.Discard()
			return err
		}
	}
	if err := next.Rename(); err != nil {
		if backup != nil {
			if rerr := s.restoreBackup(hadBackup, oldBackup); rerr != nil {
				return fmt.Errorf("%w; putting the old backup back failed too (%v), so %s now holds a copy of the unchanged state file", err, rerr, backupPath)
			}
		}
		return err
	}
	s.last = lastWrite{data: data, lineage: cp.Lineage, serial: cp.Serial}
	if err := atomicfile.SyncDir(s.fs, s.dir); err != nil {
		return &durabilityError{err} // both renames happened
	}
	return nil
}

// restoreBackup undoes the backup rename after the state rename failed, so
// a failed write changes nothing.
func (s *Store) restoreBackup(had bool, data []byte) error {
	if !had {
		return s.fs.Remove(s.BackupPath())
	}
	return atomicfile.Write(s.fs, s.BackupPath(), data, 0o600)
}

// dump saves cp to the errored path after cause stopped a write.
func (s *Store) dump(cp *state.State, cause error) error {
	werr := &WriteError{Path: s.Path(), Err: cause}
	data, err := state.Encode(cp)
	if err == nil {
		err = atomicfile.Write(s.fs, s.opts.ErroredPath, data, 0o600)
	}
	if err != nil {
		werr.DumpErr = fmt.Errorf("saving it to %s: %w", s.opts.ErroredPath, err)
	} else {
		werr.ErroredPath = s.opts.ErroredPath
	}
	return werr
}

// WriteError is a failed Write. The state that could not be written is in
// ErroredPath, unless DumpErr says why it could not be saved there either.
type WriteError struct {
	Path        string // the state file
	ErroredPath string // where the state went instead; "" if it could not be saved
	DumpErr     error  // why it could not be saved to the errored path
	Err         error  // why the write failed
}

func (e *WriteError) Error() string {
	msg := fmt.Sprintf("writing state to %s: %v; ", e.Path, e.Err)
	var le *state.LineageError
	switch {
	case e.ErroredPath == "":
		msg += fmt.Sprintf("%v failed too, so this run's changes to the state are lost", e.DumpErr)
	case errors.As(e.Err, &le):
		msg += fmt.Sprintf("the state was written to %s instead: compare it with %s before replacing either", e.ErroredPath, e.Path)
	default:
		msg += fmt.Sprintf("the state was written to %s instead: copy it to %s once the problem is fixed", e.ErroredPath, e.Path)
	}
	return msg
}

func (e *WriteError) Unwrap() error { return e.Err }
