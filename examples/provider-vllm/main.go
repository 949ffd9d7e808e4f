package main

import (
	"github.com/llorch/llorch/examples/provider-vllm/vllm"
	"github.com/llorch/llorch/providers/sdk"
)

func main() { sdk.Serve(vllm.New()) }
