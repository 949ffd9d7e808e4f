package state

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// Encode returns the state file bytes for s: compact JSON with a trailing
// newline and map keys sorted, so the same State always gives the same
// bytes. Apply writes the state many times, and indentation was a third of
// the file and of the time spent encoding it (jq . prints it indented).
// Decode reads indented files as well, as earlier builds wrote them. It
// writes the current FormatVersion. It refuses a State that Decode would
// refuse, so a file written from its output can always be read back.
func Encode(s *State) ([]byte, error) {
	if s == nil {
		return nil, errors.New("encoding state: the state is nil")
	}
	if s.FormatVersion > FormatVersion {
		return nil, fmt.Errorf("encoding state: format_version %d is newer than this build writes (%d)", s.FormatVersion, FormatVersion)
	}
	if !validLineage(s.Lineage) {
		return nil, fmt.Errorf("encoding state: lineage %q is not a UUID; a state keeps the lineage it was created with (state.New)", s.Lineage)
	}
	for _, addr := range s.Addrs() {
		if err := checkPool(addr, s.Pools[addr]); err != nil {
			return nil, fmt.Errorf("encoding state: %w", err)
		}
	}
	cp := *s // shallow: only the top-level fields change
	cp.FormatVersion = FormatVersion
	if cp.Pools == nil {
		cp.Pools = map[string]*Pool{}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // flags such as "a&b" stay readable
	if err := enc.Encode(&cp); err != nil {
		return nil, fmt.Errorf("encoding state: %w", err)
	}
	return buf.Bytes(), nil
}

// Decode parses state file bytes. path names the file in errors, and
// backupPath names the previous version to offer when the file is corrupt
// ("" when there is none).
//
// It returns a *VersionError for a file written in a newer format and a
// *CorruptError for anything else it cannot trust: bad JSON, a missing or
// invalid format_version or lineage, a null pool or replica, a replica id
// listed twice. Fields it does not know are ignored, as encoding/json does,
// so a field added within a format version does not lock older builds out.
func Decode(data []byte, path, backupPath string) (*State, error) {
	corrupt := func(reason string, err error) error {
		return &CorruptError{Path: path, BackupPath: backupPath, Reason: reason, Err: err}
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, corrupt("the file is empty", nil)
	}

	s, ok := decodeFast(data)
	if !ok {
		var err error
		if s, err = decodeReflect(data, path, corrupt); err != nil {
			return nil, err
		}
	}
	if s.Lineage == "" {
		return nil, corrupt("it has no lineage", nil)
	}
	if !validLineage(s.Lineage) {
		return nil, corrupt(fmt.Sprintf("its lineage %q is not a UUID", s.Lineage), nil)
	}
	if s.Pools == nil {
		s.Pools = map[string]*Pool{}
	}
	for _, addr := range s.Addrs() {
		if err := checkPool(addr, s.Pools[addr]); err != nil {
			return nil, corrupt(err.Error(), nil)
		}
	}
	return s, nil
}

// decodeReflect is Decode's parsing by encoding/json, for the files
// decodeFast leaves to it: it accepts what encoding/json accepts and says
// precisely what is wrong with the rest.
func decodeReflect(data []byte, path string, corrupt func(string, error) error) (*State, error) {
	// Read the envelope first, so that a newer format is reported as such
	// rather than as whatever field of it this build fails to parse.
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil {
		var syn *json.SyntaxError
		var typ *json.UnmarshalTypeError
		switch {
		case errors.As(err, &syn):
			line, col := position(data, syn.Offset)
			return nil, corrupt(fmt.Sprintf("invalid JSON at line %d, column %d: %s", line, col, syn), err)
		case errors.As(err, &typ):
			return nil, corrupt(fmt.Sprintf("the file holds a JSON %s, not a state object", typ.Value), err)
		default:
			return nil, corrupt("invalid JSON", err)
		}
	}
	if top == nil {
		return nil, corrupt("the file holds JSON null, not a state object", nil)
	}
	rawVersion, ok := top["format_version"]
	if !ok {
		return nil, corrupt("it has no format_version", nil)
	}
	var version int
	if err := json.Unmarshal(rawVersion, &version); err != nil {
		return nil, corrupt(fmt.Sprintf("format_version %s is not a whole number", rawVersion), err)
	}
	if version > FormatVersion {
		var writtenBy string
		_ = json.Unmarshal(top["llorch_version"], &writtenBy) // only decorates the message
		return nil, &VersionError{Path: path, Found: version, Supported: FormatVersion, WrittenBy: writtenBy}
	}
	if version < 1 {
		return nil, corrupt(fmt.Sprintf("format_version %d is not valid (formats start at 1)", version), nil)
	}

	var s State
	if err := json.Unmarshal(data, &s); err != nil {
		var typ *json.UnmarshalTypeError
		if errors.As(err, &typ) {
			line, col := position(data, typ.Offset)
			return nil, corrupt(fmt.Sprintf("a value has the wrong type at line %d, column %d: %s", line, col, typ), err)
		}
		return nil, corrupt("invalid state", err)
	}
	return &s, nil
}

// checkPool finds what would make later code dereference nil or confuse two
// replicas.
func checkPool(addr string, p *Pool) error {
	if p == nil {
		return fmt.Errorf("pool %q is null", addr)
	}
	seen := make(map[string]bool, len(p.Replicas))
	for i, r := range p.Replicas {
		if r == nil {
			return fmt.Errorf("pool %q: replica %d is null", addr, i)
		}
		if seen[r.ID] {
			return fmt.Errorf("pool %q lists replica %q twice", addr, r.ID)
		}
		seen[r.ID] = true
	}
	return nil
}

// position turns the byte offset encoding/json reports into a 1-based line
// and column, which is what an operator opening the file in an editor needs.
func position(data []byte, offset int64) (line, col int) {
	if offset < 0 {
		offset = 0
	}
	if offset > int64(len(data)) {
		offset = int64(len(data))
	}
	before := data[:offset]
	line = 1 + bytes.Count(before, []byte("\n"))
	col = int(offset) - bytes.LastIndexByte(before, '\n')
	if col > 1 {
		col-- // encoding/json's offset is just past the offending byte
	}
	return line, col
}

// validLineage reports whether l is a UUID in its canonical text form
// (8-4-4-4-12 hex digits), as lineages are created.
func validLineage(l string) bool {
	if len(l) != 36 {
		return false
	}
	for i := 0; i < len(l); i++ {
		c := l[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return false
			}
		}
	}
	return true
}

// CorruptError is a state file that cannot be trusted. It is never
// overwritten: the operator decides between repairing it and restoring the
// backup.
type CorruptError struct {
	Path       string // the state file ("" when the bytes came from elsewhere)
	BackupPath string // the previous version, "" when there is none
	Reason     string // what is wrong, with line and column for bad JSON
	Err        error  // the underlying decoding error, if any
	// Restore says how to restore the backup, where copying a file over
	// another is not the way (etcd); empty means that.
	Restore string
}

func (e *CorruptError) Error() string {
	name := "the state"
	if e.Path != "" {
		name = "state file " + e.Path
	}
	msg := fmt.Sprintf("%s is corrupt: %s; ", name, e.Reason)
	switch {
	case e.BackupPath != "" && e.Restore != "":
		msg += fmt.Sprintf("the previous version is %s: %s", e.BackupPath, e.Restore)
	case e.BackupPath != "":
		msg += fmt.Sprintf("the previous version is in %s: compare the two, then repair the file by hand or copy the backup over it", e.BackupPath)
	default:
		msg += "there is no backup: repair the file by hand, or move it away to start from an empty state (llorch then forgets the replicas it recorded, which keep running)"
	}
	return msg + "; llorch never overwrites a corrupt state file"
}

func (e *CorruptError) Unwrap() error { return e.Err }

// VersionError is a state file written in a format newer than this build
// reads. It is never overwritten: an older llorch would drop what it does not
// understand.
type VersionError struct {
	Path      string
	Found     int    // format_version in the file
	Supported int    // FormatVersion of this build
	WrittenBy string // llorch_version in the file, if it could be read
}

func (e *VersionError) Error() string {
	name := "the state"
	if e.Path != "" {
		name = "state file " + e.Path
	}
	by := ""
	if e.WrittenBy != "" {
		by = e.WrittenBy + ", "
	}
	return fmt.Sprintf("%s was written by a newer llorch (%sformat %d; this build reads %d): upgrade llorch to use this state; the file was left unchanged",
		name, by, e.Found, e.Supported)
}

// LineageError is a write that would replace one state with another. A state
// keeps its lineage for life, so two lineages mean two different registries:
// usually the state file was replaced while a command ran.
type LineageError struct {
	Path    string // where the stored state lives
	Stored  string // lineage of the stored state
	Writing string // lineage of the state being written
}

func (e *LineageError) Error() string {
	return fmt.Sprintf("refusing to write state with lineage %s over %s, which holds a different state (lineage %s); was the state file replaced while llorch ran?",
		e.Writing, e.Path, e.Stored)
}
