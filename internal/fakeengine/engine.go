package fakeengine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/llorch/llorch/internal/clock"
)

type phase int

const (
	phaseLoading phase = iota
	phaseReady
	phaseUnhealthy
)

// outcome is how the process ends: an exit status, or death by a signal
// (SIGABRT for a bad model, the received signal during load).
type outcome struct {
	code int
	sig  syscall.Signal
}

func exitWith(code int) outcome           { return outcome{code: code} }
func killedBy(sig syscall.Signal) outcome { return outcome{sig: sig} }

// status is the outcome as a shell shows it: 128+n for death by signal n.
func (o outcome) status() int {
	if o.sig != 0 {
		return 128 + int(o.sig)
	}
	return o.code
}

// run is the life of one fake server process. sigs delivers SIGTERM and
// SIGINT; ctx ending kills the server outright, as SIGKILL would.
func run(ctx context.Context, args []string, env func(string) string, stdout, stderr io.Writer, clk clock.Clock, sigs <-chan os.Signal) outcome {
	b, err := parseBuild(env)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitWith(1)
	}
	opts, err := parseOptions(args, env, b)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitWith(1)
	}
	k, err := parseKnobs(env)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitWith(1)
	}
	if k.versionOutput == "" {
		k.versionOutput = b.version
	}
	if opts.version {
		fmt.Fprintln(stderr, strings.TrimRight(k.versionOutput, "\n"))
		return exitWith(0)
	}
	if opts.listDevices {
		fmt.Fprintln(stdout, "Available devices:") // a CPU-only build lists none
		return exitWith(0)
	}
	e := &engine{
		build:       b,
		opts:        opts,
		knobs:       k,
		clk:         clk,
		log:         &logger{w: stderr, off: opts.logDisable},
		sched:       newScheduler(opts.slotCount()),
		quit:        make(chan struct{}),
		terminating: make(chan struct{}),
		started:     clk.Now(),
	}
	return e.serve(ctx, sigs)
}

// engine is one running fake server.
type engine struct {
	build   build
	opts    options
	knobs   knobs
	clk     clock.Clock
	log     *logger
	sched   *scheduler
	started time.Time
	url     string
	port    int // the bound port; 0 for a unix socket
	// quit closes when the process is going away, releasing every task
	// that still waits on a slot or a request delay.
	quit chan struct{}
	// terminating closes at the first SIGTERM a 10573 server survives:
	// requests in flight stop generating and wait for their clients.
	terminating chan struct{}

	mu      sync.Mutex
	phase   phase
	closing bool           // no new work may start
	active  sync.WaitGroup // requests being served and synthetic tasks
	stats   counters
}

type counters struct {
	promptTokens    int
	predictedTokens int
	decodes         int
}

func (e *engine) currentPhase() phase {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.phase
}

func (e *engine) setPhase(p phase) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.phase = p
}

// enter registers a unit of work; it fails once the server is closing, so
// that finish can wait for everything that started.
func (e *engine) enter() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closing {
		return false
	}
	e.active.Add(1)
	return true
}

func (e *engine) leave() { e.active.Done() }

func (e *engine) stopNewWork() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.closing = true
}

// serve binds, "loads" the model and answers until a signal, a crash knob or
// ctx ends it. The order of the steps copies llama-server: bind first, then
// load, then flip to ready.
func (e *engine) serve(ctx context.Context, sigs <-chan os.Signal) outcome {
	faulty := true
	if e.knobs.counterFile != "" {
		n, err := countStart(e.knobs.counterFile)
		if err != nil {
			e.log.printf("fake: error: %v", err)
			return exitWith(1)
		}
		faulty = e.knobs.crashTimes < 0 || n <= e.knobs.crashTimes
		e.log.printf("fake: start %d, fault knobs %s", n, choose(faulty, "on", "off"))
	}
	e.log.printf("build: %d (%s) with fake-llama-server", e.build.number, e.build.commit)
	e.log.printf("main: fake settings: model = '%s', n_ctx = %d, n_parallel = %d, n_gpu_layers = %s, threads = %d, devices = '%s', tensor_split = '%s', metrics = %t, slots = %t, api_key = %s",
		e.opts.model, e.opts.ctxSize, e.opts.slotCount(), e.opts.gpuLayers, e.opts.threads,
		e.opts.devices, e.opts.tensorSplit, e.opts.metrics, e.opts.slots, choose(len(e.opts.apiKeys) > 0, "set", "none"))
	if faulty && e.knobs.crashOnStart {
		e.log.printf("fake: fatal: crashing on start as FAKE_CRASH_ON_START asks, exit status %d", e.knobs.exitCode)
		return exitWith(e.knobs.exitCode)
	}

	if e.knobs.cgroup != "" {
		// As a service manager would have put it there: the memory limit
		// applies to everything the engine allocates from now on.
		if err := os.WriteFile(filepath.Join(e.knobs.cgroup, "cgroup.procs"), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
			e.log.printf("fake: error: joining FAKE_CGROUP: %v", err)
			return exitWith(1)
		}
	}
	ln, err := e.listen()
	if err != nil {
		e.log.printf("main: couldn't bind HTTP server socket, hostname: %s, port: %d", e.opts.host, e.opts.port)
		e.log.printf("fake: %v", err)
		return exitWith(1)
	}
	if e.knobs.pidFile != "" {
		if err := writePIDFile(e.knobs.pidFile); err != nil {
			ln.Close()
			e.log.printf("fake: error: %v", err)
			return exitWith(1)
		}
	}
	// Logged once the pid file exists, so a reader of this line finds both.
	e.log.printf("main: HTTP server is listening, hostname: %s, port: %d, http threads: %d", e.opts.host, e.port, e.httpThreads())

	srv := &http.Server{
		Handler:           e.routes(),
		ReadHeaderTimeout: 10 * time.Second,
		// cpp-httplib closes a kept-alive connection that is idle for 5 s
		// from the server's side, which leaves a TIME-WAIT socket on the
		// engine's port.
		IdleTimeout: keepAliveTimeout,
		ErrorLog:    log.New(e.log, "srv  http: ", 0),
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()

	shutCtx, shutCancel := context.WithCancel(context.Background())
	var (
		stops       []func()
		drained     <-chan struct{}
		terminating bool
	)
	finish := func(o outcome) outcome {
		shutCancel()
		for _, stop := range stops {
			stop()
		}
		e.stopNewWork()
		// Close the connections before releasing the tasks, so a request
		// cut short cannot be answered.
		_ = srv.Close()
		close(e.quit)
		if serveErr != nil {
			<-serveErr
		}
		e.active.Wait()
		if drained != nil {
			<-drained
		}
		return o
	}
	after := func(d time.Duration) <-chan time.Time {
		t := e.clk.NewTimer(d)
		stops = append(stops, func() { t.Stop() })
		return t.C()
	}

	e.log.printf("main: loading model")
	e.log.printf("srv    load_model: loading model '%s'", e.opts.model)
	problem := modelOK
	if !e.knobs.skipModelCheck {
		problem = checkModel(e.opts.model)
	}
	if problem == modelUnreadable {
		e.logLoadFailure(fmt.Sprintf("gguf_init_from_file: failed to open GGUF file '%s'", e.opts.model))
		return finish(killedBy(syscall.SIGABRT))
	}
	if faulty && e.knobs.outOfMemory {
		// What a CUDA build prints when the weights do not fit in VRAM.
		e.log.printf("ggml_backend_cuda_buffer_type_alloc_buffer: allocating 4096.00 MiB on device 0: cudaMalloc failed: out of memory")
		e.log.printf("alloc_tensor_range: failed to allocate CUDA0 buffer of size 4294967296")
		e.logLoadFailure("llama_model_load: error loading model: unable to allocate CUDA0 buffer")
		return finish(killedBy(syscall.SIGABRT))
	}
	var loadC, crashC, unhealthyC <-chan time.Time
	if faulty && e.knobs.hangLoad {
		e.log.printf("fake: the model never finishes loading, as FAKE_HANG_LOAD asks")
	} else {
		loadC = after(e.knobs.loadDelay)
	}

	for {
		select {
		case <-ctx.Done():
			return finish(killedBy(syscall.SIGKILL))

		case s := <-sigs:
			if e.knobs.ignoreSigterm {
				e.log.printf("fake: ignoring %v, as FAKE_IGNORE_SIGTERM asks", s)
				continue
			}
			if terminating {
				e.log.printf("Received second interrupt, terminating immediately.")
				return finish(exitWith(1))
			}
			if e.currentPhase() == phaseLoading {
				// llama-server installs its handler only once loaded, so
				// until then the signal's default action kills it.
				sig, ok := s.(syscall.Signal)
				if !ok {
					sig = syscall.SIGTERM
				}
				return finish(killedBy(sig))
			}
			terminating = true
			// Refuse new connections before saying so, as svr->stop() does;
			// Shutdown would close the listener too, but only later.
			_ = ln.Close()
			if !e.build.abortOnTerm {
				close(e.terminating) // before the line a test waits for
			}
			e.log.printf("srv    operator(): operator(): cleaning up before exit...")
			if e.build.abortOnTerm {
				// Build 4748 tears its threads down unjoined: abort, and
				// every request in flight is dropped.
				e.log.printf("terminate called without an active exception")
				return finish(killedBy(syscall.SIGABRT))
			}
			drained = e.drain(shutCtx, srv)

		case <-drained:
			return finish(exitWith(0))

		case <-loadC:
			loadC = nil
			if problem == modelNotGGUF {
				e.logLoadFailure(fmt.Sprintf("gguf_init_from_file_impl: invalid magic characters in '%s', expected 'GGUF'", e.opts.model))
				return finish(killedBy(syscall.SIGABRT))
			}
			e.becomeReady()
			if faulty && e.knobs.crashAfterSet {
				crashC = after(e.knobs.crashAfter)
			}
			if faulty && e.knobs.unhealthySet {
				unhealthyC = after(e.knobs.unhealthyAfter)
			}

		case <-crashC:
			e.log.printf("fake: fatal: crashing as FAKE_CRASH_AFTER=%v asks, exit status %d", e.knobs.crashAfter, e.knobs.exitCode)
			return finish(exitWith(e.knobs.exitCode))

		case <-unhealthyC:
			unhealthyC = nil
			e.setPhase(phaseUnhealthy)
			e.log.printf("fake: /health answers 500 from now on, as FAKE_UNHEALTHY_AFTER=%v asks", e.knobs.unhealthyAfter)

		case err := <-serveErr:
			serveErr = nil
			if !terminating {
				e.log.printf("srv  http: serving stopped: %v", err)
				return finish(exitWith(1))
			}
		}
	}
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func choose(cond bool, yes, no string) string {
	if cond {
		return yes
	}
	return no
}

func (e *engine) listen() (net.Listener, error) {
	if strings.HasSuffix(e.opts.host, ".sock") {
		ln, err := net.Listen("unix", e.opts.host)
		if err != nil {
			return nil, fmt.Errorf("binding unix socket %s: %w", e.opts.host, err)
		}
		e.url = "unix://" + e.opts.host
		return ln, nil
	}
	ln, err := e.build.listenConfig().Listen(context.Background(), "tcp", net.JoinHostPort(e.opts.host, strconv.Itoa(e.opts.port)))
	if err != nil {
		return nil, fmt.Errorf("binding %s port %d: %w", e.opts.host, e.opts.port, err)
	}
	e.port = ln.Addr().(*net.TCPAddr).Port // differs from opts.port with --port 0
	e.url = "http://" + net.JoinHostPort(e.opts.host, strconv.Itoa(e.port))
	return e.build.wrapListener(ln), nil
}

func (e *engine) httpThreads() int {
	if e.opts.threadsHTTP > 0 {
		return e.opts.threadsHTTP
	}
	return e.opts.slotCount() + 2
}

// becomeReady finishes the "load". Synthetic in-flight tasks are submitted
// before the phase flips and the ready lines are logged after it, so neither
// the first 200 from /health nor a reader of the log can see an idle or
// loading server that is about to be busy or ready.
func (e *engine) becomeReady() {
	n := e.opts.slotCount()
	e.log.printf("srv    load_model: initializing slots, n_slots = %d", n)
	for i := range n {
		e.log.printf("slot   load_model: id %2d | task -1 | new slot, n_ctx = %d", i, e.opts.ctxSize)
	}
	for range e.knobs.inflight {
		t := e.submit()
		e.enter() // cannot fail: nothing closes before the main loop returns
		go func() {
			defer e.leave()
			e.process(context.Background(), t, false)
		}()
	}
	e.setPhase(phaseReady)
	if e.knobs.readyStamp {
		e.log.printf("fake: ready at %d", time.Now().UnixNano())
	}
	e.log.printf("main: model loaded")
	e.log.printf("main: server is listening on %s - starting the main loop", e.url)
	if e.knobs.growMiB > 0 {
		go grow(e.knobs.growMiB, e.quit) // a context that outgrows the memory the engine may use
	}
	if e.knobs.inflight == 0 {
		e.log.printf("srv  update_slots: all slots are idle")
	}
}

// drain is the first SIGTERM with the server up: stop accepting, let the
// requests already running end (or their clients leave), then report.
// Build 10573 never finishes a non-streamed request after SIGTERM and waits
// for the client to hang up; the fake lets the request run to its end so a
// drain without a client (FAKE_INFLIGHT) still terminates.
func (e *engine) drain(ctx context.Context, srv *http.Server) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Shutdown(ctx) // returns early only when finish cancels ctx
		e.stopNewWork()
		e.active.Wait()
	}()
	return done
}

// keepAliveTimeout is cpp-httplib's CPPHTTPLIB_KEEPALIVE_TIMEOUT_SECOND.
const keepAliveTimeout = 5 * time.Second

// submit queues a task for a slot. The real server logs the deferral only
// with -v; the fake always does, so tests have an event to wait for.
func (e *engine) submit() *ticket {
	t, deferred := e.sched.submit()
	if deferred {
		e.log.printf("srv  process_single_task: no slot is available, defer task, id_task = %d", t.id)
	}
	return t
}

// process runs one task: it waits for a slot, stays in flight for
// FAKE_REQUEST_DELAY and frees the slot. It reports false when the task was
// cancelled because its client left or the server is going away. A task
// with a client (a request, not FAKE_INFLIGHT) stops generating when a
// 10573 server is told to terminate and then waits for its client to hang
// up, as the real server does with a non-streamed request.
func (e *engine) process(ctx context.Context, t *ticket, client bool) bool {
	if !e.sched.wait(ctx, e.quit, t) {
		return false
	}
	e.log.printf("slot launch_slot_: id %2d | task %d | processing task", t.slot, t.id)
	var terminating <-chan struct{}
	if client {
		terminating = e.terminating
	}
	done := true
	if d := e.knobs.requestDelay; d > 0 {
		timer := e.clk.NewTimer(d)
		select {
		case <-timer.C():
		case <-ctx.Done():
			done = false
		case <-e.quit:
			done = false
		case <-terminating:
		}
		timer.Stop()
	}
	if done && isClosed(terminating) {
		// Stopped generating: no answer, and no exit until the client
		// hangs up (or the process is killed).
		done = false
		select {
		case <-ctx.Done():
		case <-e.quit:
		}
	}
	if done {
		e.log.printf("slot      release: id %2d | task %d | stop processing", t.slot, t.id)
	} else {
		e.log.printf("srv  cancel_tasks: cancel task, id_task = %d", t.id)
	}
	if e.sched.release(t) {
		e.log.printf("srv  update_slots: all slots are idle")
	}
	return done
}

func (e *engine) logLoadFailure(first string) {
	e.log.printf("%s", first)
	e.log.printf("llama_model_load: error loading model: llama_model_loader: failed to load model from %s", e.opts.model)
	e.log.printf("llama_model_load_from_file_impl: failed to load model")
	e.log.printf("common_init_from_params: failed to load model '%s'", e.opts.model)
	e.log.printf("srv    load_model: failed to load model, '%s'", e.opts.model)
	e.log.printf("srv    operator(): operator(): cleaning up before exit...")
	e.log.printf("main: exiting due to model loading error")
}

type modelProblem int

const (
	modelOK modelProblem = iota
	modelUnreadable
	modelNotGGUF
)

// checkModel reads the GGUF magic, the first check the real loader makes.
func checkModel(path string) modelProblem {
	f, err := os.Open(path)
	if err != nil {
		return modelUnreadable
	}
	defer f.Close()
	magic := make([]byte, 4)
	if _, err := io.ReadFull(f, magic); err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) { // a directory, or a read error
			return modelUnreadable
		}
		return modelNotGGUF // shorter than the magic
	}
	if string(magic) != "GGUF" {
		return modelNotGGUF
	}
	return modelOK
}

func writePIDFile(path string) error {
	// Write then rename, so a reader never sees an empty or partial file.
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		return fmt.Errorf("writing FAKE_PID_FILE %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("writing FAKE_PID_FILE %s: %w", path, err)
	}
	return nil
}

// logger writes whole lines to stderr, one writer at a time, as the real
// server's log thread does.
type logger struct {
	mu  sync.Mutex
	w   io.Writer
	off bool // --log-disable
}

func (l *logger) printf(format string, args ...any) {
	if l.off {
		return
	}
	line := fmt.Sprintf(format, args...)
	if !strings.HasSuffix(line, "\n") {
		line += "\n"
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	_, _ = io.WriteString(l.w, line)
}

// Write lets net/http's error log share the line discipline.
func (l *logger) Write(p []byte) (int, error) {
	l.printf("%s", p)
	return len(p), nil
}

// grow allocates mib MiB and writes every page, so that the memory is
// really used (and a memory limit really hit): the kernel's OOM killer
// then ends the process with SIGKILL, as it ends an engine whose KV cache
// outgrows its cgroup.
func grow(mib int, quit <-chan struct{}) {
	var held [][]byte
	for range mib {
		b := make([]byte, 1<<20)
		for i := 0; i < len(b); i += 4096 {
			b[i] = 1
		}
		held = append(held, b)
	}
	<-quit // a process the OOM killer did not end keeps what it took
	runtime.KeepAlive(held)
}
