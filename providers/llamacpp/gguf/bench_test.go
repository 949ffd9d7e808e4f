package gguf

import "testing"

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
