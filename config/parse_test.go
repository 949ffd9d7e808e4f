package config

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// pieceSources are files parseHCL must parse exactly as ParseConfig does,
// whether it can use its pieces or not: lines holding a lone "}" that end
// top-level blocks, and lines holding one that do not.
var pieceSources = map[string]string{
	"top-level blocks": strings.Repeat(`pool "p" {
  engine = "llamacpp"
  labels = { team = "a", "b c" = "d" }
  model {
    ref = "file:${var.models}/m.gguf" # a comment
  }
}
`, 6),
	"windows line endings": strings.ReplaceAll(strings.Repeat("variable \"v\" {\n  default = \"x\"\n}\n", 6), "\n", "\r\n"),
	"comments and unicode between blocks": strings.Repeat(`/* a block
comment */
// über ✓
locals {
  x = "日本語 ${"nested"}"
}
`, 6),
	"unindented nested block": `pool "a" {
engine = "llamacpp"
model {
ref = "file:/m.gguf"
}
}
pool "b" {
engine = "llamacpp"
}
`,
	"heredoc holding a closing brace line": `pool "a" {
  flags = [<<EOT
}
pool "fake" {
}
EOT
  ]
}
pool "b" {
}
`,
	"indented heredoc holding one": `locals {
  x = <<-EOT
}
    EOT
}
locals {
}
`,
	"block comment holding one": `/* start
}
pool "fake" {
}
*/
pool "b" {
}
`,
	"object holding one": `pool "a" {
  labels = {
}
  engine = "x"
}
pool "b" {
}
`,
	"template interpolation holding one": `locals {
  x = "${ {a = 1
}
}"
}
locals {
}
`,
	"top-level object attribute": `a = {
}
b = {
}
`,
	"attribute given twice in different pieces": `a = 1
pool "x" {
}
a = 2
pool "y" {
}
`,
	"syntax error in a later piece": `pool "a" {
}
pool "b" {
  engine = = "x"
}
pool "c" {
}
`,
	"unclosed block at the end": `pool "a" {
}
pool "b" {
`,
	"closing brace on the last line": `pool "a" {
}
pool "b" {
}`,
	"empty": "",
}

func TestParseHCLMatchesParseConfig(t *testing.T) {
	for name, src := range pieceSources {
		for _, size := range []int{1, 20, 1 << 20} {
			t.Run(fmt.Sprintf("%s/pieces of %d bytes", name, size), func(t *testing.T) {
				wantFile, wantDiags := hclsyntax.ParseConfig([]byte(src), "main.llorch.hcl", hcl.InitialPos)
				gotFile, gotDiags := parseHCLPieces([]byte(src), "main.llorch.hcl", size)
				if fmt.Sprint(gotDiags) != fmt.Sprint(wantDiags) {
					t.Errorf("diagnostics = %v\nwant %v", gotDiags, wantDiags)
				}
				if !reflect.DeepEqual(gotFile.Body, wantFile.Body) {
					t.Errorf("body differs from ParseConfig's")
				}
				if string(gotFile.Bytes) != src {
					t.Errorf("Bytes = %q", gotFile.Bytes)
				}
				type navigator interface {
					ContextString(int) string
					ContextDefRange(int) hcl.Range
				}
				gotNav, wantNav := gotFile.Nav.(navigator), wantFile.Nav.(navigator)
				for off := 0; off <= len(src); off++ {
					if g, w := gotNav.ContextString(off), wantNav.ContextString(off); g != w {
						t.Fatalf("ContextString(%d) = %q, want %q", off, g, w)
					}
					if g, w := gotNav.ContextDefRange(off), wantNav.ContextDefRange(off); g != w {
						t.Fatalf("ContextDefRange(%d) = %v, want %v", off, g, w)
					}
				}
			})
		}
	}
}

func TestParseHCLUsesPiecesOnlyWhenEveryOneIsClean(t *testing.T) {
	tests := []struct {
		name       string
		wantPieces bool
	}{
		{"top-level blocks", true},
		{"windows line endings", true},
		{"comments and unicode between blocks", true},
		{"unindented nested block", false},
		{"heredoc holding a closing brace line", false},
		{"indented heredoc holding one", false},
		{"block comment holding one", false},
		{"object holding one", false},
		{"template interpolation holding one", false},
		{"top-level object attribute", false},
		{"attribute given twice in different pieces", false},
		{"syntax error in a later piece", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, _ := parseHCLPieces([]byte(pieceSources[tc.name]), "main.llorch.hcl", 1)
			if _, pieces := f.Nav.(pieceNavs); pieces != tc.wantPieces {
				t.Errorf("parsed in pieces = %v, want %v", pieces, tc.wantPieces)
			}
		})
	}
}

func TestCutPoints(t *testing.T) {
	src := "a {\n}\nb {\n}\r\nc {\n}\nd {\n}\n"
	got := cutPoints([]byte(src), 1)
	want := []hcl.Pos{{Line: 1, Column: 1, Byte: 0}, {Line: 3, Column: 1, Byte: 6}, {Line: 5, Column: 1, Byte: 13}, {Line: 7, Column: 1, Byte: 19}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("cutPoints = %v\nwant %v", got, want)
	}
	if got := cutPoints([]byte(src), 1<<10); len(got) != 1 {
		t.Errorf("a small file is cut: %v", got)
	}
}

// BenchmarkParseHCLPieces compares parseHCL with ParseConfig, and with
// other piece sizes, on one file of n pools.
func BenchmarkParseHCLPieces(b *testing.B) {
	for _, n := range []int{100, 1000} {
		src := []byte(poolsConfig(n)["main.llorch.hcl"])
		b.Run(fmt.Sprintf("pools=%d/ParseConfig", n), func(b *testing.B) {
			b.SetBytes(int64(len(src)))
			b.ReportAllocs()
			for b.Loop() {
				hclsyntax.ParseConfig(src, "main.llorch.hcl", hcl.InitialPos)
			}
		})
		b.Run(fmt.Sprintf("pools=%d/parseHCL", n), func(b *testing.B) {
			b.SetBytes(int64(len(src)))
			b.ReportAllocs()
			for b.Loop() {
				parseHCL(src, "main.llorch.hcl")
			}
		})
		// Other piece sizes than chunkSize, to compare B/op.
		for _, size := range []int{1 << 10, 4 << 10, 16 << 10} {
			b.Run(fmt.Sprintf("pools=%d/pieces=%d", n, size), func(b *testing.B) {
				b.SetBytes(int64(len(src)))
				b.ReportAllocs()
				for b.Loop() {
					parseHCLPieces(src, "main.llorch.hcl", size)
				}
			})
		}
	}
}

// FuzzParseHCL checks parseHCL's promise on any input: pieces or not, the
// file parses exactly as ParseConfig parses it.
func FuzzParseHCL(f *testing.F) {
	for _, src := range pieceSources {
		f.Add(src, uint8(1))
	}
	f.Fuzz(func(t *testing.T, src string, size uint8) {
		wantFile, wantDiags := hclsyntax.ParseConfig([]byte(src), "main.llorch.hcl", hcl.InitialPos)
		gotFile, gotDiags := parseHCLPieces([]byte(src), "main.llorch.hcl", int(size))
		if fmt.Sprint(gotDiags) != fmt.Sprint(wantDiags) {
			t.Fatalf("diagnostics = %v\nwant %v", gotDiags, wantDiags)
		}
		if !reflect.DeepEqual(gotFile.Body, wantFile.Body) {
			t.Fatalf("body differs from ParseConfig's for %q", src)
		}
	})
}
