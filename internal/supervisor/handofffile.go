package supervisor

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

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
	switch {
	case f.BootID != "" && BootID() != "" && f.BootID != BootID():
		return "it was written before the machine last booted"
	case !Alive(f.PID):
		return fmt.Sprintf("its engine (pid %d) is not running", f.PID)
	case f.PIDStartTicks != 0:
		if t, err := procStartTicks(f.PID); err == nil && t != f.PIDStartTicks {
			return fmt.Sprintf("pid %d is now another process", f.PID)
		}
	}
	return ""
}

// RemoveStaleHandoffs removes the handoff files in dir that claim an
// engine which is no longer running (its supervisor was killed with -9,
// or the machine rebooted), so routers are never sent to a dead replica
// for longer than it takes the next llorch command to run. It returns the
// removed paths. A file replaced while it was being looked at (a
// supervisor just wrote it) is left alone.
func RemoveStaleHandoffs(afs afero.Fs, dir string) ([]string, error) {
	entries, err := afero.ReadDir(afs, dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the handoff directory %s: %w", dir, err)
	}
	var removed []string
	var errs []error
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		path := filepath.Join(dir, e.Name())
		f, err := handoff.Read(afs, path)
		if err != nil || HandoffStale(f) == "" {
			continue // not a handoff file llorch can read, or a live one
		}
		if now, err := afs.Stat(path); err != nil || !os.SameFile(now, e) {
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
