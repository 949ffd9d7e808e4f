package main

import (
	"context"
	"os/exec"
	"strings"

	"github.com/llorch/llorch/providers"
	"github.com/llorch/llorch/providers/providertest"
)

// newFlakyProvider is a third-party provider for scripts: it prepares the
// fake llama-server like llamacpp would, except that it crashes (a panic:
// the runtime writes it to the process's real stderr and exits 2) during
// Ensure of any pool whose id contains "crash" — a plugin dying mid-apply.
func newFlakyProvider() providers.Provider {
	return &providertest.Provider{
		EnsureFunc: func(ctx context.Context, req providers.EnsureRequest) (*providers.PreparedEngine, providers.Diagnostics) {
			if strings.Contains(req.Pool.ID, "crash") {
				panic("flaky: segmentation violation while staging " + req.Pool.Model.Ref)
			}
			pe := providertest.DefaultEngine(req.Pool)
			bin, err := exec.LookPath("fake-llama-server")
			if err != nil {
				return nil, providers.FromError("Engine not found", err)
			}
			pe.BinaryPath = bin
			return &pe, nil
		},
	}
}
