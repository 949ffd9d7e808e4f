package state

import (
	"bytes"
	"fmt"
)

// The rules every backend applies to what it is asked to store, in one
// place: a Store reads what it holds, asks NextSerial (an ordinary write)
// or PushSerial (state push, init -migrate-state) whether and under which
// serial the new state may replace it, and stores it in one atomic step
// that fails if what it holds changed in between.

// Head is what the write rules look at in a stored state.
type Head struct {
	Lineage string
	Serial  uint64
}

// HeadOf is the head of s.
func HeadOf(s *State) *Head { return &Head{Lineage: s.Lineage, Serial: s.Serial} }

// NextSerial is the rule of Store.Write: w replaces the stored state (nil
// when there is none yet) only if it has the same lineage and was read at
// the stored serial, that is if nobody wrote in between; it is then stored
// under the next serial. where names the store in errors.
//
// With nothing stored, w gets its own serial + 1: a state read at serial
// 5 whose store has since been emptied is written back at 6, so that its
// serial never goes back.
func NextSerial(where string, stored *Head, w *State) (uint64, error) {
	if stored == nil {
		return w.Serial + 1, nil
	}
	if stored.Lineage != w.Lineage {
		return 0, &LineageError{Path: where, Stored: stored.Lineage, Writing: w.Lineage}
	}
	if stored.Serial != w.Serial {
		return 0, &StaleError{Path: where, Read: w.Serial, Stored: stored.Serial}
	}
	return stored.Serial + 1, nil
}

// PushSerial is the rule of state push and init -migrate-state, which are
// Terraform's: in replaces the stored state (nil when there is none) if
// that holds no pools, or has in's lineage and a serial no newer than
// in's; a state of the same serial and lineage must hold the same pools,
// and then nothing is written (write false). force skips every check.
//
// The serial stored is in's, or the stored serial + 1 where that is higher
// (an empty or forced-over state), so that the serial a store holds never
// goes back: a saved plan or a writer that read an older serial is always
// refused.
func PushSerial(where string, stored, in *State, force bool) (serial uint64, write bool, err error) {
	if stored == nil {
		return max(in.Serial, 1), true, nil
	}
	next := max(in.Serial, stored.Serial+1)
	if stored.Lineage == in.Lineage && stored.Serial == in.Serial && samePools(stored, in) {
		return stored.Serial, false, nil
	}
	if force || len(stored.Pools) == 0 {
		return next, true, nil
	}
	switch {
	case stored.Lineage != in.Lineage:
		return 0, false, &PushError{Path: where, Kind: PushOtherLineage, Stored: HeadOf(stored), Pushed: HeadOf(in)}
	case in.Serial < stored.Serial:
		return 0, false, &PushError{Path: where, Kind: PushOlderSerial, Stored: HeadOf(stored), Pushed: HeadOf(in)}
	case in.Serial == stored.Serial:
		return 0, false, &PushError{Path: where, Kind: PushSameSerial, Stored: HeadOf(stored), Pushed: HeadOf(in)}
	}
	return next, true, nil
}

// samePools reports whether a and b record the same pools, byte for byte
// as Encode writes them.
func samePools(a, b *State) bool {
	ea, errA := Encode(&State{Lineage: a.Lineage, Pools: a.Pools})
	eb, errB := Encode(&State{Lineage: a.Lineage, Pools: b.Pools})
	return errA == nil && errB == nil && bytes.Equal(ea, eb)
}

// StaleError is a write of a state read at an older serial than the one
// stored: someone else wrote in between, and writing would undo that.
type StaleError struct {
	Path   string // where the stored state lives
	Read   uint64 // the serial the state being written was read at
	Stored uint64 // the serial stored now
}

func (e *StaleError) Error() string {
	return fmt.Sprintf("refusing to overwrite %s: the state was read at serial %d, but serial %d is stored now, so another llorch (one run with -lock=false, or one that lost its lock) wrote it in between",
		e.Path, e.Read, e.Stored)
}

// PushKind says which rule refused a push.
type PushKind int

const (
	PushOtherLineage PushKind = iota + 1 // the stored state is another one
	PushOlderSerial                      // the stored state is newer
	PushSameSerial                       // same serial, different pools
)

// PushError is a push that PushSerial refused.
type PushError struct {
	Path           string
	Kind           PushKind
	Stored, Pushed *Head
}

func (e *PushError) Error() string {
	switch e.Kind {
	case PushOtherLineage:
		return fmt.Sprintf("cannot replace the state in %s (lineage %s) with an unrelated state (lineage %s): they are two different registries",
			e.Path, e.Stored.Lineage, e.Pushed.Lineage)
	case PushOlderSerial:
		return fmt.Sprintf("cannot replace the state in %s (serial %d) with an older one (serial %d)", e.Path, e.Stored.Serial, e.Pushed.Serial)
	default:
		return fmt.Sprintf("cannot replace the state in %s with a different state of the same serial (%d)", e.Path, e.Stored.Serial)
	}
}
