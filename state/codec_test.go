package state

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "update .golden files")

const testLineage = "5b0d9a4e-1c2f-4e8a-9b7c-0d1e2f3a4b5c"

func TestDecodeThenEncodeGivesTheFileCompact(t *testing.T) {
	// The file is indented, as builds before compact state files wrote
	// it: Decode reads it, and Encode gives the same JSON, compact.
	path := filepath.Join("testdata", "full.state.json")
	indented, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, indented); err != nil {
		t.Fatal(err)
	}
	want := append(compact.Bytes(), '\n')
	st, err := Decode(indented, path, "")
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	got, err := Encode(st)
	if err != nil {
		t.Fatalf("Encode: %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("Encode(Decode(%s)) differs from the file, compacted:\n%s", path, got)
	}
	if again, err := Decode(got, path, ""); err != nil {
		t.Errorf("Decode(Encode(...)): %v", err)
	} else if re, _ := Encode(again); !bytes.Equal(re, want) {
		t.Errorf("the compact file does not read back as the same state:\n%s", re)
	}

	// Spot-check that the fields really were read, not just echoed.
	chat := st.Pools["pool.chat"]
	if chat == nil || len(chat.Replicas) != 2 {
		t.Fatalf("pool.chat = %+v, want 2 replicas", chat)
	}
	if r := chat.Replica("r1"); r == nil || r.Restarts != 2 || r.Generation != 1 || r.Status != StatusBackoff {
		t.Errorf("replica r1 = %+v", r)
	}
	if got, want := chat.Replica("r0").ReadyAt, time.Date(2025, 6, 1, 10, 0, 3, 5e8, time.UTC); !got.Equal(want) {
		t.Errorf("r0 ready_at = %v, want %v", got, want)
	}
	if st.Serial != 12 || st.Lineage != testLineage || st.LlorchVersion != "0.1.0" {
		t.Errorf("header = %d %q %q", st.Serial, st.Lineage, st.LlorchVersion)
	}
}

func TestEncodeFormat(t *testing.T) {
	st := New(testLineage)
	st.FormatVersion = 0 // a hand-built State still gets the current format
	st.Pools = nil
	got, err := Encode(st)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"format_version":1,"lineage":"` + testLineage + `","serial":0,"llorch_version":"","pools":{}}` + "\n"
	if string(got) != want {
		t.Errorf("Encode = %q, want %q", got, want)
	}
	if st.FormatVersion != 0 || st.Pools != nil {
		t.Errorf("Encode changed its argument: %+v", st)
	}
}

func TestEncodeIsDeterministic(t *testing.T) {
	st := New(testLineage)
	for _, addr := range []string{"pool.z", "pool.a", `pool.m["k"]`, "pool.b[3]"} {
		st.Pools[addr] = &Pool{Engine: "llamacpp", Spec: &Spec{
			Env:    map[string]string{"Z": "1", "A": "2", "M": "3"},
			Labels: map[string]string{"y": "1", "b": "2"},
		}}
	}
	first, err := Encode(st)
	if err != nil {
		t.Fatal(err)
	}
	for range 20 {
		again, err := Encode(st.DeepCopy())
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(first, again) {
			t.Fatalf("two encodings differ:\n%s\n---\n%s", first, again)
		}
	}
	if i, j := bytes.Index(first, []byte(`"pool.a"`)), bytes.Index(first, []byte(`"pool.z"`)); i < 0 || j < i {
		t.Errorf("pools not sorted by address:\n%s", first)
	}
}

func TestEncodeRefusesWhatDecodeWouldRefuse(t *testing.T) {
	tests := []struct {
		name string
		st   *State
		want string
	}{
		{"nil state", nil, "encoding state: the state is nil"},
		{"no lineage", New(""), `encoding state: lineage "" is not a UUID; a state keeps the lineage it was created with (state.New)`},
		{"lineage that is not a uuid", New("my-state"), `encoding state: lineage "my-state" is not a UUID`},
		{"newer format", &State{FormatVersion: 2, Lineage: testLineage}, "encoding state: format_version 2 is newer than this build writes (1)"},
		{"nil pool", &State{Lineage: testLineage, Pools: map[string]*Pool{"pool.x": nil}}, `encoding state: pool "pool.x" is null`},
		{"nil replica", &State{Lineage: testLineage, Pools: map[string]*Pool{"pool.x": {Replicas: []*Replica{{ID: "r0"}, nil}}}}, `encoding state: pool "pool.x": replica 1 is null`},
		{"replica twice", &State{Lineage: testLineage, Pools: map[string]*Pool{"pool.x": {Replicas: []*Replica{{ID: "r0"}, {ID: "r0"}}}}}, `encoding state: pool "pool.x" lists replica "r0" twice`},
		{"provider block that is not JSON", &State{Lineage: testLineage, Pools: map[string]*Pool{"pool.x": {Spec: &Spec{Provider: []byte("{nope")}}}}, "encoding state: json: error calling MarshalJSON for type json.RawMessage"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Encode(tc.st)
			if err == nil {
				t.Fatalf("Encode succeeded, want error %q", tc.want)
			}
			if !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("error = %q\nwant prefix %q", err, tc.want)
			}
		})
	}
}

func TestDecodeRejectsUntrustworthyFiles(t *testing.T) {
	const (
		path   = ".llorch/state.json"
		backup = ".llorch/state.json.backup"
	)
	header := `"format_version": 1, "lineage": "` + testLineage + `"`
	tests := []struct {
		name   string
		data   string
		reason string // CorruptError.Reason, exactly
	}{
		{"empty file", "", "the file is empty"},
		{"only whitespace", " \n\t\n", "the file is empty"},
		{"syntax error", "{\n  \"format_version\": 1,\n  \"lineage\": }\n", "invalid JSON at line 3, column 14: invalid character '}' looking for beginning of value"},
		{"truncated by a crash", "{\n  \"format_version\": 1,\n  \"pools\": {\n", "invalid JSON at line 4, column 1: unexpected end of JSON input"},
		{"array instead of object", "[1, 2]", "the file holds a JSON array, not a state object"},
		{"json null", "null", "the file holds JSON null, not a state object"},
		{"no format_version", `{"lineage": "` + testLineage + `"}`, "it has no format_version"},
		{"format_version as a string", `{"format_version": "1"}`, `format_version "1" is not a whole number`},
		{"fractional format_version", `{"format_version": 1.5}`, `format_version 1.5 is not a whole number`},
		{"format_version zero", `{"format_version": 0}`, "format_version 0 is not valid (formats start at 1)"},
		{"wrong field type", "{" + header + ",\n\"serial\": \"twelve\"}", "a value has the wrong type at line 2, column 18: json: cannot unmarshal string into Go struct field State.serial of type uint64"},
		{"missing lineage", `{"format_version": 1, "serial": 3}`, "it has no lineage"},
		{"empty lineage", `{"format_version": 1, "lineage": ""}`, "it has no lineage"},
		{"lineage that is not a uuid", `{"format_version": 1, "lineage": "5b0d-not-a-uuid"}`, `its lineage "5b0d-not-a-uuid" is not a UUID`},
		{"null pool", "{" + header + `, "pools": {"pool.chat": null}}`, `pool "pool.chat" is null`},
		{"null replica", "{" + header + `, "pools": {"pool.chat": {"replicas": [null]}}}`, `pool "pool.chat": replica 0 is null`},
		{"replica listed twice", "{" + header + `, "pools": {"pool.chat": {"replicas": [{"id": "r0"}, {"id": "r0"}]}}}`, `pool "pool.chat" lists replica "r0" twice`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st, err := Decode([]byte(tc.data), path, backup)
			if err == nil {
				t.Fatalf("Decode succeeded: %+v", st)
			}
			var ce *CorruptError
			if !errors.As(err, &ce) {
				t.Fatalf("error is %T, want *CorruptError: %v", err, err)
			}
			if ce.Reason != tc.reason {
				t.Errorf("reason = %q\nwant     %q", ce.Reason, tc.reason)
			}
			want := "state file .llorch/state.json is corrupt: " + tc.reason +
				"; the previous version is in .llorch/state.json.backup: compare the two, then repair the file by hand or copy the backup over it" +
				"; llorch never overwrites a corrupt state file"
			if err.Error() != want {
				t.Errorf("error = %q\nwant    %q", err, want)
			}
		})
	}
}

func TestCorruptErrorWithoutBackupSaysWhatToDo(t *testing.T) {
	_, err := Decode([]byte("{"), "/srv/.llorch/state.json", "")
	want := "state file /srv/.llorch/state.json is corrupt: invalid JSON at line 1, column 1: unexpected end of JSON input; " +
		"there is no backup: repair the file by hand, or move it away to start from an empty state " +
		"(llorch then forgets the replicas it recorded, which keep running); llorch never overwrites a corrupt state file"
	if err == nil || err.Error() != want {
		t.Errorf("error = %v\nwant    %s", err, want)
	}
}

func TestDecodeRefusesNewerFormat(t *testing.T) {
	tests := []struct {
		name string
		data string
		want string
	}{
		{
			"with the writer's version",
			`{"format_version": 2, "lineage": "` + testLineage + `", "llorch_version": "0.9.0"}`,
			"state file .llorch/state.json was written by a newer llorch (0.9.0, format 2; this build reads 1): upgrade llorch to use this state; the file was left unchanged",
		},
		{
			"without the writer's version",
			`{"format_version": 7}`,
			"state file .llorch/state.json was written by a newer llorch (format 7; this build reads 1): upgrade llorch to use this state; the file was left unchanged",
		},
		{
			// A newer format may change field types; that must not be
			// reported as corruption.
			"with fields this build cannot parse",
			`{"format_version": 2, "lineage": 42, "serial": "x", "pools": []}`,
			"state file .llorch/state.json was written by a newer llorch (format 2; this build reads 1): upgrade llorch to use this state; the file was left unchanged",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Decode([]byte(tc.data), ".llorch/state.json", ".llorch/state.json.backup")
			var ve *VersionError
			if !errors.As(err, &ve) {
				t.Fatalf("error is %T, want *VersionError: %v", err, err)
			}
			if ve.Supported != FormatVersion {
				t.Errorf("Supported = %d", ve.Supported)
			}
			if err.Error() != tc.want {
				t.Errorf("error = %q\nwant    %q", err, tc.want)
			}
		})
	}
}

func TestDecodeAcceptsMinimalAndForwardCompatibleFiles(t *testing.T) {
	tests := []struct {
		name string
		data string
	}{
		{"no pools key", `{"format_version": 1, "lineage": "` + testLineage + `"}`},
		{"null pools", `{"format_version": 1, "lineage": "` + testLineage + `", "pools": null}`},
		{"unknown field within the format", `{"format_version": 1, "lineage": "` + testLineage + `", "added_later": {"x": 1}}`},
		{"upper-case lineage", `{"format_version": 1, "lineage": "` + strings.ToUpper(testLineage) + `"}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st, err := Decode([]byte(tc.data), "state.json", "")
			if err != nil {
				t.Fatal(err)
			}
			if st.Pools == nil {
				t.Error("Pools is nil; callers may assign into it")
			}
		})
	}
}

func TestCorruptErrorUnwrapsToTheJSONError(t *testing.T) {
	_, err := Decode([]byte(`{"format_version": 1,}`), "state.json", "")
	var ce *CorruptError
	if !errors.As(err, &ce) || ce.Err == nil {
		t.Fatalf("error = %#v, want a CorruptError carrying the JSON error", err)
	}
	if !errors.Is(err, ce.Err) {
		t.Error("errors.Is does not reach the JSON error")
	}
}

func TestLineageErrorNamesBothLineages(t *testing.T) {
	err := &LineageError{Path: ".llorch/state.json", Stored: "aaaaaaaa-0000-0000-0000-000000000000", Writing: "bbbbbbbb-0000-0000-0000-000000000000"}
	want := "refusing to write state with lineage bbbbbbbb-0000-0000-0000-000000000000 over .llorch/state.json, " +
		"which holds a different state (lineage aaaaaaaa-0000-0000-0000-000000000000); was the state file replaced while llorch ran?"
	if err.Error() != want {
		t.Errorf("error = %q\nwant    %q", err, want)
	}
}

func BenchmarkDecode(b *testing.B) {
	data, err := os.ReadFile(filepath.Join("testdata", "full.state.json"))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := Decode(data, "state.json", ""); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodePools decodes the file Encode writes for n applied pools
// of two replicas.
func BenchmarkDecodePools(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		b.Run(fmt.Sprintf("pools=%d", n), func(b *testing.B) {
			data, err := Encode(benchState(n))
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Decode(data, "state.json", ""); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
