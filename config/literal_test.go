package config

import (
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

func TestValidIdentifierAgreesWithHCL(t *testing.T) {
	for _, s := range []string{
		"p0000", "gpu_pool", "_x", "a-b", "A9", "", "0pool", "-a", "a b", "a.b", "a/b",
		"a\n", "caf\u00e9", "\u00e9t\u00e9", "x\u0301", "\u0661", "a\u2028", "a\x00", "_", "a--",
	} {
		if got, want := validIdentifier(s), hclsyntax.ValidIdentifier(s); got != want {
			t.Errorf("validIdentifier(%q) = %v; hclsyntax.ValidIdentifier says %v", s, got, want)
		}
	}
}

func FuzzValidIdentifier(f *testing.F) {
	for _, s := range []string{"p0000", "a-b", "0a", "caf\u00e9", "", "a b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := validIdentifier(s), hclsyntax.ValidIdentifier(s); got != want {
			t.Errorf("validIdentifier(%q) = %v; hclsyntax.ValidIdentifier says %v", s, got, want)
		}
	})
}

func TestQuotedLiteralIsWhatTheTemplateEvaluatesTo(t *testing.T) {
	for src, literal := range map[string]bool{
		`"llamacpp"`:            true,
		`""`:                    true,
		`"cafe\u0301"`:          true, // NFC-normalised by the parser, as by Value
		`"$${not.a.ref}"`:       true,
		`"a\nb"`:                true,
		`"x-${var.name}"`:       false,
		`"%{if true}x%{endif}"`: false,
		`"${"wrapped"}"`:        false,
		`42`:                    false,
	} {
		expr, diags := hclsyntax.ParseExpression([]byte(src), "test.hcl", hcl.InitialPos)
		if diags.HasErrors() {
			t.Fatalf("%s: %s", src, diags.Error())
		}
		got, ok := quotedLiteral(expr)
		if ok != literal {
			t.Errorf("quotedLiteral(%s) ok = %v; want %v", src, ok, literal)
			continue
		}
		if !ok {
			continue
		}
		want, diags := expr.Value(&hcl.EvalContext{Variables: map[string]cty.Value{}})
		if diags.HasErrors() || !got.RawEquals(want) {
			t.Errorf("quotedLiteral(%s) = %#v; Value gives %#v (%v)", src, got, want, diags)
		}
	}
}
