package supervisor

import "testing"

// The lines are what the real llama-server (build 4748) printed for each
// failure, except out of memory, which is what CUDA builds print.
func TestClassifyNamesTheCauseAndTheLineThatProvesIt(t *testing.T) {
	tests := []struct {
		name  string
		tail  []string
		cause Cause
		line  string
	}{
		{"a missing model", []string{
			"common_init_from_params: failed to load model '/nonexistent.gguf'",
			"srv    load_model: failed to load model, '/nonexistent.gguf'",
			"srv    operator(): operator(): cleaning up before exit...",
			"terminate called without an active exception",
		}, CauseModelLoadFailed, "common_init_from_params: failed to load model '/nonexistent.gguf'"},
		{"an unknown flag", []string{"error: invalid argument: --no-such-flag"}, CauseBadArgument, "error: invalid argument: --no-such-flag"},
		{"a taken port", []string{
			"system_info: n_threads = 2 (n_threads_batch = 2) / 2 | CPU : SSE3 = 1 |",
			"main: couldn't bind HTTP server socket, hostname: 127.0.0.1, port: 55069",
			"srv    operator(): operator(): cleaning up before exit...",
		}, CausePortInUse, "main: couldn't bind HTTP server socket, hostname: 127.0.0.1, port: 55069"},
		{"VRAM too small: memory, not the model, is the cause", []string{
			"ggml_backend_cuda_buffer_type_alloc_buffer: allocating 4096.00 MiB on device 0: cudaMalloc failed: out of memory",
			"llama_model_load: error loading model: unable to allocate CUDA0 buffer",
			"main: exiting due to model loading error",
		}, CauseOutOfMemory, "ggml_backend_cuda_buffer_type_alloc_buffer: allocating 4096.00 MiB on device 0: cudaMalloc failed: out of memory"},
		{"Vulkan", []string{"ggml_vulkan: Device memory allocation of size 1073741824 failed.", "vk::Device::allocateMemory: ErrorOutOfDeviceMemory"}, CauseOutOfMemory, "vk::Device::allocateMemory: ErrorOutOfDeviceMemory"},
		{"anything else", []string{"srv  update_slots: all slots are idle", "Segmentation fault"}, CauseCrashed, ""},
		{"no log at all", nil, CauseCrashed, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cause, line := classify(tc.tail, llamaServerCauses)
			if cause != tc.cause || line != tc.line {
				t.Errorf("classify = %s, %q; want %s, %q", cause, line, tc.cause, tc.line)
			}
		})
	}
	for _, c := range []Cause{CauseModelLoadFailed, CauseOutOfMemory, CauseBadArgument} {
		if !c.Configuration() {
			t.Errorf("%s is not a configuration cause", c)
		}
	}
	for _, c := range []Cause{CausePortInUse, CauseCrashed} {
		if c.Configuration() {
			t.Errorf("%s is a configuration cause; it passes and must back off", c)
		}
	}
}

func TestEngineOwnLogCausesComeFirst(t *testing.T) {
	tail := []string{"INFO api_server.py: vLLM API server version 0.6.3", "vllm: error: unrecognized arguments: --no-such-flag"}
	if c, _ := classify(tail, nil); c != CauseCrashed {
		t.Fatalf("without the engine's lines: %s, want crashed (llorch knows no vLLM argparse line)", c)
	}
	own := []LogCause{{Cause: CauseBadArgument, Contains: []string{"ERROR: UNRECOGNIZED ARGUMENTS"}}}
	if c, line := classify(tail, own); c != CauseBadArgument || line != tail[1] {
		t.Fatalf("with the engine's lines: %s %q", c, line)
	}
}
