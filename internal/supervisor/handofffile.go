package supervisor

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	"github.com/spf13/afero"

	"github.com/llorch/llorch/state/handoff"
)

// The handoff file exists only while the replica serves. Ownership rule
// (create_before_destroy): a replacement replica's supervisor takes the
// handoff path when its engine first becomes ready, before the old replica
// drains; from then on a supervisor writes or removes the file only while
// it is absent or names one of its own engines, so the old one leaves the
// new one's file alone.

// readHandoff reads a handoff file; ok is false when there is none.
func readHandoff(afs afero.Fs, path string) (f handoff.File, ok bool, err error) {
	f, err = handoff.Read(afs, path)
	if errors.Is(err, fs.ErrNotExist) {
		return handoff.File{}, false, nil
	}
	if err != nil {
		return handoff.File{}, true, err
	}
	return f, true, nil
}

// writeHandoff writes the handoff file for the running engine. take is
// true on the engine's first readiness; draining marks the file so routers
// stop sending (and never recreates a file that is gone).
func (s *supervisor) writeHandoff(take, draining bool) error {
	path := s.spec.HandoffPath
	if path == "" {
		return nil
	}
	if !take {
		f, exists, err := readHandoff(s.deps.Fs, path)
		if err != nil {
			return err
		}
		if exists && !s.ownPIDs[f.PID] {
			s.log.Info("handoff file belongs to another replica; leaving it alone", "path", path, "pid", f.PID)
			return nil
		}
		if !exists && draining {
			return nil
		}
	}
	f := s.spec.Handoff
	if f.PoolID == "" {
		f.PoolID = s.spec.PoolID
	}
	if f.ReplicaID == "" {
		f.ReplicaID = s.spec.ReplicaID
	}
	f.PID, f.URL, f.ReadyAt, f.Draining = s.st.PID, s.target.BaseURL, s.st.ReadyAt, draining
	f.SupervisorPID, f.PIDStartTicks, f.BootID = s.st.SupervisorPID, s.st.EngineStartTicks, BootID()
	return handoff.Write(s.deps.Fs, path, f)
}

// releaseHandoff removes the handoff file if it is ours.
func (s *supervisor) releaseHandoff() {
	path := s.spec.HandoffPath
	if path == "" {
		return
	}
	f, exists, err := readHandoff(s.deps.Fs, path)
	if err != nil || !exists || !s.ownPIDs[f.PID] {
		return
	}
	if err := handoff.Remove(s.deps.Fs, path); err != nil {
		s.log.Error("removing handoff file", "err", err)
	}
}

// BootID is this boot's id (/proc/sys/kernel/random/boot_id), "" where the
// kernel has none: a handoff file that names another boot was written
// before a reboot, and its engine is gone.
func BootID() string {
	bootIDOnce.Do(func() {
		if b, err := os.ReadFile("/proc/sys/kernel/random/boot_id"); err == nil {
			bootID = strings.TrimSpace(string(b))
		}
	})
	return bootID
}

var (
	bootIDOnce sync.Once
	bootID     string
)

// HandoffStale says why a handoff file no longer describes a running
// engine, or "" when it still may: it was written before the last reboot,
// or its engine's pid is gone, or the pid now belongs to a later process.
func HandoffStale(f handoff.File) string {
	if f.BootID != "" && BootID() != "" && f.BootID != BootID() {
		return "it was written before the machine last booted"
	}
	if f.PID <= 0 {
		return fmt.Sprintf("its engine (pid %d) is not running", f.PID)
	}
	// One read of /proc/PID/stat answers both questions: is it running,
	// and is it the process that was recorded.
	st, ticks, err := procStat(f.PID)
	switch {
	case err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ESRCH):
		return "" // cannot tell (no /proc): keep the file
	case err != nil || st == 'Z' || st == 'X':
		return fmt.Sprintf("its engine (pid %d) is not running", f.PID)
	case f.PIDStartTicks != 0 && ticks != f.PIDStartTicks:
		return fmt.Sprintf("pid %d is now another process", f.PID)
	}
	return ""
}

// RemoveStaleHandoffs removes the handoff files in dir that claim an
// engine which is no longer running (its supervisor was killed with -9,
// or the machine rebooted), so routers are never sent to a dead replica
// for longer than it takes the next llorch command to run. It returns the
// removed paths. A file replaced while it was being looked at (a
// supervisor just wrote it) is left alone. Paths in live belong to
// replicas whose engine the caller has just seen running (a refresh): they
// are not read again.
func RemoveStaleHandoffs(afs afero.Fs, dir string, live map[string]bool) ([]string, error) {
	d, err := afs.Open(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the handoff directory %s: %w", dir, err)
	}
	names, err := d.Readdirnames(-1) // names only: no stat per file
	d.Close()
	if err != nil {
		return nil, fmt.Errorf("reading the handoff directory %s: %w", dir, err)
	}
	var (
		removed       []string
		errs          []error
		first, second [4096]byte // a handoff file is well under 4 KiB
	)
	for _, name := range names {
		if !strings.HasSuffix(name, ".json") {
			continue
		}
		path := filepath.Join(dir, name)
		if live[path] {
			continue // its supervisor was just seen running its engine
		}
		data, err := readHandoffBytes(afs, path, first[:])
		if err != nil {
			continue
		}
		f, err := handoff.Parse(path, data)
		if err != nil || HandoffStale(f) == "" {
			continue // not a handoff file llorch can read, or a live one
		}
		// A supervisor may have just replaced it with its own: remove only
		// the file that was judged.
		if again, err := readHandoffBytes(afs, path, second[:]); err != nil || !bytes.Equal(again, data) {
			continue
		}
		if err := handoff.Remove(afs, path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, path)
	}
	return removed, errors.Join(errs...)
}

// readHandoffBytes reads a handoff file into buf (or a new slice when it
// is larger) with readSmallFile on the OS file system: a command that
// reads the state looks at every handoff file.
func readHandoffBytes(afs afero.Fs, path string, buf []byte) ([]byte, error) {
	if _, osFs := afs.(*afero.OsFs); osFs {
		return readSmallFile(path, buf)
	}
	return afero.ReadFile(afs, path)
}
