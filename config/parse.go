package config

import (
	"bytes"
	"context"
	"runtime"
	"unicode/utf8"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"

	"github.com/llorch/llorch/internal/parallel"
)

// chunkSize is roughly how many bytes of a configuration file parseHCL
// gives each goroutine. The HCL parser lexes a whole file into one token
// slice (about 100 bytes per token, one token per 3 or 4 bytes of a pool
// block) grown by append, which past 256 elements grows it by a quarter
// at a time: a piece of a few hundred tokens keeps the copying near one
// slice's worth. 2 KiB pieces allocate 20-40 % less than 16 KiB ones on a
// thousand pools (BenchmarkParseHCLPieces).
const chunkSize = 2 << 10

// parseHCL parses a configuration file as hclsyntax.ParseConfig does,
// splitting a large one into runs of top-level blocks parsed concurrently.
//
// A file is cut only after a line that is a lone "}" at column 1, where
// top-level blocks usually end. Such a line may also close something
// nested (an unindented inner block, an object, a heredoc's text, a
// comment), but then the piece before the cut ends inside that construct,
// and HCL reports an error at the end of any unclosed block, bracket,
// string, heredoc or comment. So the pieces are used only when every one
// parses without a diagnostic and holds only blocks; they are then exactly
// the file's blocks, with the same ranges (each piece is parsed from its
// own start position). Otherwise the file is parsed again whole, which
// gives the diagnostics ParseConfig gives. FuzzParseHCL checks all this.
func parseHCL(src []byte, filename string) (*hcl.File, hcl.Diagnostics) {
	return parseHCLPieces(src, filename, chunkSize)
}

// parseHCLPieces is parseHCL with pieces of about size bytes.
func parseHCLPieces(src []byte, filename string, size int) (*hcl.File, hcl.Diagnostics) {
	var starts []hcl.Pos
	// A piece starts at column 1 of the line after as many newlines as
	// precede it, which is where the lexer would be only if it sees each
	// of them as a line break: in valid UTF-8 a newline is always a
	// grapheme cluster of its own (or one with a carriage return).
	if utf8.Valid(src) {
		starts = cutPoints(src, size)
	}
	if len(starts) < 2 {
		return hclsyntax.ParseConfig(src, filename, hcl.InitialPos)
	}
	files := make([]*hcl.File, len(starts))
	clean := make([]bool, len(starts))
	_ = parallel.For(context.Background(), len(starts), runtime.GOMAXPROCS(0), func(i int) {
		start, end := starts[i], len(src)
		if i+1 < len(starts) {
			end = starts[i+1].Byte
		}
		f, diags := hclsyntax.ParseConfig(src[start.Byte:end], filename, start)
		body, ok := f.Body.(*hclsyntax.Body)
		files[i], clean[i] = f, ok && len(diags) == 0 && len(body.Attributes) == 0
	})
	for _, ok := range clean {
		if !ok {
			return hclsyntax.ParseConfig(src, filename, hcl.InitialPos)
		}
	}

	first := files[0].Body.(*hclsyntax.Body)
	last := files[len(files)-1].Body.(*hclsyntax.Body)
	body := &hclsyntax.Body{
		Attributes: hclsyntax.Attributes{},
		Blocks:     hclsyntax.Blocks{},
		SrcRange:   hcl.RangeBetween(first.SrcRange, last.SrcRange),
		EndRange:   last.EndRange,
	}
	navs := make(pieceNavs, len(files))
	for i, f := range files {
		body.Blocks = append(body.Blocks, f.Body.(*hclsyntax.Body).Blocks...)
		navs[i] = f.Nav
	}
	return &hcl.File{Body: body, Bytes: src, Nav: navs}, nil
}

// cutPoints returns where the pieces of src start, about size bytes apart,
// with their positions; a single piece when src is small or has no place
// to cut.
func cutPoints(src []byte, size int) []hcl.Pos {
	starts := []hcl.Pos{hcl.InitialPos}
	line, counted := 1, 0 // line number at byte counted
	for from := size; from < len(src); {
		// The next line that is a lone "}", ended by "\n" or "\r\n".
		cut := -1
		for rest := from; rest < len(src); {
			i := bytes.Index(src[rest:], []byte("\n}"))
			if i < 0 {
				break
			}
			end := rest + i + len("\n}")
			if end < len(src) && src[end] == '\n' {
				cut = end + 1
				break
			}
			if end+1 < len(src) && src[end] == '\r' && src[end+1] == '\n' {
				cut = end + 2
				break
			}
			rest = end
		}
		if cut < 0 || cut >= len(src) {
			break
		}
		line += bytes.Count(src[counted:cut], []byte("\n"))
		counted = cut
		starts = append(starts, hcl.Pos{Line: line, Column: 1, Byte: cut})
		from = cut + size
	}
	return starts
}

// pieceNavs is the navigation of a file parsed in pieces: the answer of
// the piece whose blocks hold the offset. It serves what ParseConfig's own
// navigation serves (hcled.ContextString, and diagnostics' "in pool ..."
// context).
type pieceNavs []any

func (n pieceNavs) ContextString(offset int) string {
	for _, nav := range n {
		if cs, ok := nav.(interface{ ContextString(int) string }); ok {
			if s := cs.ContextString(offset); s != "" {
				return s
			}
		}
	}
	return ""
}

func (n pieceNavs) ContextDefRange(offset int) hcl.Range {
	for _, nav := range n {
		if cd, ok := nav.(interface{ ContextDefRange(int) hcl.Range }); ok {
			if r := cd.ContextDefRange(offset); r != (hcl.Range{}) {
				return r
			}
		}
	}
	return hcl.Range{}
}
