// Package fakeengine is a hermetic test double for llama.cpp's llama-server.
//
// It copies the behaviours of the real server that ENGINE-NOTES records
// (readiness 503 then 200, api-key gating, /metrics off by default, SIGABRT
// on a model that cannot load, the SIGTERM rules, and the socket options and
// connection handling of builds 4748 and 10573) so that supervisor and CLI
// tests exercise the same edges without a real engine.
// Tests register it with testscript, which also puts it on PATH:
//
//	testscript.Main(m, map[string]func(){"fake-llama-server": fakeengine.Main})
//
// Main reads os.Args[1:] and the environment and ends the process itself,
// by exit status or, where the real server is killed by a signal, by that
// signal. Run is the same core for in-process use.
//
// # Builds
//
// FAKE_BUILD=4748 or 10573 (the default) picks the build the fake behaves
// as, where the two differ in ways a supervisor must survive:
//
//	                         4748                          10573
//	bind                     SO_REUSEPORT, no SO_REUSEADDR SO_REUSEADDR only
//	accepted sockets         no TCP_NODELAY; headers and   TCP_NODELAY
//	                         body written apart (Nagle)
//	idle keep-alive          closed by the server after 5 s (both)
//	SIGTERM once loaded      aborts (SIGABRT) at once,     stops accepting; exits 0 when
//	                         dropping requests in flight   idle, else when the clients of
//	                                                       requests in flight hang up
//	--version                version: 4748 (c392e5094)     version: 0.2.0-dev (build 10573, commit d775b8967)
//	/slots                   only with --slots             unless --no-slots
//	-fa                      a switch                      takes on|off|auto
//	-fit, --fit              unknown argument              on|off
//
// So after a 4748 fake dies its port keeps the TIME-WAIT sockets of the
// connections it closed, which block a plain (SO_REUSEADDR) bind for about
// 60 s but not another 4748 fake; two 4748 fakes can share a port, and the
// kernel splits connections between them; a kept-alive request to a 4748
// fake waits ~40 ms for the client's delayed ACK, a fresh connection does
// not.
//
// # Flags
//
// llama-server's own spellings, also in the --flag=value form. Anything
// else fails with "error: invalid argument: --foo" and exit status 1; a
// missing or bad value fails with `error while handling argument "--port":
// …` and exit status 1.
//
//	-m, --model FNAME               without it, llama.cpp's default path (and so an abort)
//	--host HOST                     default 127.0.0.1; a name ending in .sock binds a unix socket
//	--port N                        default 8080; 0 picks a free port (see the listening line)
//	-c, --ctx-size N                default 4096 (0 = 4096)
//	-t, --threads N
//	-np, --parallel N               slots; default -1 (auto), which the fake runs as 1
//	-a, --alias S                   the model id in /v1/models and answers
//	-ngl, --gpu-layers, --n-gpu-layers N|auto|all
//	-ts, --tensor-split N0,N1,...
//	-dev, --device LIST
//	--api-key KEY[,KEY...]          everything but /health needs "Authorization: Bearer KEY"
//	--metrics                       serve /metrics (501 without it)
//	--slots, --no-slots             /slots on by default in 10573, off in 4748; 501 when off
//	-fa, --flash-attn on|off|auto   a value in 10573, a switch in 4748
//	-fit, --fit on|off              10573 only
//	-b, --batch-size N; -ub, --ubatch-size N; --timeout N; --threads-http N
//	--temp F; -n, --n-predict N; --seed N
//	--no-webui, --mlock, --no-mmap, --jinja, --log-disable, -v, --verbose,
//	--cont-batching, --no-cont-batching
//	--version                       the version line on stderr, exit 0
//	--list-devices                  "Available devices:" (a CPU-only build), exit 0
//
// Environment forms, applied before the arguments so a flag wins:
// LLAMA_ARG_MODEL, LLAMA_ARG_HOST, LLAMA_ARG_PORT, LLAMA_ARG_CTX_SIZE,
// LLAMA_ARG_N_GPU_LAYERS, LLAMA_ARG_THREADS, LLAMA_ARG_N_PARALLEL and the
// others named in the flag table, and LLAMA_API_KEY for the api key.
//
// # Knobs
//
// Environment variables; durations use Go syntax ("150ms", "2s"). A bad
// value fails the start with exit status 1 and a line naming the knob.
//
//	FAKE_LOAD_DELAY=DUR        how long /health answers 503 "Loading model" (default 20ms)
//	FAKE_HANG_LOAD=1           never finish loading
//	FAKE_CRASH_ON_START=1      log a fatal line and exit FAKE_EXIT_CODE before listening
//	FAKE_OUT_OF_MEMORY=1       fail the model load as a CUDA build out of VRAM does (cudaMalloc failed: out of memory), SIGABRT
//	FAKE_CRASH_AFTER=DUR       once ready, exit FAKE_EXIT_CODE after DUR (0s = at once)
//	FAKE_EXIT_CODE=N           exit status of the crash knobs (default 1)
//	FAKE_UNHEALTHY_AFTER=DUR   once ready, /health answers 500 after DUR; the process stays up
//	FAKE_CRASH_TIMES=N         the fault knobs apply to the first N starts only; needs ...
//	FAKE_COUNTER_FILE=PATH     ... this file, which counts starts (locked, one per start)
//	FAKE_IGNORE_SIGTERM=1      ignore SIGTERM and SIGINT: only SIGKILL ends the process
//	FAKE_REQUEST_DELAY=DUR     how long each completion holds its slot (default 0)
//	FAKE_INFLIGHT=N            start with N synthetic requests lasting FAKE_REQUEST_DELAY
//	FAKE_BUILD=4748|10573      the build to behave as (above; default 10573)
//	FAKE_VERSION_OUTPUT=S      the --version line instead of the build's own
//	FAKE_SKIP_MODEL_CHECK=1    accept any model path, existing or not, GGUF or not
//	FAKE_PID_FILE=PATH         write the process id here (atomically) once bound
//	FAKE_READY_STAMP=1         log "fake: ready at NS" (wall clock, Unix ns) the moment /health turns 200
//	FAKE_CGROUP=DIR            join this (memory) cgroup at start, as a service manager would put it there
//	FAKE_GROW_MIB=N            once ready, allocate and touch N MiB: with FAKE_CGROUP's limit, a real kernel OOM kill
//
// The fault knobs are FAKE_CRASH_ON_START, FAKE_CRASH_AFTER, FAKE_HANG_LOAD
// and FAKE_UNHEALTHY_AFTER, so "crash twice, then run" and "hang once, then
// load" both work. FAKE_COUNTER_FILE without FAKE_CRASH_TIMES just counts
// starts; --version and --list-devices are not starts.
//
// # Endpoints
//
// GET /health (public), /v1/models, /props (model_path, total_slots,
// default_generation_settings.n_ctx, build_info), /slots (id, id_task,
// n_ctx, is_processing; ?fail_on_no_slot=1), /metrics (Prometheus text with
// llamacpp:requests_processing and llamacpp:requests_deferred), POST
// /completion and /v1/chat/completions (non-streamed only; "stream": true is
// a 400). While loading, everything but /health and /v1/models answers 503:
// some builds answer /v1/models before /health turns 200, which is why
// readiness must gate on /health.
//
// # Lifecycle and log lines
//
// Logs go to stderr in llama-server's shape; lines starting "fake:" are the
// fake's own. Lines a test can wait for, in order of a normal start:
//
//	main: HTTP server is listening, hostname: H, port: P, http threads: N   (bound; pid file written)
//	srv    load_model: loading model 'PATH'
//	main: server is listening on http://H:P - starting the main loop        (ready: /health is 200)
//	slot launch_slot_: id  0 | task T | processing task
//	srv  process_single_task: no slot is available, defer task, id_task = T
//	srv  log_server_r: request: METHOD PATH IP STATUS                       (one per request)
//	srv    operator(): operator(): cleaning up before exit...               (first SIGTERM; listener closed)
//
// A model that does not exist logs "failed to load model '<path>'" and
// "main: exiting due to model loading error" and dies by SIGABRT at once; a
// file without the GGUF magic does the same after FAKE_LOAD_DELAY of 503s.
// A port in use logs "couldn't bind HTTP server socket, hostname: H, port:
// N" and exits 1. SIGTERM or SIGINT while loading kills by that signal.
// Once loaded, build 4748 logs "terminate called without an active
// exception" and dies by SIGABRT; build 10573 exits 0 when idle, and with
// requests in flight closes the listener, stops them (they are never
// answered) and stays up until their clients hang up, then exits 0. A
// second SIGTERM logs "Received second interrupt, terminating
// immediately." and exits 1.
//
// Where the fake departs from the real server: FAKE_INFLIGHT's synthetic
// requests have no client, so after a 10573 SIGTERM they run to their end
// instead of waiting for a hang-up that cannot come. The death by SIGABRT is
// made without a core dump. Outside Linux a death by signal n is exit
// status 128+n, and FAKE_BUILD=4748 binds as 10573 does where the platform
// has no SO_REUSEPORT.
//
// The core takes a clock.Clock although the process always runs on the
// wall clock, so that this package's tests drive load delays, crashes and
// request delays with a manual clock instead of sleeping.
package fakeengine
