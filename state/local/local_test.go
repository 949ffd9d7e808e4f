package local_test

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spf13/afero"

	"github.com/llorch/llorch/internal/faultfs"
	"github.com/llorch/llorch/state"
	"github.com/llorch/llorch/state/local"
)

const (
	lineage      = "5b0d9a4e-1c2f-4e8a-9b7c-0d1e2f3a4b5c"
	otherLineage = "0f0f0f0f-aaaa-4bbb-8ccc-dddddddddddd"
	dir          = "/work/.llorch"
)

var t0 = time.Date(2025, 6, 1, 10, 0, 0, 0, time.UTC)

func newStore(fs afero.Fs) *local.Store {
	return local.New(fs, dir, local.Options{Version: "0.1.0", Now: func() time.Time { return t0 }})
}

// sample is a state with one pool, as apply would record it.
func sample() *state.State {
	st := state.New(lineage)
	st.Pools["pool.chat"] = &state.Pool{
		Engine:   "llamacpp",
		Replicas: []*state.Replica{{ID: "r0", Port: 8080, PID: 4242, Status: state.StatusReady}},
	}
	return st
}

// atSeeded is sample() as read from seeded's state file (serial 2).
func atSeeded() *state.State {
	st := sample()
	st.Serial = 2
	return st
}

// seeded returns a filesystem holding a state file at serial 2 and a backup
// at serial 1, written by the Store itself.
func seeded(t *testing.T) afero.Fs {
	t.Helper()
	fs := afero.NewMemMapFs()
	s := newStore(fs)
	st := sample()
	for range 2 {
		if err := s.Write(t.Context(), st); err != nil {
			t.Fatal(err)
		}
	}
	return fs
}

// snapshot is every file in the state directory with its bytes.
func snapshot(t *testing.T, fs afero.Fs) map[string]string {
	t.Helper()
	out := map[string]string{}
	entries, err := afero.ReadDir(fs, dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		data, err := afero.ReadFile(fs, filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = string(data)
	}
	return out
}

func equalSnapshots(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func readState(t *testing.T, fs afero.Fs, path string) *state.State {
	t.Helper()
	data, err := afero.ReadFile(fs, path)
	if err != nil {
		t.Fatal(err)
	}
	st, err := state.Decode(data, path, "")
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestReadWithoutStateFileStartsAnEmptyState(t *testing.T) {
	fs := afero.NewMemMapFs()
	st, err := newStore(fs).Read(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if st.Serial != 0 || len(st.Pools) != 0 || st.Pools == nil {
		t.Errorf("state = %+v, want serial 0 and no pools", st)
	}
	if st.FormatVersion != state.FormatVersion || st.LlorchVersion != "0.1.0" {
		t.Errorf("header = format %d, version %q", st.FormatVersion, st.LlorchVersion)
	}
	if _, err := state.Encode(st); err != nil {
		t.Errorf("the new lineage %q is not valid: %v", st.Lineage, err)
	}
	if exists, _ := afero.Exists(fs, filepath.Join(dir, "state.json")); exists {
		t.Error("Read wrote a state file")
	}
}

func TestWriteThenReadRoundTrips(t *testing.T) {
	fs := afero.NewMemMapFs()
	s := newStore(fs)
	st := sample()
	if err := s.Write(t.Context(), st); err != nil {
		t.Fatal(err)
	}
	got, err := s.Read(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if got.Lineage != lineage || got.Serial != 1 || got.Pools["pool.chat"].Replicas[0].PID != 4242 {
		t.Errorf("read back %+v", got)
	}
	// What Read returns is the caller's own.
	got.Pools["pool.chat"].Replicas[0].PID = 1
	again, err := s.Read(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if again.Pools["pool.chat"].Replicas[0].PID != 4242 {
		t.Error("changing one Read's result changed the next")
	}
}

func TestWriteIncrementsTheStoredSerial(t *testing.T) {
	fs := afero.NewMemMapFs()
	s := newStore(fs)
	st := sample()
	for want := uint64(1); want <= 3; want++ {
		if err := s.Write(t.Context(), st); err != nil {
			t.Fatal(err)
		}
		if st.Serial != want {
			t.Errorf("caller's serial = %d, want %d", st.Serial, want)
		}
		if got := readState(t, fs, s.Path()).Serial; got != want {
			t.Errorf("stored serial = %d, want %d", got, want)
		}
	}
	// A caller holding an older copy would undo the writes since.
	stale := sample()
	stale.Serial = 1
	var se *state.StaleError
	if err := s.Write(t.Context(), stale); !errors.As(err, &se) || se.Read != 1 || se.Stored != 3 {
		t.Fatalf("write from an old copy: error = %v, want a *state.StaleError (read 1, stored 3)", err)
	}
	if got := readState(t, fs, s.Path()).Serial; got != 3 {
		t.Errorf("stored serial = %d after a refused write, want 3", got)
	}
}

func TestWriteKeepsThePreviousVersionAsBackup(t *testing.T) {
	fs := afero.NewMemMapFs()
	s := newStore(fs)
	st := sample()
	var written []string
	for i := range 3 {
		st.Pools["pool.chat"].Replicas[0].Restarts = i
		if err := s.Write(t.Context(), st); err != nil {
			t.Fatal(err)
		}
		data, _ := afero.ReadFile(fs, s.Path())
		written = append(written, string(data))
		backup, err := afero.ReadFile(fs, s.BackupPath())
		switch {
		case i == 0 && err == nil:
			t.Errorf("first write made a backup: %s", backup)
		case i > 0 && string(backup) != written[i-1]:
			t.Errorf("after write %d the backup is\n%s\nwant the previous state file\n%s", i+1, backup, written[i-1])
		}
	}
}

func TestWriteRecordsTheVersionAndFormat(t *testing.T) {
	fs := afero.NewMemMapFs()
	st := sample()
	st.FormatVersion = 0
	st.LlorchVersion = "0.0.1"
	if err := newStore(fs).Write(t.Context(), st); err != nil {
		t.Fatal(err)
	}
	if st.FormatVersion != state.FormatVersion || st.LlorchVersion != "0.1.0" {
		t.Errorf("caller's header = format %d, version %q", st.FormatVersion, st.LlorchVersion)
	}
	data, _ := afero.ReadFile(fs, filepath.Join(dir, "state.json"))
	if !bytes.Contains(data, []byte(`"llorch_version":"0.1.0"`)) {
		t.Errorf("state file does not record this version:\n%s", data)
	}
}

func TestWriteRefusals(t *testing.T) {
	tests := []struct {
		name    string
		onDisk  string // state.json content; "" keeps the seeded one
		writing *state.State
		want    string // the whole error
		is      func(error) bool
	}{
		{
			name:    "another lineage",
			writing: state.New(otherLineage),
			want: "writing state to /work/.llorch/state.json: refusing to write state with lineage " + otherLineage +
				" over /work/.llorch/state.json, which holds a different state (lineage " + lineage + "); was the state file replaced while llorch ran?" +
				"; the state was written to errored.state.json instead: compare it with /work/.llorch/state.json before replacing either",
			is: func(err error) bool { var le *state.LineageError; return errors.As(err, &le) },
		},
		{
			name:    "corrupt state file",
			onDisk:  `{"format_version": 1, "lineage": "` + lineage + `", "serial": 3,`,
			writing: sample(),
			want: "writing state to /work/.llorch/state.json: state file /work/.llorch/state.json is corrupt: invalid JSON at line 1, column 85: unexpected end of JSON input" +
				"; the previous version is in /work/.llorch/state.json.backup: compare the two, then repair the file by hand or copy the backup over it" +
				"; llorch never overwrites a corrupt state file" +
				"; the state was written to errored.state.json instead: copy it to /work/.llorch/state.json once the problem is fixed",
			is: func(err error) bool { var ce *state.CorruptError; return errors.As(err, &ce) },
		},
		{
			name:    "state file from a newer llorch",
			onDisk:  `{"format_version": 2, "lineage": "` + lineage + `", "llorch_version": "0.9.0"}`,
			writing: sample(),
			want: "writing state to /work/.llorch/state.json: state file /work/.llorch/state.json was written by a newer llorch (0.9.0, format 2; this build reads 1)" +
				": upgrade llorch to use this state; the file was left unchanged" +
				"; the state was written to errored.state.json instead: copy it to /work/.llorch/state.json once the problem is fixed",
			is: func(err error) bool { var ve *state.VersionError; return errors.As(err, &ve) },
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fs := seeded(t)
			if tc.onDisk != "" {
				if err := afero.WriteFile(fs, filepath.Join(dir, "state.json"), []byte(tc.onDisk), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			before := snapshot(t, fs)
			serial := tc.writing.Serial
			err := newStore(fs).Write(t.Context(), tc.writing)
			if err == nil {
				t.Fatal("Write succeeded")
			}
			if err.Error() != tc.want {
				t.Errorf("error = %q\nwant    %q", err, tc.want)
			}
			if !tc.is(err) {
				t.Errorf("error does not unwrap to the expected type: %T", errors.Unwrap(err))
			}
			if after := snapshot(t, fs); !equalSnapshots(before, after) {
				t.Errorf("state directory changed:\nbefore %q\nafter  %q", before, after)
			}
			if tc.writing.Serial != serial {
				t.Errorf("caller's serial changed to %d on a failed write", tc.writing.Serial)
			}
			dumped := readState(t, fs, "errored.state.json")
			if dumped.Lineage != tc.writing.Lineage {
				t.Errorf("errored file has lineage %s, want %s", dumped.Lineage, tc.writing.Lineage)
			}
		})
	}
}

func TestWriteRefusesStatesThatCannotBeEncoded(t *testing.T) {
	fs := afero.NewMemMapFs()
	err := newStore(fs).Write(t.Context(), state.New("not-a-uuid"))
	want := `writing state to /work/.llorch/state.json: encoding state: lineage "not-a-uuid" is not a UUID; a state keeps the lineage it was created with (state.New)`
	if err == nil || err.Error() != want {
		t.Errorf("error = %v\nwant    %s", err, want)
	}
	if err := newStore(fs).Write(t.Context(), nil); err == nil || err.Error() != "writing state: the state is nil" {
		t.Errorf("Write(nil) error = %v", err)
	}
}

func TestReadCorruptFileNamesTheBackupIfThereIsOne(t *testing.T) {
	tests := []struct {
		name       string
		withBackup bool
		want       string
	}{
		{"with backup", true, "the previous version is in /work/.llorch/state.json.backup"},
		{"without backup", false, "there is no backup"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fs := seeded(t)
			if !tc.withBackup {
				_ = fs.Remove(filepath.Join(dir, "state.json.backup"))
			}
			_ = afero.WriteFile(fs, filepath.Join(dir, "state.json"), []byte("{oops"), 0o600)
			_, err := newStore(fs).Read(t.Context())
			var ce *state.CorruptError
			if !errors.As(err, &ce) {
				t.Fatalf("error = %v, want a *state.CorruptError", err)
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "state file /work/.llorch/state.json is corrupt: invalid JSON at line 1, column 2") {
				t.Errorf("error = %q, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestPrefetchedStateIsReadOnlyWhileTheFileIsUnchanged(t *testing.T) {
	tests := []struct {
		name       string
		between    func(t *testing.T, fs afero.Fs) // after Prefetch, before Read
		wantSerial uint64
		wantErr    string
	}{
		{"file unchanged", func(*testing.T, afero.Fs) {}, 2, ""},
		{"another command wrote meanwhile", func(t *testing.T, fs afero.Fs) {
			st := atSeeded()
			st.Pools["pool.chat"].Replicas[0].PID = 99
			if err := newStore(fs).Write(t.Context(), st); err != nil {
				t.Fatal(err)
			}
		}, 3, ""},
		{"file removed meanwhile", func(t *testing.T, fs afero.Fs) {
			if err := fs.Remove(filepath.Join(dir, "state.json")); err != nil {
				t.Fatal(err)
			}
		}, 0, ""},
		{"file corrupted meanwhile", func(t *testing.T, fs afero.Fs) {
			_ = afero.WriteFile(fs, filepath.Join(dir, "state.json"), []byte("{oops"), 0o600)
		}, 0, "state file /work/.llorch/state.json is corrupt: invalid JSON at line 1, column 2: invalid character 'o' looking for beginning of object key string; the previous version is in /work/.llorch/state.json.backup"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fs := seeded(t)
			s := newStore(fs)
			s.Prefetch(t.Context())
			tc.between(t, fs)
			st, err := s.Read(t.Context())
			if tc.wantErr != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tc.wantErr) {
					t.Fatalf("Read error = %v, want it to start with %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if st.Serial != tc.wantSerial {
				t.Errorf("Read serial = %d, want %d", st.Serial, tc.wantSerial)
			}
			if tc.wantSerial == 3 && st.Pools["pool.chat"].Replicas[0].PID != 99 {
				t.Error("Read returned the prefetched state, not the file's")
			}
		})
	}
}

func TestPrefetchedStateIsHandedOutOnce(t *testing.T) {
	s := newStore(seeded(t))
	s.Prefetch(t.Context())
	first, err := s.Read(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	second, err := s.Read(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if first == second || first.Pools["pool.chat"] == second.Pools["pool.chat"] {
		t.Error("two Reads returned the same State")
	}
	first.Pools["pool.chat"].Replicas[0].PID = 1
	if second.Pools["pool.chat"].Replicas[0].PID != 4242 {
		t.Error("changing one Read's state changed the other's")
	}
}

func TestPrefetchOfAMissingOrCorruptFileLeavesReadToReport(t *testing.T) {
	fs := afero.NewMemMapFs()
	s := newStore(fs)
	s.Prefetch(t.Context())
	st, err := s.Read(t.Context())
	if err != nil || st.Serial != 0 || len(st.Pools) != 0 {
		t.Fatalf("Read without a state file = %+v, %v; want an empty state", st, err)
	}
	_ = afero.WriteFile(fs, filepath.Join(dir, "state.json"), []byte(`{"format_version": 3}`), 0o600)
	s.Prefetch(t.Context())
	_, err = s.Read(t.Context())
	var ve *state.VersionError
	if !errors.As(err, &ve) || ve.Found != 3 {
		t.Fatalf("error = %v, want a *state.VersionError for format 3", err)
	}
}

func TestPrefetchWhileReadingAndWriting(t *testing.T) {
	s := newStore(seeded(t))
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() { s.Prefetch(t.Context()) })
		wg.Go(func() {
			if _, err := s.Read(t.Context()); err != nil {
				t.Error(err)
			}
		})
		if i == 2 {
			wg.Go(func() {
				if err := s.Write(t.Context(), atSeeded()); err != nil {
					t.Error(err)
				}
			})
		}
	}
	wg.Wait()
}

func TestReadNewerFormatIsAVersionError(t *testing.T) {
	fs := afero.NewMemMapFs()
	_ = afero.WriteFile(fs, filepath.Join(dir, "state.json"), []byte(`{"format_version": 3}`), 0o600)
	_, err := newStore(fs).Read(t.Context())
	var ve *state.VersionError
	if !errors.As(err, &ve) || ve.Found != 3 {
		t.Fatalf("error = %v, want a *state.VersionError for format 3", err)
	}
}

// Failing any one Rename, Sync, OpenFile, Open or Write during a Write
// leaves state.json and state.json.backup exactly as they were, leaves no
// temporary file, and dumps the state to errored.state.json.
func TestWriteFailureAtAnyStepChangesNothing(t *testing.T) {
	ops := []faultfs.Op{faultfs.Rename, faultfs.Sync, faultfs.OpenFile, faultfs.Open, faultfs.Write}

	// Count the calls a successful write makes, to fail each one in turn.
	counter := faultfs.New(seeded(t))
	if err := newStore(counter).Write(t.Context(), atSeeded()); err != nil {
		t.Fatal(err)
	}
	for _, op := range ops {
		calls := counter.Calls(op)
		if calls == 0 {
			t.Errorf("a write makes no %s call; the fault cannot be tested", op)
		}
		for n := 1; n <= calls; n++ {
			t.Run(fmt.Sprintf("%s#%d", op, n), func(t *testing.T) {
				base := seeded(t)
				before := snapshot(t, base)
				ffs := faultfs.New(base).FailOn(op, n)
				st := atSeeded()
				st.Pools["pool.chat"].Replicas[0].Restarts = 9 // new content
				err := newStore(ffs).Write(t.Context(), st)
				if !errors.Is(err, faultfs.ErrInjected) {
					t.Fatalf("error = %v, want the injected fault", err)
				}
				var we *state.WriteError
				if !errors.As(err, &we) || we.ErroredPath != "errored.state.json" {
					t.Fatalf("error = %#v, want a *state.WriteError with the errored path", err)
				}
				if !strings.HasSuffix(err.Error(), "; the state was written to errored.state.json instead: copy it to /work/.llorch/state.json once the problem is fixed") {
					t.Errorf("error does not say where the state went: %q", err)
				}
				if after := snapshot(t, base); !equalSnapshots(before, after) {
					t.Errorf("state directory changed:\nbefore %q\nafter  %q", before, after)
				}
				if st.Serial != 2 {
					t.Errorf("caller's serial = %d after a failed write, want it unchanged", st.Serial)
				}
				// The dump carries the next serial (the stored one + 1,
				// or the caller's + 1 when the stored state itself could
				// not be read: the same here).
				wantSerial := uint64(3)
				dumped := readState(t, base, "errored.state.json")
				if dumped.Serial != wantSerial || dumped.Pools["pool.chat"].Replicas[0].Restarts != 9 {
					t.Errorf("errored file = serial %d, restarts %d; want the new state at serial %d",
						dumped.Serial, dumped.Pools["pool.chat"].Replicas[0].Restarts, wantSerial)
				}
			})
		}
	}
}

// The first write has no backup to keep; failing it leaves no state file.
func TestFailedFirstWriteLeavesNoStateFile(t *testing.T) {
	for _, op := range []faultfs.Op{faultfs.Rename, faultfs.Sync, faultfs.OpenFile, faultfs.Write} {
		t.Run(string(op), func(t *testing.T) {
			base := afero.NewMemMapFs()
			err := newStore(faultfs.New(base).FailOn(op, 1)).Write(t.Context(), sample())
			if !errors.Is(err, faultfs.ErrInjected) {
				t.Fatalf("error = %v, want the injected fault", err)
			}
			if got := snapshot(t, base); len(got) != 0 {
				t.Errorf("state directory holds %q after a failed first write", got)
			}
			if ok, _ := afero.Exists(base, "errored.state.json"); !ok {
				t.Error("no errored.state.json")
			}
		})
	}
}

// A disk that stops renaming after the backup is in place: the old backup
// cannot be put back, and the dump fails too. The error says all of it.
func TestWriteFailureWhenTheDiskKeepsFailing(t *testing.T) {
	base := seeded(t)
	before := snapshot(t, base)
	ffs := faultfs.New(base).FailFrom(faultfs.Rename, 2)
	err := local.New(ffs, dir, local.Options{ErroredPath: "/dump/errored.json"}).Write(t.Context(), atSeeded())
	var we *state.WriteError
	if !errors.As(err, &we) {
		t.Fatalf("error = %v, want a *state.WriteError", err)
	}
	if we.ErroredPath != "" || we.DumpErr == nil {
		t.Errorf("WriteError = %+v, want the dump reported as failed", we)
	}
	for _, want := range []string{
		"writing state to /work/.llorch/state.json: replacing /work/.llorch/state.json: rename ",
		"putting the old backup back failed too",
		"so /work/.llorch/state.json.backup now holds a copy of the unchanged state file",
		"; saving it to /dump/errored.json: ",
		"failed too, so this run's changes to the state are lost",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error = %q\nwant it to contain %q", err, want)
		}
	}
	after := snapshot(t, base)
	if after["state.json"] != before["state.json"] {
		t.Error("state.json changed")
	}
	if after["state.json.backup"] != before["state.json"] {
		t.Error("backup is neither the old backup nor a copy of the state file")
	}
}

func TestErroredPathOption(t *testing.T) {
	fs := seeded(t)
	err := local.New(fs, dir, local.Options{ErroredPath: "/tmp/run-42.errored.json"}).Write(t.Context(), state.New(otherLineage))
	var we *state.WriteError
	if !errors.As(err, &we) || we.ErroredPath != "/tmp/run-42.errored.json" {
		t.Fatalf("error = %v", err)
	}
	if ok, _ := afero.Exists(fs, "/tmp/run-42.errored.json"); !ok {
		t.Error("state not dumped to the configured path")
	}
	if ok, _ := afero.Exists(fs, "errored.state.json"); ok {
		t.Error("state dumped to the default path as well")
	}
}

func TestPaths(t *testing.T) {
	s := local.New(afero.NewMemMapFs(), ".llorch", local.Options{})
	got := []string{s.Path(), s.BackupPath(), s.LockPath(), s.ErroredPath()}
	want := []string{".llorch/state.json", ".llorch/state.json.backup", ".llorch/state.lock", "errored.state.json"}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("paths = %q, want %q", got, want)
			break
		}
	}
}

// A Store recognises the file it wrote last without decoding it; a file
// changed behind its back is decoded and checked again.
func TestWriteNoticesAStateFileChangedBehindItsBack(t *testing.T) {
	tests := []struct {
		name       string
		change     func(t *testing.T, fs afero.Fs)
		wantErr    string // prefix; "" = the write succeeds
		wantSerial uint64
	}{
		{
			name:       "unchanged",
			change:     func(*testing.T, afero.Fs) {},
			wantSerial: 3,
		},
		{
			name: "another process wrote a newer serial",
			change: func(t *testing.T, fs afero.Fs) {
				other := atSeeded()
				for range 5 {
					if err := newStore(fs).Write(t.Context(), other); err != nil {
						t.Fatal(err)
					}
				}
			},
			wantErr: "writing state to /work/.llorch/state.json: refusing to overwrite /work/.llorch/state.json: the state was read at serial 2, but serial 7 is stored now",
		},
		{
			name: "replaced by another lineage",
			change: func(t *testing.T, fs afero.Fs) {
				_ = afero.WriteFile(fs, filepath.Join(dir, "state.json"), []byte(`{"format_version": 1, "lineage": "`+otherLineage+`", "serial": 2}`), 0o600)
			},
			wantErr: "writing state to /work/.llorch/state.json: refusing to write state with lineage " + lineage,
		},
		{
			name: "corrupted",
			change: func(t *testing.T, fs afero.Fs) {
				_ = afero.WriteFile(fs, filepath.Join(dir, "state.json"), []byte(`{"format_version": 1,`), 0o600)
			},
			wantErr: "writing state to /work/.llorch/state.json: state file /work/.llorch/state.json is corrupt",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fs := afero.NewMemMapFs()
			s := newStore(fs)
			st := sample()
			for range 2 {
				if err := s.Write(t.Context(), st); err != nil {
					t.Fatal(err)
				}
			}
			tc.change(t, fs)
			err := s.Write(t.Context(), st)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("Write: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.HasPrefix(err.Error(), tc.wantErr)):
				t.Fatalf("Write: error = %v\nwant prefix %s", err, tc.wantErr)
			case tc.wantErr == "" && st.Serial != tc.wantSerial:
				t.Errorf("serial = %d, want %d", st.Serial, tc.wantSerial)
			}
		})
	}
}

// Writers that each read the same serial race: one wins, the others are
// refused as stale, and the file is always one whole state.
func TestConcurrentWritesAreSerialized(t *testing.T) {
	fs := afero.NewMemMapFs()
	s := newStore(fs)
	if err := s.Write(t.Context(), sample()); err != nil {
		t.Fatal(err)
	}
	const writers, each = 8, 5
	var wins sync.WaitGroup
	var mu sync.Mutex
	won := 0
	for range writers {
		wins.Go(func() {
			for range each {
				st, err := s.Read(t.Context())
				if err != nil {
					t.Error(err)
					return
				}
				st.Pools["pool.chat"] = sample().Pools["pool.chat"]
				var se *state.StaleError
				switch err := s.Write(t.Context(), st); {
				case err == nil:
					mu.Lock()
					won++
					mu.Unlock()
				case !errors.As(err, &se):
					t.Errorf("Write: %v, want success or a *state.StaleError", err)
				}
			}
		})
	}
	wins.Wait()
	if got := readState(t, fs, s.Path()).Serial; got != uint64(1+won) || won == 0 {
		t.Errorf("stored serial = %d after 1 + %d successful writes", got, won)
	}
}
