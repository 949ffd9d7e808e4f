package views

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"unicode/utf8"

	"github.com/hashicorp/hcl/v2"
	wordwrap "github.com/mitchellh/go-wordwrap"
)

// DiagOptions say how WriteDiagnostics renders.
type DiagOptions struct {
	// Color turns on ANSI colors: red bold "Error", yellow bold "Warning",
	// and the subject underlined instead of marked with carets.
	Color bool
	// Width wraps detail text at this many columns; 0 does not wrap.
	Width int
	// BaseDir, when set, makes file names inside it print relative to it.
	BaseDir string
}

const (
	ansiReset     = "\x1b[0m"
	ansiBold      = "\x1b[1m"
	ansiRedBold   = "\x1b[1;31m"
	ansiYellow    = "\x1b[1;33m"
	ansiUnderline = "\x1b[4m"
)

// WriteDiagnostics writes diags for people, in the layout of HCL's
// diagnostic text writer with two changes: the position names the column
// ("on main.llorch.hcl:12:21, in pool "chat":"), and without color a caret
// line marks the subject under the source line. files supplies the source
// for snippets, by file name as the ranges spell it.
func WriteDiagnostics(w io.Writer, diags hcl.Diagnostics, files map[string]*hcl.File, opts DiagOptions) error {
	var buf bytes.Buffer
	for _, d := range diags {
		if d == nil {
			continue
		}
		buf.Reset()
		writeDiagnostic(&buf, d, files, opts)
		if _, err := w.Write(buf.Bytes()); err != nil {
			return fmt.Errorf("writing diagnostics: %w", err)
		}
	}
	return nil
}

func writeDiagnostic(buf *bytes.Buffer, d *hcl.Diagnostic, files map[string]*hcl.File, opts DiagOptions) {
	severity, color := "Error", ansiRedBold
	if d.Severity == hcl.DiagWarning {
		severity, color = "Warning", ansiYellow
	}
	if opts.Color {
		fmt.Fprintf(buf, "%s%s:%s %s%s%s\n\n", color, severity, ansiReset, ansiBold, d.Summary, ansiReset)
	} else {
		fmt.Fprintf(buf, "%s: %s\n\n", severity, d.Summary)
	}
	if d.Subject != nil {
		writeSnippet(buf, d, files, opts)
	}
	if d.Detail != "" {
		detail := d.Detail
		if opts.Width > 0 {
			detail = wordwrap.WrapString(detail, uint(opts.Width))
		}
		fmt.Fprintf(buf, "%s\n\n", detail)
	}
}

// writeSnippet writes the "on FILE:LINE:COL" header and the source lines
// covering the subject (and the context range, when there is one).
func writeSnippet(buf *bytes.Buffer, d *hcl.Diagnostic, files map[string]*hcl.File, opts DiagOptions) {
	subject := *d.Subject
	name := displayName(subject.Filename, opts.BaseDir)
	file := files[subject.Filename]
	if file == nil || file.Bytes == nil {
		fmt.Fprintf(buf, "  on %s:%d:%d:\n  (source code not available)\n\n", name, subject.Start.Line, subject.Start.Column)
		return
	}
	where := ""
	if c := contextString(file, subject.Start.Byte-1); c != "" {
		where = ", in " + c
	}
	fmt.Fprintf(buf, "  on %s:%d:%d%s:\n", name, subject.Start.Line, subject.Start.Column, where)

	highlight, snip := snippetRanges(d)
	// A range widened from zero width at a line end reaches into the next
	// line, which has nothing to show.
	lastLine := snip.End.Line
	if d.Context == nil && d.Subject.Empty() {
		lastLine = snip.Start.Line
	}
	src := file.Bytes
	for _, line := range linesAround(src, snip) {
		if !line.Overlaps(snip) || line.Start.Line > lastLine {
			continue
		}
		lineBytes := line.SliceBytes(src)
		before, hl, after := line.PartitionAround(highlight)
		prefix := fmt.Sprintf("%4d: ", line.Start.Line)
		if hl.Empty() {
			fmt.Fprintf(buf, "%s%s\n", prefix, lineBytes)
			// A subject at the very end of a line (a missing item) still
			// gets a caret, just past the last character.
			if !opts.Color && line.Start.Line == highlight.Start.Line && highlight.Start.Byte >= line.End.Byte {
				fmt.Fprintf(buf, "%s^\n", caretIndent(prefix, lineBytes))
			}
			continue
		}
		beforeText, hlText, afterText := before.SliceBytes(src), hl.SliceBytes(src), after.SliceBytes(src)
		if opts.Color {
			fmt.Fprintf(buf, "%s%s%s%s%s%s\n", prefix, beforeText, ansiUnderline, hlText, ansiReset, afterText)
			continue
		}
		fmt.Fprintf(buf, "%s%s\n", prefix, lineBytes)
		// On continuation lines of a multi-line subject, start the carets
		// at the code rather than under the indentation.
		if line.Start.Line != highlight.Start.Line {
			trimmed := bytes.TrimLeft(hlText, " \t")
			beforeText = append(append([]byte(nil), beforeText...), hlText[:len(hlText)-len(trimmed)]...)
			hlText = trimmed
		}
		if n := utf8.RuneCount(hlText); n > 0 {
			fmt.Fprintf(buf, "%s%s\n", caretIndent(prefix, beforeText), strings.Repeat("^", n))
		}
	}
	buf.WriteByte('\n')
}

// linesAround returns the ranges of the source lines snip touches (line
// ends excluded), found from snip's byte offsets: scanning the whole file
// for every diagnostic made a thousand diagnostics take seconds.
func linesAround(src []byte, snip hcl.Range) []hcl.Range {
	start := min(max(snip.Start.Byte, 0), len(src))
	end := min(max(snip.End.Byte, start), len(src))
	lineStart := bytes.LastIndexByte(src[:start], '\n') + 1
	var out []hcl.Range
	for line := snip.Start.Line; ; line++ {
		lineEnd := len(src)
		if i := bytes.IndexByte(src[lineStart:], '\n'); i >= 0 {
			lineEnd = lineStart + i
		}
		text := bytes.TrimSuffix(src[lineStart:lineEnd], []byte("\r"))
		out = append(out, hcl.Range{
			Filename: snip.Filename,
			Start:    hcl.Pos{Line: line, Column: 1, Byte: lineStart},
			End:      hcl.Pos{Line: line, Column: len(text) + 1, Byte: lineStart + len(text)},
		})
		if lineEnd >= end || lineEnd == len(src) {
			return out
		}
		lineStart = lineEnd + 1
	}
}

// snippetRanges returns the range to highlight (the subject) and the range
// of source to show (the subject and its context), both at least one
// character wide, as Terraform does.
func snippetRanges(d *hcl.Diagnostic) (highlight, snip hcl.Range) {
	highlight = *d.Subject
	if highlight.End == (hcl.Pos{}) {
		highlight.End = highlight.Start
	}
	snip = highlight
	if d.Context != nil {
		snip = hcl.RangeOver(snip, *d.Context)
	}
	if snip.Empty() {
		snip.End.Byte++
		snip.End.Column++
	}
	if highlight.Empty() {
		highlight.End.Byte++
		highlight.End.Column++
	}
	return highlight, snip
}

// caretIndent is the white space that puts a caret under the character
// after before: the line-number prefix, then one space per character,
// keeping tabs so the caret lines up however tabs are shown.
func caretIndent(prefix string, before []byte) string {
	var b strings.Builder
	b.WriteString(strings.Repeat(" ", len(prefix)))
	for _, r := range string(before) {
		if r == '\t' {
			b.WriteByte('\t')
		} else {
			b.WriteByte(' ')
		}
	}
	return b.String()
}

// displayName prints name relative to baseDir when it is inside it.
func displayName(name, baseDir string) string {
	if baseDir == "" || filepath.IsAbs(name) != filepath.IsAbs(baseDir) {
		return name
	}
	rel, err := filepath.Rel(baseDir, name)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return name
	}
	return rel
}

// contextString names the top-level block around offset, like `pool
// "chat"`, when the file's syntax can say. Callers pass the byte before the
// subject, as Terraform does, so a diagnostic about a block's own header
// ("Duplicate pool name", an unknown block type) is not said to be inside
// that block.
func contextString(file *hcl.File, offset int) string {
	type contextStringer interface {
		ContextString(offset int) string
	}
	if cs, ok := file.Nav.(contextStringer); ok {
		return cs.ContextString(offset)
	}
	return ""
}

// JSONDiagnostic is a diagnostic in the shape of Terraform's
// `validate -json`, so tools written for it can read llorch's.
type JSONDiagnostic struct {
	Severity string       `json:"severity"` // "error" or "warning"
	Summary  string       `json:"summary"`
	Detail   string       `json:"detail"`
	Range    *JSONRange   `json:"range,omitempty"`
	Snippet  *JSONSnippet `json:"snippet,omitempty"`
}

// JSONRange is a source range; Byte offsets count from the file start.
type JSONRange struct {
	Filename string  `json:"filename"`
	Start    JSONPos `json:"start"`
	End      JSONPos `json:"end"`
}

// JSONPos is a position in a source file.
type JSONPos struct {
	Line   int `json:"line"`
	Column int `json:"column"`
	Byte   int `json:"byte"`
}

// JSONSnippet is the source around a diagnostic: Code holds the whole
// lines from StartLine on, and the highlight offsets are byte offsets into
// Code.
type JSONSnippet struct {
	Context              *string `json:"context"`
	Code                 string  `json:"code"`
	StartLine            int     `json:"start_line"`
	HighlightStartOffset int     `json:"highlight_start_offset"`
	HighlightEndOffset   int     `json:"highlight_end_offset"`
	// Values is always empty: Terraform lists the variables used by the
	// expression here, and llorch does not, because they may be secrets.
	Values []struct{} `json:"values"`
}

// DiagnosticsJSON converts diags for -json output, with snippets from
// files where the source is available.
func DiagnosticsJSON(diags hcl.Diagnostics, files map[string]*hcl.File) []JSONDiagnostic {
	return DiagnosticsJSONIn(diags, files, "")
}

// DiagnosticsJSONIn is DiagnosticsJSON with file names inside baseDir made
// relative to it, as the text output prints them.
func DiagnosticsJSONIn(diags hcl.Diagnostics, files map[string]*hcl.File, baseDir string) []JSONDiagnostic {
	out := make([]JSONDiagnostic, 0, len(diags))
	for _, d := range diags {
		if d == nil {
			continue
		}
		jd := JSONDiagnostic{Severity: "error", Summary: d.Summary, Detail: d.Detail}
		if d.Severity == hcl.DiagWarning {
			jd.Severity = "warning"
		}
		if d.Subject != nil {
			s := *d.Subject
			jd.Range = &JSONRange{
				Filename: displayName(s.Filename, baseDir),
				Start:    JSONPos{Line: s.Start.Line, Column: s.Start.Column, Byte: s.Start.Byte},
				End:      JSONPos{Line: s.End.Line, Column: s.End.Column, Byte: s.End.Byte},
			}
			if f := files[s.Filename]; f != nil && f.Bytes != nil {
				jd.Snippet = jsonSnippet(d, f)
			}
		}
		out = append(out, jd)
	}
	return out
}

func jsonSnippet(d *hcl.Diagnostic, f *hcl.File) *JSONSnippet {
	highlight, snip := snippetRanges(d)
	src := f.Bytes
	var code strings.Builder
	codeStart := -1
	sc := hcl.NewRangeScanner(src, highlight.Filename, bufio.ScanLines)
	for sc.Scan() {
		line := sc.Range()
		if !line.Overlaps(snip) {
			continue
		}
		if codeStart < 0 {
			codeStart = line.Start.Byte
		}
		code.Write(line.SliceBytes(src))
		code.WriteByte('\n')
	}
	if codeStart < 0 {
		codeStart = snip.Start.Byte // the range lies past the last line
	}
	codeStr := strings.TrimSuffix(code.String(), "\n")
	// Ranges that start or end at a newline can fall outside the code;
	// clamp so readers never index out of bounds.
	clamp := func(n int) int { return min(max(n, 0), len(codeStr)) }
	start := clamp(highlight.Start.Byte - codeStart)
	end := clamp(highlight.End.Byte - codeStart)
	s := &JSONSnippet{
		Code:                 codeStr,
		StartLine:            snip.Start.Line,
		HighlightStartOffset: start,
		HighlightEndOffset:   end,
		Values:               []struct{}{},
	}
	if c := contextString(f, d.Subject.Start.Byte-1); c != "" {
		s.Context = &c
	}
	return s
}
