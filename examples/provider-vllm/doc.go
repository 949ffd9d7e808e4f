// Command llorch-provider-vllm is the vLLM provider plugin for llorch. It is
// started by llorch, never by hand; see README.md for building and
// installing it.
package main
