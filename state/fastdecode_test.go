package state

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// reflectDecode is what encoding/json makes of data, the reference
// decodeFast must match.
func reflectDecode(t testing.TB, data []byte) (*State, error) {
	t.Helper()
	return decodeReflect(data, "state.json", func(reason string, err error) error {
		return &CorruptError{Path: "state.json", Reason: reason, Err: err}
	})
}

// dump shows a decoded state in failure messages, pointers followed and
// nil told from empty.
func dump(st *State) string {
	return spew(reflect.ValueOf(st))
}

func spew(v reflect.Value) string {
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			return "nil"
		}
		return "&" + spew(v.Elem())
	case reflect.Struct:
		if t, ok := v.Interface().(interface{ String() string }); ok {
			return t.String()
		}
		var b strings.Builder
		b.WriteString("{")
		for i := range v.NumField() {
			fmt.Fprintf(&b, "%s:%s ", v.Type().Field(i).Name, spew(v.Field(i)))
		}
		return strings.TrimSuffix(b.String(), " ") + "}"
	case reflect.Slice:
		if v.IsNil() {
			return "nil"
		}
		if v.Type().Elem().Kind() == reflect.Uint8 {
			return fmt.Sprintf("%q", v.Bytes())
		}
		var parts []string
		for i := range v.Len() {
			parts = append(parts, spew(v.Index(i)))
		}
		return "[" + strings.Join(parts, " ") + "]"
	case reflect.Map:
		if v.IsNil() {
			return "nil"
		}
		var parts []string
		for _, k := range v.MapKeys() {
			parts = append(parts, fmt.Sprintf("%q:%s", k.String(), spew(v.MapIndex(k))))
		}
		slices.Sort(parts)
		return "map[" + strings.Join(parts, " ") + "]"
	case reflect.String:
		return strconv.Quote(v.String())
	}
	return fmt.Sprint(v.Interface())
}

func TestDecodeFastReadsEveryFieldEncodeWrites(t *testing.T) {
	// Every field set: a field added to the types but not to decodeFast
	// makes it give up on this file, and this test fail.
	st := New(testLineage)
	fill(reflect.ValueOf(st).Elem(), new(int))
	st.FormatVersion = FormatVersion
	st.Lineage = testLineage
	for _, p := range st.Pools {
		p.Spec.Provider = json.RawMessage(`{"n_gpu_layers": 99, "nested": {"list": [1, "two", null, true, false, -0.5e3]}}`)
	}
	data, err := Encode(st)
	if err != nil {
		t.Fatal(err)
	}
	got, ok := decodeFast(data)
	if !ok {
		t.Fatalf("decodeFast gave up on a file Encode wrote:\n%s", data)
	}
	want, err := reflectDecode(t, data)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("decodeFast = %s\nencoding/json = %s", dump(got), dump(want))
	}
}

func TestDecodeFastReadsTheGoldenFile(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "full.state.json"))
	if err != nil {
		t.Fatal(err)
	}
	got, ok := decodeFast(data)
	if !ok {
		t.Fatal("decodeFast gave up on the golden state file")
	}
	want, err := reflectDecode(t, data)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("decodeFast = %s\nencoding/json = %s", dump(got), dump(want))
	}
}

const header = `"format_version": 1, "lineage": "` + testLineage + `"`

// TestDecodeFastMatchesEncodingJSON feeds JSON that means a state in ways
// Encode does not write, which decodeFast must read exactly as
// encoding/json does.
func TestDecodeFastMatchesEncodingJSON(t *testing.T) {
	tests := []struct {
		name string
		data string
	}{
		{"members in another order and other white space", "{\"pools\":{},\r\n\t\"serial\":3,\t" + header + "}"},
		{"nulls everywhere", `{` + header + `, "serial": null, "llorch_version": null, "pools": {"pool.a": {"engine": null, "spec": null, "prepared": null, "replicas": null}}}`},
		{"null members of a spec", `{` + header + `, "pools": {"pool.a": {"spec": {"model": null, "devices": null, "flags": null, "env": null, "health": null, "provider": null, "port": null}}}}`},
		{"null elements", `{` + header + `, "pools": {"pool.a": {"spec": {"devices": [null, 1], "flags": [null, "x"], "env": {"A": null}}, "replicas": [{"id": "r0", "started_at": null}]}}}`},
		{"empty lists and maps", `{` + header + `, "pools": {"pool.a": {"spec": {"devices": [], "flags": [], "env": {}, "labels": {}}, "prepared": {"args": [], "env": {}, "secret_env": {}}, "replicas": []}}}`},
		{"escapes", `{` + header + `, "pools": {"pool.embed[\"bge\"]": {"spec": {"flags": ["a\"b", "c\\d", "\/\b\f\n\r\t", "\u00e9\u001b[0m", "\ud83d\ude00", "\ud83d", "\ud83dx", "\udc00\ud83d\ude00"]}}}}`},
		{"escaped map keys", `{` + header + `, "pools": {"pool.a": {"spec": {"env": {"K\u0041Y": "v"}}}}}`},
		{"a pool address given twice", `{` + header + `, "pools": {"pool.a": {"engine": "x"}, "pool.a": {"spec_hash": "y"}}}`},
		{"a map key given twice", `{` + header + `, "pools": {"pool.a": {"spec": {"env": {"A": "1", "A": "2"}}}}}`},
		{"numbers", `{` + header + `, "serial": 18446744073709551615, "pools": {"pool.a": {"spec": {"port": -0, "ctx": 9223372036854775807, "restart": {"multiplier": 1.5e2, "jitter": 0}}, "prepared": {"binary_size": -9223372036854775808}}}}`},
		{"times", `{` + header + `, "pools": {"pool.a": {"prepared": {"binary_mtime": "2025-06-01T10:00:00.123456789+02:00"}, "replicas": [{"id": "r0", "ready_at": "2025-06-01T10:00:03Z"}]}}}`},
		{"provider values of every kind", `{` + header + `, "pools": {"a": {"spec": {"provider": {"s": "x\"y", "n": -1.5E-3, "t": true, "f": false, "z": null, "l": [[], {}], "o": {"k": [1]}}}}, "b": {"spec": {"provider": "text"}}, "c": {"spec": {"provider": 7}}}}`},
		{"null pool and replica (Decode refuses them later)", `{` + header + `, "pools": {"pool.a": null, "pool.b": {"replicas": [null]}}}`},
		{"utf-8 text", `{` + header + `, "pools": {"pool.ü": {"spec": {"labels": {"team": "日本語"}}}}}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			want, err := reflectDecode(t, []byte(tc.data))
			if err != nil {
				t.Fatalf("encoding/json refuses the input: %v", err)
			}
			got, ok := decodeFast([]byte(tc.data))
			if !ok {
				t.Fatal("decodeFast gave up")
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("decodeFast = %s\nencoding/json = %s", dump(got), dump(want))
			}
		})
	}
}

// TestDecodeFastGivesUpOnWhatItDoesNotUnderstand lists the inputs left to
// encoding/json: Decode's result for them, error text included, is
// encoding/json's.
func TestDecodeFastGivesUpOnWhatItDoesNotUnderstand(t *testing.T) {
	tests := []struct {
		name string
		data string
	}{
		{"unknown member", `{` + header + `, "added_later": 1}`},
		{"unknown member of a replica", `{` + header + `, "pools": {"pool.a": {"replicas": [{"id": "r0", "cpu": 1}]}}}`},
		{"member name in another case", `{` + header + `, "pools": {"pool.a": {"Engine": "x"}}}`},
		{"member name with escapes", `{` + header + `, "pools": {"pool.a": {"\u0065ngine": "x"}}}`},
		{"member given twice", `{` + header + `, "serial": 1, "serial": 2}`},
		{"spec member given twice", `{` + header + `, "pools": {"pool.a": {"spec": {"port": 1, "port": 2}}}}`},
		{"invalid utf-8", "{" + header + ", \"llorch_version\": \"\xff\"}"},
		{"invalid utf-8 in an escaped string", "{" + header + ", \"llorch_version\": \"\\n\xff\"}"},
		{"control character in a string", "{" + header + ", \"llorch_version\": \"a\tb\"}"},
		{"fraction for a whole number", `{` + header + `, "serial": 1.0}`},
		{"exponent for a whole number", `{` + header + `, "pools": {"pool.a": {"spec": {"port": 1e3}}}}`},
		{"negative serial", `{` + header + `, "serial": -1}`},
		{"number too large", `{` + header + `, "pools": {"pool.a": {"spec": {"port": 9223372036854775808}}}}`},
		{"float out of range", `{` + header + `, "pools": {"pool.a": {"spec": {"restart": {"jitter": 1e400}}}}}`},
		{"string for a number", `{` + header + `, "serial": "12"}`},
		{"number for a string", `{` + header + `, "lineage": 12}`},
		{"object for a list", `{` + header + `, "pools": {"pool.a": {"replicas": {}}}}`},
		{"list for the pools", `{` + header + `, "pools": []}`},
		{"time that is not RFC 3339", `{` + header + `, "pools": {"pool.a": {"replicas": [{"started_at": "yesterday"}]}}}`},
		{"time that is a number", `{` + header + `, "pools": {"pool.a": {"replicas": [{"started_at": 0}]}}}`},
		{"leading zero", `{"format_version": 01}`},
		{"trailing comma", `{` + header + `,}`},
		{"missing colon", `{"format_version" 1}`},
		{"unterminated string", `{"format_version": 1, "lineage": "abc`},
		{"bad escape", `{` + header + `, "llorch_version": "\x"}`},
		{"bad unicode escape", `{` + header + `, "llorch_version": "\u12g4"}`},
		{"truncated", `{` + header + `, "pools": {`},
		{"trailing data", `{` + header + `} {}`},
		{"null key", `{` + header + `, "pools": {null: {}}}`},
		{"bare word", `{` + header + `, "pools": {"pool.a": {"spec": {"provider": nope}}}}`},
		{"no format_version", `{"lineage": "` + testLineage + `"}`},
		{"format_version zero", `{"format_version": 0}`},
		{"newer format", `{"format_version": 2, "lineage": "` + testLineage + `"}`},
		{"top-level array", `[1]`},
		{"top-level null", `null`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if st, ok := decodeFast([]byte(tc.data)); ok {
				t.Fatalf("decodeFast accepted it: %+v", st)
			}
			gotState, gotErr := Decode([]byte(tc.data), "state.json", "")
			wantState, wantErr := reflectDecode(t, []byte(tc.data))
			if wantErr == nil {
				wantState, wantErr = Decode([]byte(tc.data), "state.json", "") // the checks after parsing
			}
			if (gotErr == nil) != (wantErr == nil) || gotErr != nil && gotErr.Error() != wantErr.Error() {
				t.Errorf("Decode error = %v\nencoding/json's = %v", gotErr, wantErr)
			}
			if !reflect.DeepEqual(gotState, wantState) {
				t.Errorf("Decode = %s\nencoding/json's = %s", dump(gotState), dump(wantState))
			}
		})
	}
}

// FuzzDecodeFast checks the promise decodeFast makes: whenever it does not
// give up, encoding/json decodes the same State.
func FuzzDecodeFast(f *testing.F) {
	golden, err := os.ReadFile(filepath.Join("testdata", "full.state.json"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(golden)
	f.Add([]byte(`{` + header + `, "pools": {"pool.a": {"spec": {"flags": ["\ud83d\ude00", "\u00e9"], "provider": {"a": [1, {"b": null}]}}, "replicas": [{"id": "r0"}, null]}}}`))
	f.Add([]byte(`{` + header + `, "serial": 18446744073709551615, "pools": null}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, ok := decodeFast(data)
		if !ok {
			return
		}
		want, err := reflectDecode(t, data)
		if err != nil {
			t.Fatalf("decodeFast accepted what encoding/json refuses (%v):\n%q", err, data)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("decodeFast = %s\nencoding/json = %s\ninput %q", dump(got), dump(want), data)
		}
	})
}
