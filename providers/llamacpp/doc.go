// Package llamacpp is llorch's built-in provider for llama.cpp's llama-server.
//
// Ensure prepares one pool's engine without starting it: it locates the
// llama-server binary (binary mode: a path or a name on PATH, version from
// `llama-server --version`) or builds it from a git ref with CMake (source
// mode, cached by commit and build options under the cache directory), stages
// the model (file:, https:// or hf:org/repo/file.gguf[@revision], downloads
// resumed with HTTP Range requests and verified against sha256), checks it is
// GGUF and reads its metadata, and turns the pool into llama-server
// arguments. PlanPool answers the same questions cheaply: it never builds,
// downloads or hashes.
//
// Source builds add -DBUILD_SHARED_LIBS=OFF to the CMake command line: the
// binary is copied out of a temporary build directory into the cache, so it
// must not load libllama/libggml from that directory.
//
// The provider lives for one llorch command, and a plan may hold a thousand
// pools: answers that every pool shares (the commit a git ref names, the
// GPUs nvidia-smi lists, where the binary is on PATH, a model's GGUF
// metadata) are learnt once per command and per key, concurrent callers
// sharing one run, in the small flight type of memo.go rather than a new
// dependency. A different provider block given to Configure starts afresh.
//
// The package imports no llorch package but providers and the public SDK
// packages providers/sdk/stage (model refs, downloads, digests, locks) and
// providers/sdk/gguf (the GGUF reader), so it sees exactly what a
// third-party plugin sees.
//
// Where this departs from the proposed layout: time enters only through
// timeouts and a download stall timer (time.AfterFunc), not an injected
// clock, because no decision here depends on the current time; and the
// download and build caches are guarded by flock on lock files, since
// several llorch processes may share one cache directory.
package llamacpp
