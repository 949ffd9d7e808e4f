package views

import (
	"bytes"
	"testing"

	"github.com/zclconf/go-cty/cty"

	"github.com/llorch/llorch/providers"
)

func TestWriteSchemaListsEveryAttributeWithItsFlags(t *testing.T) {
	s := &providers.Schema{
		Provider: &providers.Block{Attributes: map[string]*providers.Attribute{
			"binary": {Type: cty.String, Optional: true, Description: "a path, or a name on PATH"},
		}, Blocks: map[string]*providers.NestedBlock{
			"source": {Block: providers.Block{Attributes: map[string]*providers.Attribute{
				"git": {Type: cty.String, Required: true},
			}}},
		}},
		Pool: &providers.Block{Attributes: map[string]*providers.Attribute{
			"api_key":      {Type: cty.String, Optional: true, Sensitive: true, ForcesReplacement: true},
			"tensor_split": {Type: cty.List(cty.Number), Optional: true},
		}},
	}
	var b bytes.Buffer
	WriteSchema(&b, s)
	want := `  provider block:
    binary                   string         optional  # a path, or a name on PATH
    source {}:
      git                      string         required
  pool block:
    api_key                  string         optional, sensitive, forces replacement
    tensor_split             list of number optional
`
	if b.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", b.String(), want)
	}
	b.Reset()
	WriteSchema(&b, nil)
	if b.Len() != 0 {
		t.Errorf("a nil schema printed %q", b.String())
	}
}
