package views

import (
	"bytes"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
)

// A diagnostic about a block's header names no enclosing block: the block
// it points at is the problem, not its context.
func TestDiagnosticContextLeavesOutTheBlockItself(t *testing.T) {
	src := "pool \"chat\" {\n  engine = \"llamacpp\"\n}\n\npol \"x\" {\n}\n"
	files := map[string]*hcl.File{"main.llorch.hcl": parseFile(t, "main.llorch.hcl", src)}
	tests := []struct {
		name    string
		subject *hcl.Range
		want    string
	}{
		{"header of the first block", rangeOf(t, "main.llorch.hcl", src, `pool "chat"`, 0), "  on main.llorch.hcl:1:1:\n"},
		{"header of a later block", rangeOf(t, "main.llorch.hcl", src, "pol", 0), "  on main.llorch.hcl:5:1:\n"},
		{"attribute inside a block", rangeOf(t, "main.llorch.hcl", src, "engine", 0), "  on main.llorch.hcl:2:3, in pool \"chat\":\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "S", Detail: "D.", Subject: tc.subject}
			var buf bytes.Buffer
			if err := WriteDiagnostics(&buf, hcl.Diagnostics{d}, files, DiagOptions{}); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(buf.String(), tc.want) {
				t.Errorf("text output:\n%s\nwant a line %q", buf.String(), tc.want)
			}
			js := DiagnosticsJSON(hcl.Diagnostics{d}, files)[0].Snippet
			inBlock := strings.Contains(tc.want, ", in ")
			if (js.Context != nil) != inBlock {
				t.Errorf("JSON snippet context = %v, want one: %v", js.Context, inBlock)
			}
		})
	}
}

func TestDiagnosticsJSONInNamesFilesRelativeToTheBaseDir(t *testing.T) {
	src := "pool \"chat\" {\n  engine = 1\n}\n"
	tests := []struct {
		name, file, base, want string
	}{
		{"inside the base dir", "/work/cfg/main.llorch.hcl", "/work/cfg", "main.llorch.hcl"},
		{"in a subdirectory", "/work/cfg/sub/main.llorch.hcl", "/work/cfg", "sub/main.llorch.hcl"},
		{"outside the base dir", "/elsewhere/main.llorch.hcl", "/work/cfg", "/elsewhere/main.llorch.hcl"},
		{"no base dir", "/work/cfg/main.llorch.hcl", "", "/work/cfg/main.llorch.hcl"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			files := map[string]*hcl.File{tc.file: parseFile(t, tc.file, src)}
			d := &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "S", Subject: rangeOf(t, tc.file, src, "1", 0)}
			out := DiagnosticsJSONIn(hcl.Diagnostics{d}, files, tc.base)
			if got := out[0].Range.Filename; got != tc.want {
				t.Errorf("filename = %q, want %q", got, tc.want)
			}
			if out[0].Snippet == nil || out[0].Snippet.Code != "  engine = 1" {
				t.Errorf("snippet = %+v, want the source line", out[0].Snippet)
			}
		})
	}
}
