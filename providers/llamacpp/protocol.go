package llamacpp

import "github.com/llorch/llorch/providers"

// EngineProtocol is how llama-server answers (ENGINE-NOTES.md):
//   - /health: 503 {"error":{"message":"Loading model"}} while loading,
//     200 once the model is loaded;
//   - /props names the loaded model in model_path, which proves the answer
//     comes from the engine spawned for this pool;
//   - /slots (with --slots, the default from build 10573 on) lists slots
//     with is_processing; builds without it have the /metrics gauges
//     (with --metrics);
//   - /completion takes prompt and n_predict and answers content;
//   - its log says why it did not start (the lines below, from the real
//     build 4748's output, and what CUDA and Vulkan builds print);
//   - SIGTERM stops it (build 4748 aborts at once; 10573 stops taking new
//     requests and waits for its clients), and a second SIGTERM makes it
//     exit at once ("Received second interrupt, terminating immediately").
func EngineProtocol(modelPath string) *providers.EngineProtocol {
	return &providers.EngineProtocol{
		Readiness: providers.Readiness{Ready: []int{200}, Loading: []int{503}},
		Identity:  &providers.IdentityProbe{Path: "/props", Field: "model_path", Expect: modelPath},
		InFlight: []providers.InFlightProbe{
			{Path: "/slots", CountTrue: "is_processing"},
			{Path: "/metrics", Gauges: []string{"llamacpp:requests_processing", "llamacpp:requests_deferred"}},
		},
		Completion: &providers.CompletionProbe{Path: "/completion", PromptField: "prompt", MaxTokensField: "n_predict", TextField: "content"},
		Stop:       providers.StopBehaviour{Signal: "SIGTERM", RepeatForcesExit: true},
		// Tried in this order: an allocation failure during load also
		// logs "failed to load model", so memory comes first.
		LogCauses: []providers.LogCause{
			{Cause: "out_of_memory", Contains: []string{"out of memory", "cudamalloc failed", "failed to allocate", "unable to allocate",
				"erroroutofdevicememory", "erroroutofhostmemory", "std::bad_alloc"}},
			{Cause: "bad_argument", Contains: []string{"error: invalid argument", "unknown argument", "error: unknown option", "invalid value for"}},
			{Cause: "port_in_use", Contains: []string{"couldn't bind HTTP server socket", "address already in use"}},
			{Cause: "model_load_failed", Contains: []string{"failed to load model", "exiting due to model loading error", "error loading model",
				"failed to open gguf file", "invalid magic characters"}},
		},
	}
}
