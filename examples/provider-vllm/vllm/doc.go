// Package vllm is a third-party llorch provider for vLLM's OpenAI-compatible
// server (`vllm serve`). It is written against providers/sdk only, as an
// outside author would write it; the main package one directory up turns it
// into the plugin executable llorch-provider-vllm.
//
// Ensure locates the vllm executable and reads its version. vLLM downloads
// Hugging Face models itself when it starts, so Ensure stages nothing; a
// local model is a directory (file:/path, or file:PATH relative to the
// configuration directory, parsed with providers/sdk/stage as every
// provider parses it), checked to exist.
package vllm
