package local

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"reflect"
	"sync"
	"time"

	"github.com/spf13/afero"
	"golang.org/x/sys/unix"

	"github.com/llorch/llorch/state"
)

// heldLock is the lock a Store holds.
type heldLock struct {
	info state.LockInfo
	file *os.File // OS filesystem: the open lock file carrying the flock
	key  memKey   // any other filesystem: the entry in memLocks
}

// memLocks stands in for flock on filesystems that are not the OS one, so
// tests on afero.MemMapFs see the same behaviour within one process.
var memLocks = struct {
	sync.Mutex
	held map[memKey]bool
}{held: map[memKey]bool{}}

// memKey identifies a lock file: the same path on two MemMapFs values is two
// different files.
type memKey struct {
	fs   any
	path string
}

func (s *Store) memKey() memKey {
	var fsKey any = s.fs
	if !reflect.TypeOf(s.fs).Comparable() {
		fsKey = nil // cannot key on it; fall back to the path alone
	}
	return memKey{fs: fsKey, path: s.LockPath()}
}

// onOS reports whether s.fs is the OS filesystem, where flock works.
func (s *Store) onOS() bool {
	switch s.fs.(type) {
	case *afero.OsFs, afero.OsFs:
		return true
	}
	return false
}

// Lock takes the state lock for info.Operation and returns its ID. Fields of
// info left empty are filled in: a new ID, this user@host, host, pid, the
// Store's version and clock, and the lock file's path. When the lock is held,
// by another process or by this one, it returns a *state.LockError at once,
// with the holder's info read from the lock file.
func (s *Store) Lock(ctx context.Context, info state.LockInfo) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("locking state: %w", err)
	}
	s.lockMu.Lock()
	defer s.lockMu.Unlock()
	if err := s.fs.MkdirAll(s.dir, 0o700); err != nil {
		return "", fmt.Errorf("creating state directory %s: %w", s.dir, err)
	}
	info = s.fillInfo(info)
	data, err := json.Marshal(info)
	if err != nil {
		return "", fmt.Errorf("encoding lock info: %w", err)
	}
	data = append(data, '\n')

	var h *heldLock
	if s.onOS() {
		h, err = s.lockOS(info, data)
	} else {
		h, err = s.lockMem(info, data)
	}
	if err != nil {
		return "", err
	}
	s.held = h // a second Lock by this Store was refused above, as any other
	return info.ID, nil
}

func (s *Store) lockOS(info state.LockInfo, data []byte) (*heldLock, error) {
	f, err := os.OpenFile(s.LockPath(), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening lock file: %w", err)
	}
	if err := flock(f, unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, s.lockError()
		}
		return nil, fmt.Errorf("locking %s: %w", s.LockPath(), err)
	}
	// Holding the flock: record who we are, in place. Replacing the file
	// (rename) would put a new, unlocked inode at the path.
	if err := writeInPlace(f, data); err != nil {
		_ = flock(f, unix.LOCK_UN)
		f.Close()
		return nil, fmt.Errorf("writing lock info to %s: %w", s.LockPath(), err)
	}
	return &heldLock{info: info, file: f}, nil
}

func (s *Store) lockMem(info state.LockInfo, data []byte) (*heldLock, error) {
	key := s.memKey()
	memLocks.Lock()
	defer memLocks.Unlock()
	if memLocks.held[key] {
		return nil, s.lockError()
	}
	if err := afero.WriteFile(s.fs, s.LockPath(), data, 0o600); err != nil {
		return nil, fmt.Errorf("writing lock info to %s: %w", s.LockPath(), err)
	}
	memLocks.held[key] = true
	return &heldLock{info: info, key: key}, nil
}

// writeLocks stands in for exclusiveWrite's flock on filesystems that are
// not the OS one.
var writeLocks = struct {
	sync.Mutex
	held map[memKey]*sync.Mutex
}{held: map[memKey]*sync.Mutex{}}

// exclusiveWrite makes one write, from reading the stored state to the
// last rename, exclusive among every process and Store writing to the
// directory, so that the check of what is stored (state.NextSerial) and
// the write it allows are one step even between commands run with
// -lock=false. It is an flock on the directory itself, held for
// microseconds and never seen by the state lock (state.lock).
func (s *Store) exclusiveWrite() (func(), error) {
	if err := s.fs.MkdirAll(s.dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating state directory %s: %w", s.dir, err)
	}
	if !s.onOS() {
		key := memKey{fs: s.memKey().fs, path: s.dir}
		writeLocks.Lock()
		mu := writeLocks.held[key]
		if mu == nil {
			mu = &sync.Mutex{}
			writeLocks.held[key] = mu
		}
		writeLocks.Unlock()
		mu.Lock()
		return mu.Unlock, nil
	}
	d, err := os.Open(s.dir)
	if err != nil {
		return nil, fmt.Errorf("opening state directory %s: %w", s.dir, err)
	}
	if err := flock(d, unix.LOCK_EX); err != nil {
		d.Close()
		return nil, fmt.Errorf("locking state directory %s for the write: %w", s.dir, err)
	}
	return func() { d.Close() }, nil // closing drops the flock
}

// Unlock releases the lock with id, which this Store must hold. The holder
// info is cleared before the lock is released, so it never erases the info
// of whoever takes the lock next. ctx is not consulted: a command
// interrupted with Ctrl-C must still release its lock.
func (s *Store) Unlock(_ context.Context, id string) error {
	s.lockMu.Lock()
	defer s.lockMu.Unlock()
	h := s.held
	if h == nil {
		return fmt.Errorf("unlocking state: this process holds no lock on %s (asked to release lock ID %s); a lock left by another process is released with llorch force-unlock", s.LockPath(), id)
	}
	if h.info.ID != id {
		return fmt.Errorf("unlocking state: lock ID %s is not the lock this process holds (lock ID %s)", id, h.info.ID)
	}
	s.held = nil
	return s.release(h)
}

func (s *Store) release(h *heldLock) error {
	if h.file != nil {
		clearErr := h.file.Truncate(0)
		unlockErr := flock(h.file, unix.LOCK_UN)
		closeErr := h.file.Close() // closing drops the flock even if LOCK_UN failed
		if err := errors.Join(unlockErr, closeErr); err != nil {
			return fmt.Errorf("releasing lock %s: %w", s.LockPath(), err)
		}
		if clearErr != nil {
			return fmt.Errorf("lock released, but its info in %s could not be cleared: %w", s.LockPath(), clearErr)
		}
		return nil
	}
	memLocks.Lock()
	defer memLocks.Unlock()
	clearErr := afero.WriteFile(s.fs, s.LockPath(), nil, 0o600)
	delete(memLocks.held, h.key)
	if clearErr != nil {
		return fmt.Errorf("lock released, but its info in %s could not be cleared: %w", s.LockPath(), clearErr)
	}
	return nil
}

// ForceUnlock clears the info of a lock whose holder is gone, if its ID is
// id. With flock a dead holder's lock is already free and only its info
// remains, so this never takes a lock away from a running process: that is
// refused, naming the process.
func (s *Store) ForceUnlock(ctx context.Context, id string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("force-unlocking state: %w", err)
	}
	s.lockMu.Lock()
	defer s.lockMu.Unlock()
	if s.onOS() {
		return s.forceUnlockOS(id)
	}
	return s.forceUnlockMem(id)
}

func (s *Store) forceUnlockOS(id string) error {
	f, err := os.OpenFile(s.LockPath(), os.O_RDWR, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("cannot force-unlock: there is no lock file %s, so the state is not locked", s.LockPath())
	}
	if err != nil {
		return fmt.Errorf("cannot force-unlock: opening lock file: %w", err)
	}
	defer f.Close()
	if err := flock(f, unix.LOCK_EX|unix.LOCK_NB); err != nil {
		if errors.Is(err, unix.EWOULDBLOCK) {
			return s.heldByRunning()
		}
		return fmt.Errorf("cannot force-unlock: locking %s: %w", s.LockPath(), err)
	}
	defer func() { _ = flock(f, unix.LOCK_UN) }() // Close would release it anyway
	data, err := io.ReadAll(f)
	if err != nil {
		return fmt.Errorf("cannot force-unlock: reading %s: %w", s.LockPath(), err)
	}
	if err := s.checkStale(data, id); err != nil {
		return err
	}
	if err := f.Truncate(0); err != nil {
		return fmt.Errorf("clearing lock info in %s: %w", s.LockPath(), err)
	}
	return nil
}

func (s *Store) forceUnlockMem(id string) error {
	memLocks.Lock()
	defer memLocks.Unlock()
	if memLocks.held[s.memKey()] {
		return s.heldByRunning()
	}
	data, err := afero.ReadFile(s.fs, s.LockPath())
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("cannot force-unlock: there is no lock file %s, so the state is not locked", s.LockPath())
	}
	if err != nil {
		return fmt.Errorf("cannot force-unlock: reading %s: %w", s.LockPath(), err)
	}
	if err := s.checkStale(data, id); err != nil {
		return err
	}
	if err := afero.WriteFile(s.fs, s.LockPath(), nil, 0o600); err != nil {
		return fmt.Errorf("clearing lock info in %s: %w", s.LockPath(), err)
	}
	return nil
}

// checkStale decides whether the stale info data may be cleared for id.
func (s *Store) checkStale(data []byte, id string) error {
	if len(bytes.TrimSpace(data)) == 0 {
		return fmt.Errorf("cannot force-unlock: the state is not locked (%s holds no lock info)", s.LockPath())
	}
	var info state.LockInfo
	if err := json.Unmarshal(data, &info); err != nil {
		return fmt.Errorf("cannot force-unlock: the lock info in %s cannot be read (%v); no process holds the lock, so the file may be deleted", s.LockPath(), err)
	}
	if info.ID != id {
		return fmt.Errorf("cannot force-unlock: lock ID %s does not match the recorded lock, which has ID %s (taken by %s, pid %d, for %q)",
			id, info.ID, info.Who, info.PID, info.Operation)
	}
	return nil
}

// heldByRunning is ForceUnlock's refusal when the lock is really held.
func (s *Store) heldByRunning() error {
	info, err := s.readInfo()
	if err != nil {
		return fmt.Errorf("cannot force-unlock: the lock is held by a running process (its info could not be read: %v); stop that process, or wait for it", err)
	}
	return fmt.Errorf("cannot force-unlock: the lock is held by a running process (pid %d on host %s, %q since %s, lock ID %s); stop that process, or wait for it",
		info.PID, info.Host, info.Operation, info.Created.Format(time.RFC3339), info.ID)
}

// lockError describes the current holder.
func (s *Store) lockError() *state.LockError {
	info, err := s.readInfo()
	return &state.LockError{Info: info, Now: s.opts.Now(), Err: err}
}

// readInfo reads the holder's info from the lock file. It may find the file
// empty for a moment: between the holder's flock and its write.
func (s *Store) readInfo() (state.LockInfo, error) {
	var info state.LockInfo
	data, err := afero.ReadFile(s.fs, s.LockPath())
	if err != nil {
		return info, err
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return info, errors.New("the lock file is empty; its holder may be starting")
	}
	if err := json.Unmarshal(data, &info); err != nil {
		return state.LockInfo{}, fmt.Errorf("decoding %s: %w", s.LockPath(), err)
	}
	return info, nil
}

func (s *Store) fillInfo(info state.LockInfo) state.LockInfo {
	return info.WithDefaults(s.opts.Version, s.opts.Now(), s.LockPath())
}

// writeInPlace replaces the contents of f with data without replacing f.
func writeInPlace(f *os.File, data []byte) error {
	if err := f.Truncate(0); err != nil {
		return err
	}
	if _, err := f.WriteAt(data, 0); err != nil {
		return err
	}
	return f.Sync()
}

// flock is unix.Flock, retried when a signal interrupts it.
func flock(f *os.File, how int) error {
	for {
		err := unix.Flock(int(f.Fd()), how)
		if !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}
