// Package fakevllm is a stand-in for vLLM's OpenAI-compatible server
// (`vllm serve MODEL`), for the tests of the example vLLM provider and of
// a supervisor that follows a provider's EngineProtocol rather than
// llama-server's. It imitates what llorch depends on:
//
//   - `vllm --version` prints the version last on stdout;
//   - `vllm serve MODEL [--host H] [--port P] [--served-model-name N]
//     [--max-model-len N] [--tensor-parallel-size N]
//     [--gpu-memory-utilization F] [--revision R] [--api-key K]`; any other
//     flag is refused as argparse does ("vllm: error: unrecognized
//     arguments: …", exit 2);
//   - nothing listens while the model loads; then GET /health answers 200
//     with an empty body, GET /v1/models lists the served model with its
//     root (the model it loaded), GET /metrics has the gauges
//     vllm:num_requests_running and vllm:num_requests_waiting labelled by
//     model_name, and POST /v1/completions answers OpenAI's completion
//     object;
//   - with an api key (--api-key or VLLM_API_KEY) every /v1/ path needs
//     "Authorization: Bearer KEY"; /health and /metrics do not;
//   - SIGTERM or SIGINT starts uvicorn's graceful shutdown: no new
//     connections, requests in flight finish, then exit 0; a second SIGINT
//     exits at once.
//
// Knobs (environment): FAKE_LOAD_DELAY (default 20ms), FAKE_REQUEST_DELAY
// (how long a completion takes), FAKE_INFLIGHT=N (N requests start
// at once after load and take FAKE_REQUEST_DELAY, for drain tests).
package fakevllm
