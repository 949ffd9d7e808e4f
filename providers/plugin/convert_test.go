package plugin

import (
	"strings"
	"testing"

	"github.com/zclconf/go-cty/cty"

	"github.com/llorch/llorch/providers"
	"github.com/llorch/llorch/providers/proto"
)

func TestValueRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		in   cty.Value
		want cty.Value
	}{
		{name: "string", in: cty.StringVal("hello"), want: cty.StringVal("hello")},
		{name: "integer", in: cty.NumberIntVal(99), want: cty.NumberIntVal(99)},
		{name: "decimal written in config", in: cty.MustParseNumberVal("0.9"), want: cty.MustParseNumberVal("0.9")},
		{name: "bool", in: cty.True, want: cty.True},
		{name: "list of numbers", in: cty.ListVal([]cty.Value{cty.NumberIntVal(1), cty.NumberIntVal(2)}),
			want: cty.ListVal([]cty.Value{cty.NumberIntVal(1), cty.NumberIntVal(2)})},
		{name: "empty list keeps its element type", in: cty.ListValEmpty(cty.String), want: cty.ListValEmpty(cty.String)},
		{name: "set", in: cty.SetVal([]cty.Value{cty.StringVal("a")}), want: cty.SetVal([]cty.Value{cty.StringVal("a")})},
		{name: "map", in: cty.MapVal(map[string]cty.Value{"K": cty.StringVal("v")}),
			want: cty.MapVal(map[string]cty.Value{"K": cty.StringVal("v")})},
		{name: "tuple", in: cty.TupleVal([]cty.Value{cty.StringVal("a"), cty.NumberIntVal(1)}),
			want: cty.TupleVal([]cty.Value{cty.StringVal("a"), cty.NumberIntVal(1)})},
		{name: "null object keeps its type",
			in:   cty.NullVal(cty.Object(map[string]cty.Type{"binary": cty.String})),
			want: cty.NullVal(cty.Object(map[string]cty.Type{"binary": cty.String}))},
		{name: "object with null attribute",
			in:   cty.ObjectVal(map[string]cty.Value{"a": cty.NullVal(cty.Number), "b": cty.StringVal("x")}),
			want: cty.ObjectVal(map[string]cty.Value{"a": cty.NullVal(cty.Number), "b": cty.StringVal("x")})},
		{name: "sensitive value arrives intact without its mark",
			in:   cty.ObjectVal(map[string]cty.Value{"api_key": cty.StringVal("s3cr3t-key").Mark("sensitive")}),
			want: cty.ObjectVal(map[string]cty.Value{"api_key": cty.StringVal("s3cr3t-key")})},
		{name: "no value", in: cty.NilVal, want: cty.NilVal},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dv, err := encodeValue(tc.in)
			if err != nil {
				t.Fatalf("encodeValue: %v", err)
			}
			got, err := decodeValue(dv)
			if err != nil {
				t.Fatalf("decodeValue: %v", err)
			}
			if tc.want == cty.NilVal {
				if got != cty.NilVal {
					t.Fatalf("got %#v, want cty.NilVal", got)
				}
				return
			}
			if !got.RawEquals(tc.want) {
				t.Errorf("got %#v, want %#v", got, tc.want)
			}
		})
	}
}

func TestValueEncodingErrors(t *testing.T) {
	_, err := encodeValue(cty.ObjectVal(map[string]cty.Value{"a": cty.UnknownVal(cty.String)}))
	if err == nil || err.Error() != "the value is not fully known" {
		t.Errorf("unknown value: got error %v, want %q", err, "the value is not fully known")
	}

	tests := []struct {
		name string
		in   *proto.DynamicValue
		want string
	}{
		{name: "type is not JSON", in: &proto.DynamicValue{Json: []byte(`"x"`), TypeJson: []byte(`{`)},
			want: "decoding value type: "},
		{name: "value does not match its type", in: &proto.DynamicValue{Json: []byte(`"x"`), TypeJson: []byte(`"bool"`)},
			want: "decoding bool value: "},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := decodeValue(tc.in)
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("got error %v, want one starting %q", err, tc.want)
			}
		})
	}
}

func TestPathRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		in   cty.Path
	}{
		{name: "empty path is the whole pool", in: nil},
		{name: "attribute", in: cty.GetAttrPath("api_key")},
		{name: "nested attribute", in: cty.GetAttrPath("model").GetAttr("ref")},
		{name: "list index", in: cty.GetAttrPath("flags").IndexInt(3)},
		{name: "map key", in: cty.GetAttrPath("env").IndexString("HF_TOKEN")},
		{name: "block list then attribute", in: cty.GetAttrPath("mirror").IndexInt(0).GetAttr("url")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := decodePath(encodePath(tc.in))
			if !got.Equals(tc.in) {
				t.Errorf("got %#v, want %#v", got, tc.in)
			}
		})
	}
}

func TestPoolSpecDevicesNilEmptyAndSetAreKept(t *testing.T) {
	tests := []struct {
		name    string
		devices []int
	}{
		{name: "unset means engine default", devices: nil},
		{name: "empty means CPU only", devices: []int{}},
		{name: "indices", devices: []int{0, 2}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := decodePool(encodePool(providers.PoolSpec{Devices: tc.devices}))
			if (got.Devices == nil) != (tc.devices == nil) || len(got.Devices) != len(tc.devices) {
				t.Fatalf("devices: got %#v, want %#v", got.Devices, tc.devices)
			}
			for i := range tc.devices {
				if got.Devices[i] != tc.devices[i] {
					t.Errorf("devices[%d]: got %d, want %d", i, got.Devices[i], tc.devices[i])
				}
			}
			if got.CPUOnly() != (tc.devices != nil && len(tc.devices) == 0) {
				t.Errorf("CPUOnly() = %v after the round trip", got.CPUOnly())
			}
		})
	}
}

func TestSchemaEncodingErrors(t *testing.T) {
	tests := []struct {
		name   string
		schema *providers.Schema
		want   string
	}{
		{
			name: "attribute without a type",
			schema: &providers.Schema{Pool: &providers.Block{Attributes: map[string]*providers.Attribute{
				"threads": {Optional: true},
			}}},
			want: `pool block: attribute "threads" has no type`,
		},
		{
			name: "nil attribute",
			schema: &providers.Schema{Provider: &providers.Block{Attributes: map[string]*providers.Attribute{
				"binary": nil,
			}}},
			want: `provider block: attribute "binary" has no definition`,
		},
		{
			name: "unknown nesting mode",
			schema: &providers.Schema{Provider: &providers.Block{Blocks: map[string]*providers.NestedBlock{
				"source": {Nesting: providers.Nesting(7)},
			}}},
			want: `provider block: block "source" has unknown nesting mode 7`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := encodeSchema(tc.schema)
			if err == nil || err.Error() != tc.want {
				t.Errorf("got error %v, want %q", err, tc.want)
			}
		})
	}
}

func TestSchemaDecodingErrors(t *testing.T) {
	tests := []struct {
		name   string
		schema *proto.Schema
		want   string
	}{
		{
			name: "attribute type is not a cty type",
			schema: &proto.Schema{Pool: &proto.Schema_Block{Attributes: []*proto.Schema_Attribute{
				{Name: "threads", Type: []byte(`"integer"`)},
			}}},
			want: `pool block: attribute "threads": decoding type: `,
		},
		{
			name: "nested block without nesting mode",
			schema: &proto.Schema{Provider: &proto.Schema_Block{BlockTypes: []*proto.Schema_NestedBlock{
				{TypeName: "source"},
			}}},
			want: `provider block: block "source" has unknown nesting mode NESTING_UNSPECIFIED`,
		},
		{
			name: "attribute without a name",
			schema: &proto.Schema{Provider: &proto.Schema_Block{Attributes: []*proto.Schema_Attribute{
				{Type: []byte(`"string"`)},
			}}},
			want: `provider block: an attribute has no name`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := decodeSchema(tc.schema)
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("got error %v, want one starting %q", err, tc.want)
			}
		})
	}
}

func TestUnknownDiagnosticSeverityIsAnError(t *testing.T) {
	got := decodeDiagnostics([]*proto.Diagnostic{{Severity: proto.Diagnostic_Severity(9), Summary: "From the future"}})
	if !got.HasErrors() {
		t.Errorf("a diagnostic of unknown severity was not treated as an error: %#v", got)
	}
}
