// Package testgguf writes small, valid GGUF v3 files for tests, so that no
// test needs a model file from outside the repository.
//
// A [Model] describes the file: architecture, trained context length,
// vocabulary size and the shape of a llama-style transformer. [TinyLlama]
// has the shape of the 9 MB tiny-random-llama model that llama.cpp's own
// tests use (the same keys, tensors and parameter count), so metadata
// assertions written against that file hold for a generated one. The tensor
// data is deterministic filler: the file loads, and answers nothing useful.
package testgguf
