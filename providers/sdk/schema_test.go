package sdk

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/zclconf/go-cty/cty"

	"github.com/llorch/llorch/providers"
)

func TestAttr(t *testing.T) {
	tests := []struct {
		name  string
		flags []Flag
		want  providers.Attribute
	}{
		{name: "optional by default", want: providers.Attribute{Optional: true}},
		{name: "required", flags: []Flag{Required}, want: providers.Attribute{Required: true}},
		{name: "sensitive and forcing", flags: []Flag{Sensitive, ForcesReplacement},
			want: providers.Attribute{Optional: true, Sensitive: true, ForcesReplacement: true}},
		{name: "flags combine with |", flags: []Flag{Required | Sensitive},
			want: providers.Attribute{Required: true, Sensitive: true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Attr(cty.Number, "desc", tc.flags...)
			tc.want.Type, tc.want.Description = cty.Number, "desc"
			if diff := cmp.Diff(&tc.want, got, cmp.Comparer(func(a, b cty.Type) bool { return a.Equals(b) })); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestGetters(t *testing.T) {
	obj := cty.ObjectVal(map[string]cty.Value{
		"binary":   cty.StringVal("vllm"),
		"secret":   cty.StringVal("k").Mark("sensitive"),
		"unset":    cty.NullVal(cty.String),
		"tp":       cty.NumberIntVal(2),
		"util":     cty.MustParseNumberVal("0.85"),
		"half":     cty.MustParseNumberVal("1.5"),
		"huge":     cty.MustParseNumberVal("1e30"),
		"unknown":  cty.UnknownVal(cty.String),
		"wrongish": cty.True,
	})

	strs := []struct {
		obj    cty.Value
		name   string
		want   string
		wantOK bool
	}{
		{obj, "binary", "vllm", true},
		{obj, "secret", "k", true},
		{obj, "unset", "", false},
		{obj, "unknown", "", false},
		{obj, "no_such_attribute", "", false},
		{obj, "wrongish", "", false},
		{cty.NullVal(obj.Type()), "binary", "", false},
		{cty.NilVal, "binary", "", false},
	}
	for _, tc := range strs {
		got, ok := GetString(tc.obj, tc.name)
		if got != tc.want || ok != tc.wantOK {
			t.Errorf("GetString(%s) = %q, %v; want %q, %v", tc.name, got, ok, tc.want, tc.wantOK)
		}
	}

	if f, ok := GetFloat(obj, "util"); !ok || f != 0.85 {
		t.Errorf("GetFloat(util) = %v, %v", f, ok)
	}
	if _, ok := GetFloat(obj, "unset"); ok {
		t.Error("GetFloat(unset) reported a value")
	}

	ints := []struct {
		name    string
		want    int
		wantSet bool
		wantErr string
	}{
		{name: "tp", want: 2, wantSet: true},
		{name: "unset"},
		{name: "half", wantSet: true, wantErr: "half must be a whole number, not 1.5"},
		{name: "huge", wantSet: true, wantErr: "huge is too large: 1e+30"},
	}
	for _, tc := range ints {
		got, set, err := GetInt(obj, tc.name)
		gotErr := ""
		if err != nil {
			gotErr = err.Error()
		}
		if got != tc.want || set != tc.wantSet || gotErr != tc.wantErr {
			t.Errorf("GetInt(%s) = %d, %v, %q; want %d, %v, %q", tc.name, got, set, gotErr, tc.want, tc.wantSet, tc.wantErr)
		}
	}
}
