package config

import (
	"reflect"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

func TestSchemaIndexContentIsHCLsContent(t *testing.T) {
	schema := &hcl.BodySchema{
		Attributes: []hcl.AttributeSchema{{Name: "engine", Required: true}, {Name: "port"}, {Name: "devices"}},
		Blocks:     []hcl.BlockHeaderSchema{{Type: "model"}, {Type: "llamacpp"}, {Type: "labelled", LabelNames: []string{"name"}}},
	}
	si := indexSchema(schema)
	for name, src := range map[string]string{
		"fits":                 "engine = \"llamacpp\"\nport = 8080\nmodel {\n  ref = \"x\"\n}\nllamacpp {}\n",
		"only required":        "engine = \"x\"\n",
		"two blocks of a type": "engine = \"x\"\nmodel {}\nmodel {}\n",
		"labelled block":       "engine = \"x\"\nlabelled \"a\" {}\n",
		"empty":                "",
		"unknown argument":     "engine = \"x\"\nprot = 1\n",
		"missing required":     "port = 1\n",
		"unknown block":        "engine = \"x\"\nmodle {}\n",
		"extra label":          "engine = \"x\"\nmodel \"a\" {}\n",
		"missing label":        "engine = \"x\"\nlabelled {}\n",
		"block for argument":   "engine = \"x\"\nport {}\n",
	} {
		f, diags := hclsyntax.ParseConfig([]byte(src), "t.hcl", hcl.InitialPos)
		if diags.HasErrors() {
			t.Fatalf("%s: %s", name, diags.Error())
		}
		want, wantDiags := f.Body.Content(schema)
		got, gotDiags := si.content(f.Body)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: content = %#v\nHCL's Content = %#v", name, got, want)
		}
		if !reflect.DeepEqual(gotDiags, wantDiags) {
			t.Errorf("%s: diagnostics = %v\nHCL's = %v", name, gotDiags, wantDiags)
		}
	}
}
