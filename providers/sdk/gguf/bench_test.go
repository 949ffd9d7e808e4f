package gguf

import "testing"

// BenchmarkGGUFMetadata reads the metadata of a model of tiny-random-llama's
// shape (a 32000-entry tokenizer included) with this package.
func BenchmarkGGUFMetadata(b *testing.B) {
	path := tinyLlama(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ReadFile(path); err != nil {
			b.Fatal(err)
		}
	}
}
