package local

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/spf13/afero"

	"github.com/llorch/llorch/internal/atomicfile"
	"github.com/llorch/llorch/state"
)

// JournalFile holds the records appended since the state file was written
// (state.Journal): one line per Append, each with a checksum.
const JournalFile = "state.json.journal"

var _ state.Journal = (*Store)(nil)

// JournalPath is the journal beside the state file.
func (s *Store) JournalPath() string { return filepath.Join(s.dir, JournalFile) }

// stateHead is what Append knows of the state file under the journal,
// and which version of the file that was.
type stateHead struct {
	id   fileID
	data []byte // the file's bytes, where the file system gives no identity
	head *state.Head
}

// journalHead is what Append knows of the journal: the state its records
// are on (ok false when it holds none), how much of it is whole records,
// and which version of the file that was.
type journalHead struct {
	id      fileID
	lineage string
	serial  uint64
	ok      bool
	intact  int64
}

// Append writes changes as one record at the end of the journal and syncs
// it. The record is on top of the state file as it is: the caller's serial
// must be the file's, or the file's + 1 when the journal already holds
// records on top of it (state.Journal). A journal left by a run whose
// final Write succeeded holds records of an older state only, and is
// started afresh; a torn last record is cut off first.
func (s *Store) Append(_ context.Context, lineage string, serial uint64, changes []state.PoolChange) (uint64, error) {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	head, err := s.fileHead()
	if err != nil {
		return 0, err
	}
	j, err := s.journalHead()
	if err != nil {
		return 0, err
	}
	var base state.Head // what the record goes on top of
	var effective uint64
	switch {
	case head != nil:
		base, effective = *head, head.Serial
		if j.ok && j.lineage == head.Lineage && j.serial == head.Serial {
			effective++
		}
	case j.ok:
		// No state file yet: the first apply's records stand on an
		// empty state.
		base, effective = state.Head{Lineage: j.lineage, Serial: j.serial}, j.serial+1
	default:
		base, effective = state.Head{Lineage: lineage, Serial: serial}, serial
	}
	switch {
	case base.Lineage != lineage:
		return 0, &state.LineageError{Path: s.Path(), Stored: base.Lineage, Writing: lineage}
	case effective != serial:
		return 0, &state.StaleError{Path: s.Path(), Read: serial, Stored: effective}
	}
	rec, err := state.EncodeJournalRecord(base.Lineage, base.Serial, changes)
	if err != nil {
		return 0, err
	}
	keep := j.intact
	if !j.ok || j.lineage != base.Lineage || j.serial != base.Serial {
		keep = 0
	}
	id, err := s.appendJournal(rec, keep)
	if err != nil {
		s.jhead = nil
		return 0, fmt.Errorf("appending to the state journal %s: %w", s.JournalPath(), err)
	}
	s.jhead = &journalHead{id: id, lineage: base.Lineage, serial: base.Serial, ok: true, intact: keep + int64(len(rec))}
	return base.Serial + 1, nil
}

// Unfolded reports whether the journal holds records on top of the state
// file (or of no state file yet).
func (s *Store) Unfolded(context.Context) (bool, error) {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	head, err := s.fileHead()
	if err != nil {
		return false, err
	}
	eff, err := s.withJournal(head)
	if err != nil {
		return false, err
	}
	return eff != nil && (head == nil || eff.Serial != head.Serial), nil
}

// journalHead reads what the journal holds, unless it is the version
// Append left.
func (s *Store) journalHead() (*journalHead, error) {
	fi, err := s.fs.Stat(s.JournalPath())
	if errors.Is(err, fs.ErrNotExist) {
		return &journalHead{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the state journal %s: %w", s.JournalPath(), err)
	}
	if id := idOf(fi); s.jhead != nil && id != (fileID{}) && id == s.jhead.id {
		return s.jhead, nil
	}
	data, err := s.readJournal()
	if err != nil {
		return nil, err
	}
	j := &journalHead{intact: int64(state.JournalIntact(data))}
	j.lineage, j.serial, j.ok = state.JournalBase(data)
	return j, nil
}

// appendJournal writes rec after the first keep bytes of the journal (cut
// to them: a torn record, or the records of an older state, go) and syncs
// it, returning the identity of the file written. A failed write is cut
// off again, so that no later record follows a torn one.
func (s *Store) appendJournal(rec []byte, keep int64) (fileID, error) {
	if err := s.fs.MkdirAll(s.dir, 0o700); err != nil {
		return fileID{}, err
	}
	f, err := s.fs.OpenFile(s.JournalPath(), os.O_WRONLY|os.O_CREATE, 0o600)
	if err != nil {
		return fileID{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fileID{}, err
	}
	if fi.Size() != keep {
		if err := f.Truncate(keep); err != nil {
			return fileID{}, err
		}
	}
	if _, err := f.WriteAt(rec, keep); err != nil {
		_ = f.Truncate(keep)
		return fileID{}, err
	}
	if err := f.Sync(); err != nil {
		_ = f.Truncate(keep)
		return fileID{}, err
	}
	if fi.Size() == 0 {
		// A new file: its directory entry must survive a crash too.
		if err := atomicfile.SyncDir(s.fs, s.dir); err != nil {
			return fileID{}, err
		}
	}
	fi, err = f.Stat()
	if err != nil {
		return fileID{}, err
	}
	return idOf(fi), nil
}

// readJournal returns the journal's bytes, nil when there is none.
func (s *Store) readJournal() ([]byte, error) {
	data, err := afero.ReadFile(s.fs, s.JournalPath())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the state journal %s: %w", s.JournalPath(), err)
	}
	return data, nil
}

// fileHead is the lineage and serial of the state file (nil when there is
// none), decoding it only when it is not the version seen last: apply
// appends after every step.
func (s *Store) fileHead() (*state.Head, error) {
	fi, err := s.fs.Stat(s.Path())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading state file %s: %w", s.Path(), err)
	}
	if id := idOf(fi); s.head != nil && id != (fileID{}) && s.head.id == id {
		return s.head.head, nil
	}
	data, id, err := readWithID(s.fs, s.Path())
	if err != nil {
		return nil, fmt.Errorf("reading state file %s: %w", s.Path(), err)
	}
	if h := s.head; h != nil && id == (fileID{}) && bytes.Equal(h.data, data) {
		return h.head, nil
	}
	head, err := s.stored(data)
	if err != nil {
		return nil, err
	}
	h := &stateHead{id: id, head: head}
	if id == (fileID{}) {
		h.data = data
	}
	s.head = h
	return head, nil
}

// fold applies the journal's records on top of st (read from the state
// file, or a new state when there is none: then the journal says which).
func (s *Store) fold(st *state.State, fromFile bool) (*state.State, error) {
	data, err := s.readJournal()
	if err != nil || data == nil {
		return st, err
	}
	if !fromFile {
		l, ser, ok := state.JournalBase(data)
		if !ok {
			return st, nil
		}
		st = state.New(l)
		st.Serial, st.LlorchVersion = ser, s.opts.Version
	}
	if l, ser, ok := state.JournalBase(data); !ok || l != st.Lineage || ser != st.Serial {
		return st, nil // nothing, or the records of an older state
	}
	fold, err := state.FoldJournal(st, data, s.JournalPath())
	if err != nil {
		return nil, err
	}
	if fold.Records > 0 {
		st.Serial++
	}
	return st, nil
}

// removeJournal drops the journal once a written state holds its records.
// Should that fail, the records are of an older serial and never folded.
func (s *Store) removeJournal() {
	s.jhead = nil
	_ = s.fs.Remove(s.JournalPath())
}

// withJournal is the head of the stored state: the file's (nil when there
// is none), one serial on when the journal holds records on top of it.
func (s *Store) withJournal(file *state.Head) (*state.Head, error) {
	j, err := s.journalHead()
	if err != nil {
		return nil, err
	}
	switch {
	case file == nil && j.ok:
		return &state.Head{Lineage: j.lineage, Serial: j.serial + 1}, nil
	case file != nil && j.ok && j.lineage == file.Lineage && j.serial == file.Serial:
		return &state.Head{Lineage: file.Lineage, Serial: file.Serial + 1}, nil
	}
	return file, nil
}
