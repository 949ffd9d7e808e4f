package llamacpp

import (
	"github.com/zclconf/go-cty/cty"

	"github.com/llorch/llorch/providers"
)

// Version is this provider's own version, reported in Schema.Version.
const Version = "0.1.0"

// schema returns the provider and pool block shapes. It is built fresh on
// every call so callers may not share (and mutate) one value.
func schema() *providers.Schema {
	return &providers.Schema{
		Version: Version,
		Provider: &providers.Block{
			Description: "Where llama-server comes from (an installed binary or a source build) and where downloads and builds are cached.",
			Attributes: map[string]*providers.Attribute{
				"binary": {
					Type:     cty.String,
					Optional: true,
					Description: `The llama-server executable: a path, or a name looked up on PATH. ` +
						`Defaults to "llama-server" when there is no source block; cannot be combined with source.`,
				},
				"cache_dir": {
					Type:     cty.String,
					Optional: true,
					Description: "Directory for downloaded models, source checkouts and built engines; ~ is expanded. " +
						"Defaults to $XDG_CACHE_HOME/llorch, or ~/.cache/llorch.",
				},
			},
			Blocks: map[string]*providers.NestedBlock{
				"source": {
					Nesting: providers.NestingSingle,
					Block: providers.Block{
						Description: "Build llama-server from a git repository with CMake instead of using an installed binary.",
						Attributes: map[string]*providers.Attribute{
							"git": {
								Type:        cty.String,
								Required:    true,
								Description: `The repository to clone, e.g. "https://github.com/ggml-org/llama.cpp" or a local path.`,
							},
							"ref": {
								Type:        cty.String,
								Required:    true,
								Description: `The tag, branch or commit to build, e.g. "b6600". A branch is resolved again on every plan.`,
							},
							"cuda": {
								Type:     cty.String,
								Optional: true,
								Description: `Build with CUDA: "auto" (the default: when nvcc is on PATH or in /usr/local/cuda/bin), ` +
									`"true" or "false".`,
							},
							"cmake_args": {
								Type:        cty.List(cty.String),
								Optional:    true,
								Description: `Extra CMake configure arguments, e.g. ["-DGGML_NATIVE=OFF"]. They are part of the build cache key.`,
							},
							"jobs": {
								Type:        cty.Number,
								Optional:    true,
								Description: "Parallel build jobs (cmake --build -j). Defaults to the number of CPUs.",
							},
						},
					},
				},
			},
		},
		Pool: &providers.Block{
			Description: "llama-server settings for this pool.",
			Attributes: map[string]*providers.Attribute{
				"n_gpu_layers": {
					Type:              cty.Number,
					Optional:          true,
					ForcesReplacement: true,
					Description: "Layers to offload to the GPU (--n-gpu-layers); a number above the model's layer count " +
						"offloads all of them. CPU-only pools (devices = []) always run with 0.",
				},
				"tensor_split": {
					Type:              cty.List(cty.Number),
					Optional:          true,
					ForcesReplacement: true,
					Description:       "Share of the model each GPU holds (--tensor-split), in the order of devices, e.g. [3, 1].",
				},
				"threads": {
					Type:              cty.Number,
					Optional:          true,
					ForcesReplacement: true,
					Description:       "CPU threads used for generation (--threads).",
				},
				"parallel": {
					Type:              cty.Number,
					Optional:          true,
					ForcesReplacement: true,
					Description:       "Number of slots, that is requests served at the same time (--parallel).",
				},
				"api_key": {
					Type:              cty.String,
					Optional:          true,
					Sensitive:         true,
					ForcesReplacement: true,
					Description: "Key clients must send as a bearer token. Passed to llama-server in the LLAMA_API_KEY " +
						"environment variable, never on the command line.",
				},
			},
		},
	}
}
