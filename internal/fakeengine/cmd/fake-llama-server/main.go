// Command fake-llama-server is the test double for llama.cpp's llama-server
// that `make demo` runs: it takes llama-server's flags and answers its
// endpoints without loading a real model. See package fakeengine.
package main

import "github.com/llorch/llorch/internal/fakeengine"

func main() { fakeengine.Main() }
