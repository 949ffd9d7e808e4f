package fakeengine

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
)

func (e *engine) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", e.handleHealth)
	mux.HandleFunc("GET /v1/health", e.handleHealth)
	mux.HandleFunc("GET /models", e.handleModels)
	mux.HandleFunc("GET /v1/models", e.handleModels)
	mux.HandleFunc("GET /props", e.handleProps)
	mux.HandleFunc("GET /slots", e.handleSlots)
	mux.HandleFunc("GET /metrics", e.handleMetrics)
	mux.HandleFunc("POST /completion", e.handleCompletion)
	mux.HandleFunc("POST /completions", e.handleCompletion)
	mux.HandleFunc("POST /v1/chat/completions", e.handleChat)
	mux.HandleFunc("POST /chat/completions", e.handleChat)
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		writeError(w, http.StatusNotFound, "File Not Found", "not_found_error")
	})
	// The real server checks the key before the loading state.
	return e.build.splitWrites(e.logRequests(e.requireKey(e.gateLoading(mux))))
}

func isHealthPath(p string) bool { return p == "/health" || p == "/v1/health" }

// logRequests writes one line per request, as llama-server's log_server_r
// does, and counts the request as work the process must wait for.
func (e *engine) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !e.enter() {
			writeError(w, http.StatusServiceUnavailable, "Server is shutting down", "unavailable_error")
			return
		}
		defer e.leave()
		rec := &statusRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		status := fmt.Sprint(rec.status)
		switch {
		case rec.status != 0:
		case rec.dropped:
			status = "(dropped)"
		default:
			status = "200"
		}
		host, _, err := net.SplitHostPort(r.RemoteAddr)
		if err != nil {
			host = r.RemoteAddr
		}
		e.log.printf("srv  log_server_r: request: %s %s %s %s", r.Method, r.URL.Path, host, status)
	})
}

type statusRecorder struct {
	http.ResponseWriter
	status  int
	dropped bool
}

// Unwrap lets http.ResponseController reach the connection.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// drop closes the request's connection without an answer, as llama-server
// does to a request it abandons. Returning from a handler without writing
// would make net/http send an empty 200 instead.
func drop(w http.ResponseWriter) {
	if rec, ok := w.(*statusRecorder); ok {
		rec.dropped = true
	}
	conn, _, err := http.NewResponseController(w).Hijack()
	if err == nil {
		_ = conn.Close()
	}
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(p []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(p)
}

// requireKey answers 401 to everything but /health when an api key is set
// and the request does not carry it ("Authorization: Bearer KEY", or the
// X-Api-Key header the real server also accepts).
func (e *engine) requireKey(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(e.opts.apiKeys) > 0 && !isHealthPath(r.URL.Path) && !e.keyOK(r) {
			writeError(w, http.StatusUnauthorized, "Invalid API Key", "authentication_error")
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (e *engine) keyOK(r *http.Request) bool {
	got := r.Header.Get("X-Api-Key")
	if auth, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		got = auth
	}
	if got == "" {
		return false
	}
	for _, k := range e.opts.apiKeys {
		if subtle.ConstantTimeCompare([]byte(got), []byte(k)) == 1 {
			return true
		}
	}
	return false
}

// gateLoading answers 503 "Loading model" until the model is loaded. It lets
// /v1/models through: some builds answer it before /health turns 200, which
// is why readiness must be gated on /health (ENGINE-NOTES).
func (e *engine) gateLoading(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		if e.currentPhase() == phaseLoading && !isHealthPath(p) && p != "/models" && p != "/v1/models" {
			writeError(w, http.StatusServiceUnavailable, "Loading model", "unavailable_error")
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (e *engine) handleHealth(w http.ResponseWriter, _ *http.Request) {
	switch e.currentPhase() {
	case phaseLoading:
		writeError(w, http.StatusServiceUnavailable, "Loading model", "unavailable_error")
	case phaseUnhealthy:
		writeError(w, http.StatusInternalServerError, "fake-llama-server turned unhealthy, as FAKE_UNHEALTHY_AFTER asks", "server_error")
	default:
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	}
}

func (e *engine) handleModels(w http.ResponseWriter, _ *http.Request) {
	type model struct {
		ID      string `json:"id"`
		Object  string `json:"object"`
		Created int64  `json:"created"`
		OwnedBy string `json:"owned_by"`
	}
	writeJSON(w, http.StatusOK, struct {
		Object string  `json:"object"`
		Data   []model `json:"data"`
	}{"list", []model{{e.opts.modelID(), "model", e.started.Unix(), "llamacpp"}}})
}

func (e *engine) handleProps(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"default_generation_settings": map[string]any{"n_ctx": e.opts.ctxSize, "params": map[string]any{"n_predict": e.opts.nPredict, "temperature": e.opts.temp, "seed": e.opts.seed}},
		"total_slots":                 e.opts.slotCount(),
		"model_path":                  e.opts.model,
		"model_alias":                 e.opts.modelID(),
		"build_info":                  e.build.info(),
		"chat_template":               "",
	})
}

func (e *engine) handleSlots(w http.ResponseWriter, r *http.Request) {
	if !e.opts.slots {
		writeError(w, http.StatusNotImplemented, "This server does not support slots endpoint. Start it with `--slots`", "not_supported_error")
		return
	}
	views, _ := e.sched.snapshot()
	type slot struct {
		ID           int  `json:"id"`
		IDTask       int  `json:"id_task"`
		NCtx         int  `json:"n_ctx"`
		Speculative  bool `json:"speculative"`
		IsProcessing bool `json:"is_processing"`
	}
	out := make([]slot, len(views))
	idle := false
	for i, v := range views {
		out[i] = slot{ID: i, IDTask: v.task, NCtx: e.opts.ctxSize, IsProcessing: v.processing}
		idle = idle || !v.processing
	}
	if r.URL.Query().Get("fail_on_no_slot") != "" && !idle {
		writeError(w, http.StatusServiceUnavailable, "no slot available", "unavailable_error")
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (e *engine) handleMetrics(w http.ResponseWriter, _ *http.Request) {
	if !e.opts.metrics {
		writeError(w, http.StatusNotImplemented, "This server does not support metrics endpoint. Start it with `--metrics`", "not_supported_error")
		return
	}
	views, deferred := e.sched.snapshot()
	busy := 0
	for _, v := range views {
		if v.processing {
			busy++
		}
	}
	e.mu.Lock()
	st := e.stats
	e.mu.Unlock()
	busyPerDecode := 0.0
	if st.decodes > 0 {
		busyPerDecode = 1
	}
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	w.WriteHeader(http.StatusOK)
	for _, m := range []struct {
		name, kind, help string
		value            float64
	}{
		{"prompt_tokens_total", "counter", "Number of prompt tokens processed.", float64(st.promptTokens)},
		{"prompt_seconds_total", "counter", "Prompt process time", 0},
		{"tokens_predicted_total", "counter", "Number of generation tokens processed.", float64(st.predictedTokens)},
		{"tokens_predicted_seconds_total", "counter", "Predict process time", 0},
		{"n_decode_total", "counter", "Total number of llama_decode() calls", float64(st.decodes)},
		{"n_busy_slots_per_decode", "counter", "Average number of busy slots per llama_decode() call", busyPerDecode},
		{"prompt_tokens_seconds", "gauge", "Average prompt throughput in tokens/s.", 0},
		{"predicted_tokens_seconds", "gauge", "Average generation throughput in tokens/s.", 0},
		{"requests_processing", "gauge", "Number of requests processing.", float64(busy)},
		{"requests_deferred", "gauge", "Number of requests deferred.", float64(deferred)},
	} {
		fmt.Fprintf(w, "# HELP llamacpp:%s %s\n# TYPE llamacpp:%s %s\nllamacpp:%s %g\n", m.name, m.help, m.name, m.kind, m.name, m.value)
	}
}

// completionRequest holds the fields of /completion and
// /v1/chat/completions bodies that the fake looks at.
type completionRequest struct {
	Prompt    json.RawMessage   `json:"prompt"`
	Messages  []json.RawMessage `json:"messages"`
	NPredict  *int              `json:"n_predict"`
	MaxTokens *int              `json:"max_tokens"`
	Stream    bool              `json:"stream"`
}

// readCompletion decodes and checks a request body; on a bad one it has
// already answered and returns false.
func (e *engine) readCompletion(w http.ResponseWriter, r *http.Request, chat bool) (req completionRequest, promptTokens, predict int, ok bool) {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
	if err := dec.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("invalid JSON body: %v", err), "invalid_request_error")
		return req, 0, 0, false
	}
	if req.Stream {
		writeError(w, http.StatusBadRequest, `streaming is not supported by fake-llama-server: send "stream": false`, "invalid_request_error")
		return req, 0, 0, false
	}
	switch {
	case chat && len(req.Messages) == 0:
		writeError(w, http.StatusBadRequest, `"messages" must be a non-empty array`, "invalid_request_error")
		return req, 0, 0, false
	case !chat && (len(req.Prompt) == 0 || string(req.Prompt) == "null"):
		writeError(w, http.StatusBadRequest, `"prompt" must be provided`, "invalid_request_error")
		return req, 0, 0, false
	}
	size := len(req.Prompt)
	for _, m := range req.Messages {
		size += len(m)
	}
	// Roughly four bytes a token; only the counters in /metrics see it.
	promptTokens = size/4 + 1
	predict = 16
	if e.opts.nPredict > 0 {
		predict = e.opts.nPredict
	}
	for _, n := range []*int{req.NPredict, req.MaxTokens} {
		if n != nil && *n > 0 {
			predict = min(*n, 4096)
		}
	}
	return req, promptTokens, predict, true
}

// runTask holds a slot for the request; false means the client left or the
// server is going away, and there is no one to answer.
func (e *engine) runTask(ctx context.Context, promptTokens, predict int) (t *ticket, ok bool) {
	t = e.submit()
	if !e.process(ctx, t, true) {
		return t, false
	}
	e.mu.Lock()
	e.stats.promptTokens += promptTokens
	e.stats.predictedTokens += predict
	e.stats.decodes += predict
	e.mu.Unlock()
	return t, true
}

func fakeText(tokens int) string { return strings.Repeat(" fake", tokens) }

func (e *engine) handleCompletion(w http.ResponseWriter, r *http.Request) {
	_, promptTokens, predict, ok := e.readCompletion(w, r, false)
	if !ok {
		return
	}
	t, ok := e.runTask(r.Context(), promptTokens, predict)
	if !ok {
		drop(w)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"index":               0,
		"content":             fakeText(predict),
		"id_slot":             t.slot,
		"stop":                true,
		"model":               e.opts.modelID(),
		"tokens_predicted":    predict,
		"tokens_evaluated":    promptTokens,
		"generation_settings": map[string]any{"n_ctx": e.opts.ctxSize, "n_predict": predict},
		"stop_type":           "limit",
		"truncated":           false,
		"tokens_cached":       promptTokens,
		"timings":             map[string]any{"prompt_n": promptTokens, "predicted_n": predict},
	})
}

func (e *engine) handleChat(w http.ResponseWriter, r *http.Request) {
	_, promptTokens, predict, ok := e.readCompletion(w, r, true)
	if !ok {
		return
	}
	t, ok := e.runTask(r.Context(), promptTokens, predict)
	if !ok {
		drop(w)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"id":                 fmt.Sprintf("chatcmpl-%d", t.id),
		"object":             "chat.completion",
		"created":            e.clk.Now().Unix(),
		"model":              e.opts.modelID(),
		"system_fingerprint": e.build.info(),
		"choices": []map[string]any{{
			"index":         0,
			"message":       map[string]string{"role": "assistant", "content": fakeText(predict)},
			"finish_reason": "length",
		}},
		"usage":   map[string]int{"prompt_tokens": promptTokens, "completion_tokens": predict, "total_tokens": promptTokens + predict},
		"timings": map[string]any{"prompt_n": promptTokens, "predicted_n": predict},
	})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// writeError answers in llama-server's error shape.
func writeError(w http.ResponseWriter, code int, message, typ string) {
	type body struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
		Type    string `json:"type"`
	}
	writeJSON(w, code, struct {
		Error body `json:"error"`
	}{body{code, message, typ}})
}
