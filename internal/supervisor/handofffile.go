package supervisor

import (
	"errors"
	"io/fs"

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
