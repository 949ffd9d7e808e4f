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

	writeMu sync.Mutex // one Write or Append at a time in this process; guards last, head, jhead
	last    lastWrite
	head    *stateHead   // the state file under the journal, as Append last saw it
	jhead   *journalHead // the journal, as Append left it

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
	st, fromFile, err := s.readFile()
	if err != nil {
		return nil, err
	}
	return s.fold(st, fromFile)
}

// readFile is the state file decoded, or a new state when there is none
// (fromFile false).
func (s *Store) readFile() (st *state.State, fromFile bool, err error) {
	pre := s.takePrefetched()
	if pre != nil && pre.id != (fileID{}) {
		if fi, err := s.fs.Stat(s.Path()); err == nil && idOf(fi) == pre.id {
			return pre.st, true, nil
		}
	}
	data, err := afero.ReadFile(s.fs, s.Path())
	if errors.Is(err, fs.ErrNotExist) {
		st := state.New(uuid.NewString())
		st.LlorchVersion = s.opts.Version
		return st, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("reading state file %s: %w", s.Path(), err)
	}
	if pre != nil && pre.data != nil && bytes.Equal(pre.data, data) {
		return pre.st, true, nil
	}
	st, err = state.Decode(data, s.Path(), s.existingBackup())
	return st, err == nil, err
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

// Write stores st. The serial written is the stored serial + 1
// (state.NextSerial), and on success st.Serial, st.FormatVersion and
// st.LlorchVersion are updated to what was written. The previous state file
// becomes the backup.
//
// Write refuses to replace a state of another lineage (*state.LineageError),
// a state written since st was read (*state.StaleError), and a corrupt or
// newer-format state file. On a failure the state files are left exactly as
// they were (should even putting the old backup back fail, the error says
// so), st is dumped to the errored path, and the error is a
// *state.WriteError saying where. Two failures are different: a State that
// cannot be encoded is a plain error, with nothing to dump; and if only the
// directory fsync after the renames fails, the new state is in place, st is
// updated, and the error says the write may not survive a crash.
//
// ctx is not consulted: a write is short, and a command interrupted with
// Ctrl-C must still be able to save what it did.
func (s *Store) Write(_ context.Context, st *state.State) error {
	return s.store(st, func(old []byte) (uint64, bool, error) {
		var stored *state.Head
		if old != nil {
			h, err := s.stored(old)
			if err != nil {
				return 0, false, err
			}
			stored = h
		}
		stored, err := s.withJournal(stored)
		if err != nil {
			return 0, false, err
		}
		serial, err := state.NextSerial(s.Path(), stored, st)
		return serial, true, err
	}, true)
}

// Push replaces the stored state with st (state push, init
// -migrate-state) under state.PushSerial's rules; force also overwrites a
// corrupt or newer-format file. A refused push dumps nothing: the state
// being pushed came from somewhere.
func (s *Store) Push(_ context.Context, st *state.State, force bool) error {
	return s.store(st, func(old []byte) (uint64, bool, error) {
		var stored *state.State
		if old != nil {
			prev, err := state.Decode(old, s.Path(), s.existingBackup())
			if err == nil {
				prev, err = s.fold(prev, true)
			}
			switch {
			case err != nil && !force:
				return 0, false, err
			case err != nil:
				stored = nil // forced over what cannot be read
			default:
				stored = prev
			}
		}
		return state.PushSerial(s.Path(), stored, st, force)
	}, false)
}

// ReadBackup returns the state the last write replaced.
func (s *Store) ReadBackup(context.Context) (*state.State, error) {
	data, err := afero.ReadFile(s.fs, s.BackupPath())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, state.ErrNoBackup
	}
	if err != nil {
		return nil, fmt.Errorf("reading state backup %s: %w", s.BackupPath(), err)
	}
	return state.Decode(data, s.BackupPath(), "")
}

// decideFunc says, from the bytes of the stored state file (nil when there
// is none), under which serial the new state is stored, or that nothing
// needs writing, or why it must not be.
type decideFunc func(old []byte) (serial uint64, write bool, err error)

// store does Write and Push; dumpRefusals says whether a refusal by
// decide dumps the state too.
func (s *Store) store(st *state.State, decide decideFunc, dumpRefusals bool) error {
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
	release, err := s.exclusiveWrite()
	if err != nil {
		return s.dump(&cp, err)
	}
	defer release()
	wrote, err := s.write(&cp, decide)
	if err != nil {
		var ee *encodeError
		var de *durabilityError
		var re *refusal
		switch {
		case errors.As(err, &ee):
			// A state that cannot be encoded cannot be dumped either;
			// it is a bug in the caller, not a failed disk.
			return fmt.Errorf("writing state to %s: %w", s.Path(), ee.err)
		case errors.As(err, &de):
			// The new file is in place; a dump would only confuse.
			st.Serial, st.FormatVersion, st.LlorchVersion = cp.Serial, cp.FormatVersion, cp.LlorchVersion
			return fmt.Errorf("state written to %s, but it may not survive a crash: %w", s.Path(), de.err)
		case errors.As(err, &re) && !dumpRefusals:
			return fmt.Errorf("writing state to %s: %w", s.Path(), re.err)
		case errors.As(err, &re):
			err = re.err
		}
		return s.dump(&cp, err)
	}
	if wrote {
		st.FormatVersion, st.LlorchVersion = cp.FormatVersion, cp.LlorchVersion
		s.removeJournal() // the state written holds its records (a push replaces them)
	}
	st.Serial = cp.Serial
	return nil
}

// refusal marks an error of decide: the stored state stays as it is
// because a rule says so, not because a write failed.
type refusal struct{ err error }

func (e *refusal) Error() string { return e.err.Error() }
func (e *refusal) Unwrap() error { return e.err }

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

// stored returns the head of the state file bytes old.
func (s *Store) stored(old []byte) (*state.Head, error) {
	if s.last.data != nil && bytes.Equal(old, s.last.data) {
		return &state.Head{Lineage: s.last.lineage, Serial: s.last.serial}, nil
	}
	prev, err := state.Decode(old, s.Path(), s.existingBackup())
	if err != nil {
		return nil, err
	}
	return state.HeadOf(prev), nil
}

// write does the work of Write and Push and reports whether it wrote; on
// error the state files are as they were.
func (s *Store) write(cp *state.State, decide decideFunc) (bool, error) {
	path, backupPath := s.Path(), s.BackupPath()
	old, err := afero.ReadFile(s.fs, path)
	exists := err == nil
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("reading the current state: %w", err)
	}
	if !exists {
		old = nil
	}
	serial, write, err := decide(old)
	if err != nil {
		return false, &refusal{err}
	}
	cp.Serial = serial
	if !write {
		return false, nil
	}
	data, err := state.Encode(cp)
	if err != nil {
		return false, &encodeError{err}
	}

	if err := s.fs.MkdirAll(s.dir, 0o700); err != nil {
		return false, fmt.Errorf("creating state directory %s: %w", s.dir, err)
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
			return false, fmt.Errorf("reading the current backup: %w", err)
		}
		if backup, err = atomicfile.Stage(s.fs, backupPath, old, 0o600); err != nil {
			return false, err
		}
	}
	next, err := atomicfile.Stage(s.fs, path, data, 0o600)
	if err != nil {
		if backup != nil {
			_ = backup.Discard()
		}
		return false, err
	}
	if backup != nil {
		if err := backup.Rename(); err != nil {
			_ = next.Discard()
			return false, err
		}
	}
	if err := next.Rename(); err != nil {
		if backup != nil {
			if rerr := s.restoreBackup(hadBackup, oldBackup); rerr != nil {
				return false, fmt.Errorf("%w; putting the old backup back failed too (%v), so %s now holds a copy of the unchanged state file", err, rerr, backupPath)
			}
		}
		return false, err
	}
	s.last = lastWrite{data: data, lineage: cp.Lineage, serial: cp.Serial}
	if err := atomicfile.SyncDir(s.fs, s.dir); err != nil {
		return true, &durabilityError{err} // both renames happened
	}
	return true, nil
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
	werr := &state.WriteError{Path: s.Path(), Err: cause}
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
