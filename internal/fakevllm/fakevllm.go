package fakevllm

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Version is what `vllm --version` prints.
const Version = "0.6.3.post1"

// Main runs the fake with os.Args[1:] and exits the process.
func Main() {
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	os.Exit(Run(os.Args[1:], os.Getenv, os.Stdout, os.Stderr, sigs))
}

type options struct {
	model, served, host, apiKey string
	port                        int
}

// takesValue lists the flags of vllm serve that the fake knows; each takes
// a value.
var takesValue = map[string]bool{"--host": true, "--port": true, "--served-model-name": true, "--max-model-len": true,
	"--tensor-parallel-size": true, "--gpu-memory-utilization": true, "--revision": true, "--api-key": true, "--model": true}

func parseArgs(args []string, env func(string) string) (options, error) {
	o := options{host: "0.0.0.0", port: 8000, apiKey: env("VLLM_API_KEY")}
	if len(args) == 0 || args[0] != "serve" {
		return o, errors.New("usage: vllm [-h] [-v] {chat,complete,serve,bench} ...")
	}
	rest := args[1:]
	if len(rest) > 0 && !strings.HasPrefix(rest[0], "-") {
		o.model, rest = rest[0], rest[1:]
	}
	var unknown []string
	for i := 0; i < len(rest); i++ {
		name, value, inline := strings.Cut(rest[i], "=")
		if !takesValue[name] {
			unknown = append(unknown, rest[i])
			continue
		}
		if !inline {
			if i+1 >= len(rest) {
				return o, fmt.Errorf("vllm serve: error: argument %s: expected one argument", name)
			}
			i++
			value = rest[i]
		}
		switch name {
		case "--host":
			o.host = value
		case "--port":
			p, err := strconv.Atoi(value)
			if err != nil {
				return o, fmt.Errorf("vllm serve: error: argument --port: invalid int value: '%s'", value)
			}
			o.port = p
		case "--served-model-name":
			o.served = value
		case "--api-key":
			o.apiKey = value
		case "--model":
			o.model = value
		}
	}
	if len(unknown) > 0 {
		return o, fmt.Errorf("vllm: error: unrecognized arguments: %s", strings.Join(unknown, " "))
	}
	if o.model == "" {
		o.model = "facebook/opt-125m" // vLLM's own default
	}
	if o.served == "" {
		o.served = o.model
	}
	return o, nil
}

func duration(env func(string) string, name string, def time.Duration) (time.Duration, error) {
	v := env(name)
	if v == "" {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%s=%q is not a duration such as 150ms", name, v)
	}
	return d, nil
}

// Run is Main's testable core; it returns the exit status.
func Run(args []string, env func(string) string, stdout, stderr io.Writer, sigs <-chan os.Signal) int {
	if len(args) == 1 && (args[0] == "--version" || args[0] == "-v") {
		fmt.Fprintln(stdout, Version)
		return 0
	}
	o, err := parseArgs(args, env)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	load, err := duration(env, "FAKE_LOAD_DELAY", 20*time.Millisecond)
	if err == nil {
		var d time.Duration
		if d, err = duration(env, "FAKE_REQUEST_DELAY", 0); err == nil {
			s := &server{opts: o, requestDelay: d, log: stderr}
			var n int
			if v := env("FAKE_INFLIGHT"); v != "" {
				if n, err = strconv.Atoi(v); err != nil || n < 0 {
					err = fmt.Errorf("FAKE_INFLIGHT=%q is not a count", v)
				}
			}
			if err == nil {
				return s.serve(load, n, sigs)
			}
		}
	}
	fmt.Fprintln(stderr, err)
	return 1
}

type server struct {
	opts         options
	requestDelay time.Duration
	log          io.Writer

	mu      sync.Mutex
	running int
}

func (s *server) logf(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fmt.Fprintf(s.log, format+"\n", args...)
}

func (s *server) serve(load time.Duration, synthetic int, sigs <-chan os.Signal) int {
	s.logf("INFO api_server.py: vLLM API server version %s", Version)
	s.logf("INFO model_runner.py: Loading model weights for %s", s.opts.model)
	select {
	case <-time.After(load):
	case sig := <-sigs:
		s.logf("INFO: received %v while loading; exiting", sig)
		return 1
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(s.opts.host, strconv.Itoa(s.opts.port)))
	if err != nil {
		s.logf("ERROR: [Errno 98] error while attempting to bind on address ('%s', %d): address already in use", s.opts.host, s.opts.port)
		return 1
	}
	srv := &http.Server{Handler: s.routes()}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
	s.logf("INFO: Uvicorn running on http://%s (Press CTRL+C to quit)", ln.Addr())
	var work sync.WaitGroup
	for range synthetic {
		work.Go(func() { s.complete(context.Background()) })
	}

	<-sigs
	s.logf("INFO: Shutting down")
	shut := make(chan struct{})
	go func() {
		defer close(shut)
		_ = srv.Shutdown(context.Background()) // waits for requests in flight
		work.Wait()
	}()
	select {
	case <-shut:
	case sig := <-sigs:
		if sig == syscall.SIGINT { // uvicorn: a second Ctrl-C forces the exit
			s.logf("INFO: Forced exit")
			return 1
		}
		<-shut
	}
	<-done
	s.logf("INFO: Finished server process [%d]", os.Getpid())
	return 0
}

// complete is one request's work: the gauge counts it while it runs.
func (s *server) complete(ctx context.Context) {
	s.mu.Lock()
	s.running++
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.running--
		s.mu.Unlock()
	}()
	select {
	case <-time.After(s.requestDelay):
	case <-ctx.Done():
	}
	s.logf("INFO: Finished request")
}

func (s *server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	mux.HandleFunc("GET /metrics", s.metrics)
	mux.HandleFunc("GET /v1/models", s.auth(s.models))
	mux.HandleFunc("POST /v1/completions", s.auth(s.completions))
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusNotFound, map[string]any{"detail": "Not Found"})
	})
	return mux
}

func (s *server) auth(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		got, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if s.opts.apiKey != "" && subtle.ConstantTimeCompare([]byte(got), []byte(s.opts.apiKey)) != 1 {
			writeJSON(w, http.StatusUnauthorized, map[string]any{"error": "Unauthorized"})
			return
		}
		next(w, r)
	}
}

func (s *server) metrics(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	running := s.running
	s.mu.Unlock()
	label := fmt.Sprintf("{model_name=%q}", s.opts.served)
	fmt.Fprintf(w, "# HELP vllm:num_requests_running Number of requests currently running on GPU.\n# TYPE vllm:num_requests_running gauge\nvllm:num_requests_running%s %d.0\n", label, running)
	fmt.Fprintf(w, "# HELP vllm:num_requests_waiting Number of requests waiting to be processed.\n# TYPE vllm:num_requests_waiting gauge\nvllm:num_requests_waiting%s 0.0\n", label)
}

func (s *server) models(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": []any{map[string]any{
		"id": s.opts.served, "object": "model", "owned_by": "vllm", "root": s.opts.model, "parent": nil,
	}}})
}

func (s *server) completions(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Model     string `json:"model"`
		Prompt    string `json:"prompt"`
		MaxTokens int    `json:"max_tokens"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]any{"object": "error", "message": err.Error(), "type": "BadRequestError", "code": 400})
		return
	}
	if req.Model != s.opts.served {
		writeJSON(w, http.StatusNotFound, map[string]any{"object": "error",
			"message": fmt.Sprintf("The model `%s` does not exist.", req.Model), "type": "NotFoundError", "code": 404})
		return
	}
	s.complete(r.Context())
	text := " Paris."
	if strings.Contains(req.Prompt, "2+2") {
		text = " 4"
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "text_completion", "model": s.opts.served,
		"choices": []any{map[string]any{"index": 0, "text": text, "logprobs": nil, "finish_reason": "length"}}})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
