package gguf

import (
	"testing"

	ggufparser "github.com/gpustack/gguf-parser-go"
)

// BenchmarkGGUFMetadata reads tiny-llama.gguf's metadata (a 32000-entry
// tokenizer included) with this package.
func BenchmarkGGUFMetadata(b *testing.B) {
	path := tinyLlama(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ReadFile(path); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGGUFMetadataParserGo reads the same file with
// github.com/gpustack/gguf-parser-go, the alternative this package was
// measured against.
func BenchmarkGGUFMetadataParserGo(b *testing.B) {
	path := tinyLlama(b)
	b.ReportAllocs()
	for b.Loop() {
		f, err := ggufparser.ParseGGUFFile(path)
		if err != nil {
			b.Fatal(err)
		}
		_ = f.Metadata()
	}
}
