package plan

import (
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

func TestBodyPathRange(t *testing.T) {
	src := `a = 1
m = { k = "v", "x y" = 2 }
mount {
  path = "/one"
}
mount {
  path = "/two"
}
`
	f, diags := hclsyntax.ParseConfig([]byte(src), "b.hcl", hcl.InitialPos)
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	tests := []struct {
		name   string
		path   cty.Path
		want   string
		wantOK bool
	}{
		{"attribute", cty.GetAttrPath("a"), "1:5", true},
		{"object key", cty.GetAttrPath("m").GetAttr("k"), "2:11", true},
		{"object key by index", cty.GetAttrPath("m").Index(cty.StringVal("x y")), "2:24", true},
		{"unknown object key", cty.GetAttrPath("m").GetAttr("nope"), "2:5", true},
		{"second block of a list", cty.GetAttrPath("mount").IndexInt(1).GetAttr("path"), "7:10", true},
		{"block without index", cty.GetAttrPath("mount").GetAttr("path"), "4:10", true},
		{"block index out of range", cty.GetAttrPath("mount").IndexInt(5), "3:1", true},
		{"missing attribute in a block", cty.GetAttrPath("mount").IndexInt(0).GetAttr("size"), "3:1", true},
		{"absent", cty.GetAttrPath("nope"), "", false},
		{"empty path", nil, "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, ok := bodyPathRange(f.Body, tc.path)
			if ok != tc.wantOK {
				t.Fatalf("ok = %v", ok)
			}
			if ok && where(&r)[len("b.hcl:"):] != tc.want {
				t.Errorf("range = %s, want %s", where(&r), tc.want)
			}
		})
	}
}

func TestScrubReplacesLongestSecretFirst(t *testing.T) {
	got := scrub("token sk-abcdef and abcdef and abc", []string{"abcdef", "sk-abcdef", "abc"})
	if got != "token (sensitive value) and (sensitive value) and abc" {
		t.Fatalf("scrub = %q", got)
	}
}
