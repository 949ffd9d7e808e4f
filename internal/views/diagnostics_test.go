package views

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// The -update flag is shared by every golden test in this package; it is
// registered once by whichever test file initialises first.
func init() {
	if flag.Lookup("update") == nil {
		flag.Bool("update", false, "update .golden files")
	}
}

func updateGoldens() bool {
	f := flag.Lookup("update")
	return f != nil && f.Value.String() == "true"
}

const mainSrc = `variable "models" {
  default = "/srv/models"
}

pool "chat" {
  engine   = "llamacpp"
  replicas = 2
  model { ref = "file:${var.models}/q.gguf" }

  health {
    path     = "/health"
    interval = "10 sec"
  }
  labels = {
    team = "search"
    tier = 1
  }
}
`

// tabSrc is indented with tabs, which the caret line must keep.
const tabSrc = "pool \"tabbed\" {\n\tengine = \"llamacp\"\n}\n"

// parseFile parses src as name, failing the test on syntax errors.
func parseFile(t testing.TB, name, src string) *hcl.File {
	t.Helper()
	f, diags := hclsyntax.ParseConfig([]byte(src), name, hcl.InitialPos)
	if diags.HasErrors() {
		t.Fatalf("parsing %s: %s", name, diags)
	}
	return f
}

// rangeOf is the range of the nth (from 0) occurrence of text in src.
func rangeOf(t *testing.T, name, src, text string, nth int) *hcl.Range {
	t.Helper()
	off := -1
	for i := 0; i <= nth; i++ {
		next := strings.Index(src[off+1:], text)
		if next < 0 {
			t.Fatalf("%q occurs fewer than %d times", text, nth+1)
		}
		off += 1 + next
	}
	return &hcl.Range{Filename: name, Start: posAt(src, off), End: posAt(src, off+len(text))}
}

// rangeAfter is the range of text where it directly follows prefix.
func rangeAfter(t *testing.T, name, src, prefix, text string) *hcl.Range {
	t.Helper()
	off := strings.Index(src, prefix+text)
	if off < 0 {
		t.Fatalf("%q does not occur", prefix+text)
	}
	off += len(prefix)
	return &hcl.Range{Filename: name, Start: posAt(src, off), End: posAt(src, off+len(text))}
}

func posAt(src string, off int) hcl.Pos {
	line := 1 + strings.Count(src[:off], "\n")
	lineStart := strings.LastIndex(src[:off], "\n") + 1
	return hcl.Pos{Line: line, Column: 1 + utf8.RuneCountInString(src[lineStart:off]), Byte: off}
}

func TestWriteDiagnostics(t *testing.T) {
	files := map[string]*hcl.File{
		"main.llorch.hcl":           parseFile(t, "main.llorch.hcl", mainSrc),
		"/work/cfg/main.llorch.hcl": parseFile(t, "/work/cfg/main.llorch.hcl", mainSrc),
		"tabs.llorch.hcl":           parseFile(t, "tabs.llorch.hcl", tabSrc),
	}
	durationRange := rangeOf(t, "main.llorch.hcl", mainSrc, `"10 sec"`, 0)
	durationDiag := &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  "Invalid duration",
		Detail:   `"10 sec" is not a duration; use a number and a unit, like "30s" or "5m".`,
		Subject:  durationRange,
	}
	labelsObject := rangeOf(t, "main.llorch.hcl", mainSrc, "{\n    team = \"search\"\n    tier = 1\n  }", 0)
	tierValue := rangeAfter(t, "main.llorch.hcl", mainSrc, "tier = ", "1")
	poolBrace := rangeOf(t, "main.llorch.hcl", mainSrc, "{", 1)
	poolBrace.End = poolBrace.Start // a zero-width "missing item" range

	tests := []struct {
		name  string
		diags hcl.Diagnostics
		opts  DiagOptions
	}{
		{
			name:  "error_with_subject",
			diags: hcl.Diagnostics{durationDiag},
		},
		{
			name:  "error_with_subject_color",
			diags: hcl.Diagnostics{durationDiag},
			opts:  DiagOptions{Color: true},
		},
		{
			name: "warning",
			diags: hcl.Diagnostics{{
				Severity: hcl.DiagWarning,
				Summary:  "Model may not fit",
				Detail:   "The model needs 9.1 GiB and device 0 has 8 GiB free.",
				Subject:  rangeOf(t, "main.llorch.hcl", mainSrc, `"file:${var.models}/q.gguf"`, 0),
			}},
		},
		{
			name:  "warning_color",
			diags: hcl.Diagnostics{{Severity: hcl.DiagWarning, Summary: "Deprecated flag", Detail: "Use --n-gpu-layers."}},
			opts:  DiagOptions{Color: true},
		},
		{
			name: "no_subject",
			diags: hcl.Diagnostics{{
				Severity: hcl.DiagError,
				Summary:  "Value for undeclared variable",
				Detail:   `A variable named "modles" was assigned on the command line, but no variable "modles" {} block declares it.`,
			}},
		},
		{
			name:  "summary_only",
			diags: hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Saved plan is stale"}},
		},
		{
			name: "multi_line_subject",
			diags: hcl.Diagnostics{{
				Severity: hcl.DiagError,
				Summary:  "Incorrect attribute value type",
				Detail:   `Inappropriate value for attribute "labels": element "tier": string required.`,
				Subject:  labelsObject,
			}},
		},
		{
			name: "context_around_subject",
			diags: hcl.Diagnostics{{
				Severity: hcl.DiagError,
				Summary:  "Incorrect attribute value type",
				Detail:   `Inappropriate value for attribute "labels": element "tier": string required.`,
				Subject:  tierValue,
				Context:  labelsObject,
			}},
		},
		{
			name: "zero_width_subject",
			diags: hcl.Diagnostics{{
				Severity: hcl.DiagError,
				Summary:  "Missing model block",
				Detail:   "A pool needs a model block saying which model to serve.",
				Subject:  poolBrace,
			}},
		},
		{
			name: "subject_at_end_of_line",
			diags: hcl.Diagnostics{{
				Severity: hcl.DiagError,
				Summary:  "Missing newline after block definition",
				Detail:   "A block definition must end with a newline.",
				Subject: &hcl.Range{Filename: "main.llorch.hcl",
					Start: posAt(mainSrc, strings.Index(mainSrc, "\n  engine")),
					End:   posAt(mainSrc, strings.Index(mainSrc, "\n  engine"))},
			}},
		},
		{
			name: "source_not_available",
			diags: hcl.Diagnostics{{
				Severity: hcl.DiagError,
				Summary:  "Invalid value for input variable",
				Detail:   "The value is not valid.",
				Subject:  &hcl.Range{Filename: "<value for var.n>", Start: hcl.Pos{Line: 1, Column: 3, Byte: 2}, End: hcl.Pos{Line: 1, Column: 4, Byte: 3}},
			}},
		},
		{
			name: "detail_wrapped_at_width",
			diags: hcl.Diagnostics{{
				Severity: hcl.DiagError,
				Summary:  "Unknown engine",
				Detail:   `There is no engine named "llamacp". Did you mean "llamacpp"? The known engines are "llamacpp" and "vllm".` + "\n\nA third-party engine needs its provider plugin.",
				Subject:  rangeOf(t, "tabs.llorch.hcl", tabSrc, `"llamacp"`, 0),
			}},
			opts: DiagOptions{Width: 40},
		},
		{
			name: "file_names_relative_to_base_dir",
			diags: hcl.Diagnostics{{
				Severity: hcl.DiagError,
				Summary:  "Invalid duration",
				Detail:   `"10 sec" is not a duration; use a number and a unit, like "30s" or "5m".`,
				Subject:  rangeOf(t, "/work/cfg/main.llorch.hcl", mainSrc, `"10 sec"`, 0),
			}},
			opts: DiagOptions{BaseDir: "/work/cfg"},
		},
		{
			name: "file_outside_base_dir_keeps_its_name",
			diags: hcl.Diagnostics{{
				Severity: hcl.DiagError,
				Summary:  "Invalid duration",
				Detail:   `"10 sec" is not a duration; use a number and a unit, like "30s" or "5m".`,
				Subject:  rangeOf(t, "/work/cfg/main.llorch.hcl", mainSrc, `"10 sec"`, 0),
			}},
			opts: DiagOptions{BaseDir: "/work/other"},
		},
		{
			name: "several_diagnostics",
			diags: hcl.Diagnostics{
				durationDiag,
				{
					Severity: hcl.DiagError,
					Summary:  "Unknown engine",
					Detail:   `There is no engine named "llamacp". Did you mean "llamacpp"?`,
					Subject:  rangeOf(t, "tabs.llorch.hcl", tabSrc, `"llamacp"`, 0),
				},
				{Severity: hcl.DiagWarning, Summary: "Provider block not used", Detail: `No pool uses the "vllm" engine.`},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := WriteDiagnostics(&buf, tc.diags, files, tc.opts); err != nil {
				t.Fatal(err)
			}
			checkGolden(t, filepath.Join("testdata", "diagnostics_"+tc.name+".golden"), buf.Bytes())
		})
	}
}

func TestWriteDiagnosticsMatchesTheDocumentedLayout(t *testing.T) {
	src := "pool \"chat\" {\n  health {\n    interval = \"10 sec\"\n  }\n}\n"
	files := map[string]*hcl.File{"main.llorch.hcl": parseFile(t, "main.llorch.hcl", src)}
	var buf bytes.Buffer
	err := WriteDiagnostics(&buf, hcl.Diagnostics{{
		Severity: hcl.DiagError,
		Summary:  "Invalid duration",
		Detail:   `"10 sec" is not a duration; use a number and a unit, like "30s" or "5m".`,
		Subject:  rangeOf(t, "main.llorch.hcl", src, `"10 sec"`, 0),
	}}, files, DiagOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := `Error: Invalid duration

  on main.llorch.hcl:3:16, in pool "chat":
   3:     interval = "10 sec"
                     ^^^^^^^^

"10 sec" is not a duration; use a number and a unit, like "30s" or "5m".

`
	if buf.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", buf.String(), want)
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestWriteDiagnosticsReportsWriteErrors(t *testing.T) {
	err := WriteDiagnostics(failingWriter{}, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "X"}}, nil, DiagOptions{})
	if err == nil || err.Error() != "writing diagnostics: disk full" {
		t.Errorf("error = %v, want %q", err, "writing diagnostics: disk full")
	}
}

func TestDiagnosticsJSON(t *testing.T) {
	files := map[string]*hcl.File{"main.llorch.hcl": parseFile(t, "main.llorch.hcl", mainSrc)}
	diags := hcl.Diagnostics{
		{
			Severity: hcl.DiagError,
			Summary:  "Invalid duration",
			Detail:   `"10 sec" is not a duration; use a number and a unit, like "30s" or "5m".`,
			Subject:  rangeOf(t, "main.llorch.hcl", mainSrc, `"10 sec"`, 0),
		},
		{
			Severity: hcl.DiagError,
			Summary:  "Incorrect attribute value type",
			Detail:   `Inappropriate value for attribute "labels": element "tier": string required.`,
			Subject:  rangeAfter(t, "main.llorch.hcl", mainSrc, "tier = ", "1"),
			Context:  rangeOf(t, "main.llorch.hcl", mainSrc, "{\n    team = \"search\"\n    tier = 1\n  }", 0),
		},
		{
			Severity: hcl.DiagWarning,
			Summary:  "Missing source",
			Detail:   "The file is gone.",
			Subject:  &hcl.Range{Filename: "gone.llorch.hcl", Start: hcl.Pos{Line: 2, Column: 1, Byte: 10}, End: hcl.Pos{Line: 2, Column: 5, Byte: 14}},
		},
		{Severity: hcl.DiagError, Summary: "No subject", Detail: "Nothing to point at."},
	}
	got, err := json.MarshalIndent(DiagnosticsJSON(diags, files), "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	checkGolden(t, filepath.Join("testdata", "diagnostics_json.golden"), append(got, '\n'))

	// The highlight offsets must select exactly the subject's text.
	out := DiagnosticsJSON(diags[:2], files)
	for i, want := range []string{`"10 sec"`, "1"} {
		s := out[i].Snippet
		if got := s.Code[s.HighlightStartOffset:s.HighlightEndOffset]; got != want {
			t.Errorf("diagnostic %d: highlight selects %q, want %q", i, got, want)
		}
	}
}

// checkGolden compares got with the golden file, or rewrites the file
// under -update.
func checkGolden(t *testing.T, path string, got []byte) {
	t.Helper()
	if updateGoldens() {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading golden file (run go test -update to create it): %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("output differs from %s (run go test -update to accept):\n--- got ---\n%s\n--- want ---\n%s", path, got, want)
	}
}

// BenchmarkWriteDiagnostics renders one diagnostic per pool of a large
// file (1000 pools all missing their binary, say): the cost must grow with
// the number of diagnostics, not with diagnostics × file size.
func BenchmarkWriteDiagnostics(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		var src strings.Builder
		var diags hcl.Diagnostics
		for i := range n {
			line := 1 + 4*i
			start := src.Len()
			fmt.Fprintf(&src, "pool \"p%d\" {\n  engine = \"llamacpp\"\n  port   = %d\n}\n", i, 10000+i)
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError, Summary: "Engine binary not found", Detail: "llama-server is not on PATH.",
				Subject: &hcl.Range{Filename: "main.llorch.hcl",
					Start: hcl.Pos{Line: line, Column: 1, Byte: start}, End: hcl.Pos{Line: line, Column: 5, Byte: start + 4}},
			})
		}
		files := map[string]*hcl.File{"main.llorch.hcl": parseFile(b, "main.llorch.hcl", src.String())}
		b.Run(fmt.Sprintf("diags=%d", n), func(b *testing.B) {
			for b.Loop() {
				if err := WriteDiagnostics(io.Discard, diags, files, DiagOptions{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
