// Package gguf reads the metadata of a GGUF model file: the header, the
// key/value section and the tensor-info section, never the weights.
//
// It is a small reader of its own rather than github.com/gpustack/gguf-parser-go
// because llorch needs five facts (architecture, parameter count,
// quantization, trained context length, format version) on every plan: this
// reader streams the header once through a buffer, skips the tokenizer arrays
// without allocating them, bounds every length it reads so a corrupt file
// cannot exhaust memory, and reports precise errors (not GGUF, unsupported
// version, truncated at byte N). BenchmarkGGUFMetadata and
// BenchmarkGGUFMetadataParserGo compare the two.
package gguf
