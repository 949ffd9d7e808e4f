package local_test

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/afero"

	"github.com/llorch/llorch/internal/faultfs"
	"github.com/llorch/llorch/state"
	"github.com/llorch/llorch/state/local"
)

var journalPath = filepath.Join(dir, local.JournalFile)

// replicaPool is a pool of one ready replica id.
func replicaPool(id string) *state.Pool {
	return &state.Pool{Engine: "llamacpp", Replicas: []*state.Replica{{ID: id, Port: 9000, PID: 77, Status: state.StatusReady}}}
}

func appendOK(t *testing.T, s *local.Store, serial uint64, changes ...state.PoolChange) uint64 {
	t.Helper()
	next, err := s.Append(t.Context(), lineage, serial, changes)
	if err != nil {
		t.Fatalf("Append at serial %d: %v", serial, err)
	}
	return next
}

func readOK(t *testing.T, fs afero.Fs) *state.State {
	t.Helper()
	st, err := newStore(fs).Read(t.Context())
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	return st
}

func TestAppendedRecordsAreReadUntilAWriteFoldsThem(t *testing.T) {
	fs := seeded(t) // serial 2
	s := newStore(fs)
	next := appendOK(t, s, 2, state.PoolChange{Addr: "pool.embed", Pool: replicaPool("r0")})
	if next != 3 {
		t.Errorf("first Append returned serial %d, want 3: a record on a written state counts as a write", next)
	}
	next = appendOK(t, s, next,
		state.PoolChange{Addr: "pool.chat"}, // removed
		state.PoolChange{Addr: "pool.rerank", Pool: replicaPool("r1")})
	if next != 3 {
		t.Errorf("second Append returned serial %d, want 3", next)
	}

	// A new process reads the file with the records folded in, at the
	// serial Append returned: a plan saved at serial 2 is stale.
	st := readOK(t, fs)
	if got := st.Addrs(); !slices.Equal(got, []string{"pool.embed", "pool.rerank"}) {
		t.Errorf("pools read = %v, want [pool.embed pool.rerank]", got)
	}
	if st.Serial != 3 {
		t.Errorf("serial read = %d, want 3", st.Serial)
	}
	// Reading again gives the same: folding is idempotent.
	if again := readOK(t, fs); !slices.Equal(again.Addrs(), st.Addrs()) || again.Serial != st.Serial {
		t.Errorf("second Read = %v at %d", again.Addrs(), again.Serial)
	}
	// A writer that read before the records is refused.
	if err := newStore(fs).Write(t.Context(), atSeeded()); !errors.As(err, new(*state.StaleError)) {
		t.Errorf("Write of a state read before the journal = %v, want a *state.StaleError", err)
	}

	if err := s.Write(t.Context(), st); err != nil {
		t.Fatalf("Write: %v", err)
	}
	if st.Serial != 4 {
		t.Errorf("the fold wrote serial %d, want 4", st.Serial)
	}
	if _, err := fs.Stat(journalPath); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the journal is still there after the fold: %v", err)
	}
	if got := readOK(t, fs); !slices.Equal(got.Addrs(), st.Addrs()) || got.Serial != 4 {
		t.Errorf("after the fold, read %v at %d", got.Addrs(), got.Serial)
	}
}

func TestAJournalOfAnOlderStateIsIgnoredAndStartedAfresh(t *testing.T) {
	// The run wrote its fold but was killed before it removed the journal.
	fs := seeded(t)
	s := newStore(fs)
	appendOK(t, s, 2, state.PoolChange{Addr: "pool.embed", Pool: replicaPool("r0")})
	st := readOK(t, fs)
	old, _ := afero.ReadFile(fs, journalPath)
	if err := s.Write(t.Context(), st); err != nil {
		t.Fatal(err)
	}
	if err := afero.WriteFile(fs, journalPath, old, 0o600); err != nil {
		t.Fatal(err)
	}
	// The records were appended on serial 2; the file is at 4 and holds
	// them. Removing pool.embed is not undone by reading them again.
	st.RemovePool("pool.embed")
	if err := s.Write(t.Context(), st); err != nil {
		t.Fatal(err)
	}
	if err := afero.WriteFile(fs, journalPath, old, 0o600); err != nil {
		t.Fatal(err)
	}
	got := readOK(t, fs)
	if got.Serial != 5 || got.Pools["pool.embed"] != nil {
		t.Errorf("read %v at serial %d; want serial 5 without pool.embed (the stale record ignored)", got.Addrs(), got.Serial)
	}
	// The next Append replaces the stale records.
	appendOK(t, newStore(fs), 5, state.PoolChange{Addr: "pool.new", Pool: replicaPool("r0")})
	data, _ := afero.ReadFile(fs, journalPath)
	if n := strings.Count(string(data), "\n"); n != 1 {
		t.Errorf("the journal holds %d records after a fresh Append, want 1:\n%s", n, data)
	}
	if got := readOK(t, fs); got.Pools["pool.new"] == nil || got.Pools["pool.embed"] != nil || got.Serial != 6 {
		t.Errorf("read %v at serial %d", got.Addrs(), got.Serial)
	}
}

// twoRecords is seeded with pool.embed and then pool.rerank appended,
// and the journal's bytes.
func twoRecords(t *testing.T) (afero.Fs, []byte) {
	t.Helper()
	fs := seeded(t)
	s := newStore(fs)
	next := appendOK(t, s, 2, state.PoolChange{Addr: "pool.embed", Pool: replicaPool("r0")})
	appendOK(t, s, next, state.PoolChange{Addr: "pool.rerank", Pool: replicaPool("r0")})
	data, err := afero.ReadFile(fs, journalPath)
	if err != nil {
		t.Fatal(err)
	}
	return fs, data
}

func TestATornLastRecordIsIgnoredAndCutOff(t *testing.T) {
	fs, data := twoRecords(t)

	// Killed in the middle of the second record's write: every cut of it
	// reads as the first record alone, never as an error.
	first := strings.Index(string(data), "\n") + 1
	for cut := first; cut < len(data); cut += max(1, (len(data)-first)/17) {
		if err := afero.WriteFile(fs, journalPath, data[:cut], 0o600); err != nil {
			t.Fatal(err)
		}
		st, err := newStore(fs).Read(t.Context())
		if err != nil {
			t.Fatalf("cut at %d: Read: %v", cut, err)
		}
		if st.Pools["pool.embed"] == nil || st.Pools["pool.rerank"] != nil || st.Serial != 3 {
			t.Errorf("cut at %d: read %v at %d, want pool.embed (the whole record) at 3", cut, st.Addrs(), st.Serial)
		}
	}

	// A later run appends after the whole records, cutting the torn one
	// off: its record is read, and nothing is corrupt.
	if err := afero.WriteFile(fs, journalPath, data[:len(data)-5], 0o600); err != nil {
		t.Fatal(err)
	}
	st := readOK(t, fs)
	appendOK(t, newStore(fs), st.Serial, state.PoolChange{Addr: "pool.third", Pool: replicaPool("r0")})
	got := readOK(t, fs)
	if got.Pools["pool.embed"] == nil || got.Pools["pool.third"] == nil || got.Pools["pool.rerank"] != nil {
		t.Errorf("after appending past a torn record, read %v", got.Addrs())
	}
}

func TestADamagedRecordBeforeTheLastIsCorrupt(t *testing.T) {
	fs, data := twoRecords(t)
	second := strings.Index(string(data), "\n") + 1
	bad := slices.Clone(data)
	bad[second+20] ^= 1 // flip a bit in the second record
	bad = append(bad, data[second:]...)
	if err := afero.WriteFile(fs, journalPath, bad, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := newStore(fs).Read(t.Context())
	var ce *state.CorruptError
	if !errors.As(err, &ce) {
		t.Fatalf("Read = %v, want a *state.CorruptError", err)
	}
	for _, want := range []string{journalPath, "journal line 2", "checksum mismatch"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
}

func TestAppendRefusesAnotherStateOrAStaleSerial(t *testing.T) {
	fs := seeded(t)
	s := newStore(fs)
	if _, err := s.Append(t.Context(), lineage, 1, []state.PoolChange{{Addr: "pool.x", Pool: replicaPool("r0")}}); !errors.As(err, new(*state.StaleError)) {
		t.Errorf("Append at serial 1 over serial 2 = %v, want a *state.StaleError", err)
	}
	if _, err := s.Append(t.Context(), otherLineage, 2, []state.PoolChange{{Addr: "pool.x", Pool: replicaPool("r0")}}); !errors.As(err, new(*state.LineageError)) {
		t.Errorf("Append of another lineage = %v, want a *state.LineageError", err)
	}
	next := appendOK(t, s, 2, state.PoolChange{Addr: "pool.x", Pool: replicaPool("r0")})
	// Once records stand on serial 2, the store holds serial 3.
	if _, err := s.Append(t.Context(), lineage, 2, []state.PoolChange{{Addr: "pool.y", Pool: replicaPool("r0")}}); !errors.As(err, new(*state.StaleError)) {
		t.Errorf("Append at serial 2 over the journal's 3 = %v, want a *state.StaleError", err)
	}
	appendOK(t, s, next, state.PoolChange{Addr: "pool.y", Pool: replicaPool("r0")})
	if _, err := fs.Stat(filepath.Join(dir, "errored.state.json")); err == nil {
		t.Error("a refused Append dumped the state")
	}
}

func TestAJournalWithoutAStateFileIsReadOnAnEmptyState(t *testing.T) {
	// The first apply in a directory is killed before its fold.
	fs := afero.NewMemMapFs()
	st := readOK(t, fs)
	next, err := newStore(fs).Append(t.Context(), st.Lineage, st.Serial, []state.PoolChange{{Addr: "pool.chat", Pool: replicaPool("r0")}})
	if err != nil {
		t.Fatal(err)
	}
	got := readOK(t, fs)
	if got.Lineage != st.Lineage || got.Serial != next || got.Pools["pool.chat"] == nil {
		t.Errorf("read lineage %s serial %d pools %v; want lineage %s serial %d with pool.chat", got.Lineage, got.Serial, got.Addrs(), st.Lineage, next)
	}
	if err := newStore(fs).Write(t.Context(), got); err != nil {
		t.Fatalf("folding: %v", err)
	}
	if got := readOK(t, fs); got.Pools["pool.chat"] == nil || got.Lineage != st.Lineage {
		t.Errorf("after the fold read %v of %s", got.Addrs(), got.Lineage)
	}
}

func TestAFailedAppendLeavesTheJournalAsItWas(t *testing.T) {
	for _, op := range []faultfs.Op{faultfs.Write, faultfs.Sync} {
		t.Run(string(op), func(t *testing.T) {
			fs, before := twoRecords(t)
			ffs := faultfs.New(fs).FailOn(op, 1)
			_, err := newStore(ffs).Append(t.Context(), lineage, 3, []state.PoolChange{{Addr: "pool.third", Pool: replicaPool("r0")}})
			if !errors.Is(err, faultfs.ErrInjected) || !strings.Contains(err.Error(), "appending to the state journal "+journalPath) {
				t.Fatalf("Append = %v, want the injected failure, naming the journal", err)
			}
			after, _ := afero.ReadFile(fs, journalPath)
			if string(after) != string(before) {
				t.Errorf("the journal changed:\n%s\nwant\n%s", after, before)
			}
			if st := readOK(t, fs); st.Pools["pool.third"] != nil || st.Pools["pool.rerank"] == nil {
				t.Errorf("read %v", st.Addrs())
			}
		})
	}
}
