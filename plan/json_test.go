package plan

import (
	"bytes"
	"encoding/json"
	"testing"
)

var objectSamples = []string{
	`{}`,
	`{ }`,
	`{"a":1}`,
	`{"b":1,"a":2}`,
	`{"a":{"b":{"c":[1,2,{"d":"}"}]}},"e":null}`,
	`{"s":"a,b}c]\"d\\","t":true}`,
	"{\n  \"api_key\": \"sha256:00\",\n  \"n\": 99,\n  \"src\": {\n    \"ref\": \"b1\"\n  }\n}",
	`{"k\"ey":1}`,
	`{"a":[],"b":[[]],"c":{}}`,
	`{"a":1.5e3,"b":-0}`,
}

func TestObjectMembersAgreesWithEncodingJSON(t *testing.T) {
	for _, s := range objectSamples {
		checkMembers(t, []byte(s))
	}
	for _, notObject := range []string{`[]`, `"x"`, `null`, `1`} {
		if _, ok := objectMembers(json.RawMessage(notObject)); ok {
			t.Errorf("objectMembers(%s) took a non-object for an object", notObject)
		}
	}
}

func checkMembers(t *testing.T, b []byte) {
	t.Helper()
	want, wantOK := slowMembers(b)
	got, ok := objectMembers(b)
	if ok != wantOK {
		t.Fatalf("objectMembers(%q) ok = %v, encoding/json says %v", b, ok, wantOK)
	}
	if len(got) != len(want) {
		t.Fatalf("objectMembers(%q) = %d members, want %d", b, len(got), len(want))
	}
	for i := range got {
		if got[i].key != want[i].key || !bytes.Equal(compactJSON(got[i].value), compactJSON(want[i].value)) {
			t.Fatalf("objectMembers(%q)[%d] = %q:%s, want %q:%s", b, i, got[i].key, got[i].value, want[i].key, want[i].value)
		}
	}
}

func FuzzObjectMembers(f *testing.F) {
	for _, s := range objectSamples {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var v map[string]any
		if json.Unmarshal([]byte(s), &v) != nil || v == nil {
			return // only objects are ever flattened
		}
		checkMembers(t, []byte(s))
	})
}
