package state

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"strconv"
)

// Journal is a Store that can record a change of a few pools without
// rewriting the whole state: apply appends what each step did (fsynced
// before it goes on), and writes the whole state once at the end. A Read
// folds the records into the state they were appended to, so a run killed
// before its final Write leaves a state that still records every step. The
// records of a journal stop counting once a Write or Push stores a state
// past the one they were appended to.
type Journal interface {
	Store
	// Append durably records changes on top of the state of lineage at
	// serial: the serial a Read or Write gave (or the last Append
	// returned). It returns the serial the store holds now, which the
	// next Append and Write must be given: the first record on top of a
	// written state counts as a write (serial + 1), so a saved plan made
	// before it is stale. A store that holds another state is an error
	// (*StaleError or *LineageError), and nothing is appended.
	Append(ctx context.Context, lineage string, serial uint64, changes []PoolChange) (uint64, error)
	// Unfolded reports whether the stored state holds records no Write
	// has folded yet, so that a run with nothing to do folds them still.
	Unfolded(ctx context.Context) (bool, error)
}

// PoolChange is one pool as a step left it; a nil Pool is a pool removed.
type PoolChange struct {
	Addr string `json:"addr"`
	Pool *Pool  `json:"pool"`
}

// journalRecord is one line of a journal: the changes of one Append and
// the state they were appended to.
type journalRecord struct {
	Lineage string       `json:"lineage"`
	Serial  uint64       `json:"serial"` // the stored state's serial under the records
	Changes []PoolChange `json:"changes"`
}

// EncodeJournalRecord is one journal line for changes on top of the
// stored state of lineage at serial: a CRC-32C of the JSON that follows it,
// so that a line torn by a crash is recognised, then the JSON and a
// newline.
func EncodeJournalRecord(lineage string, serial uint64, changes []PoolChange) ([]byte, error) {
	for _, c := range changes {
		if c.Pool != nil {
			if err := checkPool(c.Addr, c.Pool); err != nil {
				return nil, fmt.Errorf("encoding journal record: %w", err)
			}
		}
	}
	var buf bytes.Buffer
	buf.WriteString("00000000 ")
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(journalRecord{Lineage: lineage, Serial: serial, Changes: changes}); err != nil {
		return nil, fmt.Errorf("encoding journal record: %w", err)
	}
	b := buf.Bytes()
	sum := crc32.Checksum(b[9:len(b)-1], castagnoli)
	copy(b, fmt.Sprintf("%08x", sum))
	return b, nil
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// JournalFold is what a journal holds for one stored state.
type JournalFold struct {
	// Records is how many records were appended on top of the state; 0
	// when the journal holds only records of earlier states (a Write
	// folded them), or nothing.
	Records int
	// Torn is true when the last line was cut short by a crash and was
	// ignored: its Append never returned, so no step relied on it.
	Torn bool
}

// FoldJournal applies to st, in order, the records of journal data
// appended on top of it: those of st's lineage and serial. Folding is
// idempotent (each record sets whole pools), records of other states are
// skipped, and a torn last line is ignored. A damaged line that is not the
// last is a *CorruptError: the journal cannot be trusted past it. st is
// changed in place; its serial is not (the caller counts the records).
func FoldJournal(st *State, data []byte, path string) (JournalFold, error) {
	var fold JournalFold
	lineNo := 0
	for len(data) > 0 {
		lineNo++
		line, rest, complete := bytes.Cut(data, []byte("\n"))
		data = rest
		rec, err := decodeJournalLine(line, complete)
		if err != nil {
			if len(bytes.TrimSpace(data)) == 0 {
				fold.Torn = true
				break
			}
			return JournalFold{}, &CorruptError{Path: path, Reason: fmt.Sprintf("journal line %d: %v", lineNo, err)}
		}
		if rec.Lineage != st.Lineage || rec.Serial != st.Serial {
			continue
		}
		for _, c := range rec.Changes {
			if c.Pool == nil {
				delete(st.Pools, c.Addr)
				continue
			}
			if err := checkPool(c.Addr, c.Pool); err != nil {
				return JournalFold{}, &CorruptError{Path: path, Reason: fmt.Sprintf("journal line %d: %v", lineNo, err)}
			}
			if st.Pools == nil {
				st.Pools = map[string]*Pool{}
			}
			st.Pools[c.Addr] = c.Pool
		}
		fold.Records++
	}
	return fold, nil
}

// JournalBase returns the lineage and serial of the first whole record of
// journal data, for a journal found without a state file beside it.
func JournalBase(data []byte) (lineage string, serial uint64, ok bool) {
	line, _, complete := bytes.Cut(data, []byte("\n"))
	rec, err := decodeJournalLine(line, complete)
	if err != nil || !validLineage(rec.Lineage) {
		return "", 0, false
	}
	return rec.Lineage, rec.Serial, true
}

// JournalIntact is the length of the start of journal data made of whole
// lines with good checksums: where the next record may be appended once a
// torn tail is cut off.
func JournalIntact(data []byte) int {
	n := 0
	for n < len(data) {
		line, _, complete := bytes.Cut(data[n:], []byte("\n"))
		if !complete || checkJournalLine(line) != nil {
			break
		}
		n += len(line) + 1
	}
	return n
}

func checkJournalLine(line []byte) error {
	if len(line) < 10 || line[8] != ' ' {
		return fmt.Errorf("the line has no checksum")
	}
	want, err := strconv.ParseUint(string(line[:8]), 16, 32)
	if err != nil {
		return fmt.Errorf("the line has no checksum")
	}
	if crc32.Checksum(line[9:], castagnoli) != uint32(want) {
		return fmt.Errorf("checksum mismatch")
	}
	return nil
}

func decodeJournalLine(line []byte, complete bool) (*journalRecord, error) {
	if !complete {
		return nil, fmt.Errorf("the line has no end")
	}
	if err := checkJournalLine(line); err != nil {
		return nil, err
	}
	var rec journalRecord
	if err := json.Unmarshal(line[9:], &rec); err != nil {
		return nil, fmt.Errorf("invalid record: %w", err)
	}
	return &rec, nil
}
