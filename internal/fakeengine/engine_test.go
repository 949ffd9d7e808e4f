package fakeengine

import (
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	loadingBody   = `{"error":{"code":503,"message":"Loading model","type":"unavailable_error"}}` + "\n"
	okBody        = `{"status":"ok"}` + "\n"
	badKeyBody    = `{"error":{"code":401,"message":"Invalid API Key","type":"authentication_error"}}` + "\n"
	noMetricsBody = "{\"error\":{\"code\":501,\"message\":\"This server does not support metrics endpoint. Start it with `--metrics`\",\"type\":\"not_supported_error\"}}\n"
	noSlotsBody   = "{\"error\":{\"code\":501,\"message\":\"This server does not support slots endpoint. Start it with `--slots`\",\"type\":\"not_supported_error\"}}\n"
	unhealthyBody = `{"error":{"code":500,"message":"fake-llama-server turned unhealthy, as FAKE_UNHEALTHY_AFTER asks","type":"server_error"}}` + "\n"
)

func expect(t *testing.T, what string, got response, code int, body string) {
	t.Helper()
	if got.code != code || (body != "" && got.body != body) {
		t.Errorf("%s = %d %q, want %d %q", what, got.code, got.body, code, body)
	}
}

func TestHealthAnswers503WhileLoadingThen200(t *testing.T) {
	r := startEngine(t, nil, map[string]string{"FAKE_LOAD_DELAY": "5s"})

	expect(t, "GET /health while loading", r.get("/health"), 503, loadingBody)
	expect(t, "GET /slots while loading", r.get("/slots"), 503, loadingBody)
	expect(t, "GET /props while loading", r.get("/props"), 503, loadingBody)
	// Some builds answer /v1/models before /health is 200 (ENGINE-NOTES).
	expect(t, "GET /v1/models while loading", r.get("/v1/models"), 200, "")

	r.waitTimers(1)
	r.clk.Advance(5*time.Second - time.Nanosecond)
	expect(t, "GET /health just before the load delay", r.get("/health"), 503, loadingBody)
	r.clk.Advance(time.Nanosecond)
	r.waitLog("starting the main loop")
	expect(t, "GET /health once loaded", r.get("/health"), 200, okBody)
	expect(t, "GET /v1/health once loaded", r.get("/v1/health"), 200, okBody)
}

func TestHangLoadNeverBecomesReady(t *testing.T) {
	r := startEngine(t, nil, map[string]string{"FAKE_HANG_LOAD": "1", "FAKE_LOAD_DELAY": "1ms"})
	r.waitLog("the model never finishes loading")
	r.clk.Advance(time.Hour)
	expect(t, "GET /health an hour later", r.get("/health"), 503, loadingBody)
}

func TestAPIKeyGuardsEverythingButHealth(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
	}{
		{"key from --api-key", []string{"--api-key", "sekret", "--metrics"}, nil},
		{"key from --api-key=", []string{"--api-key=other,sekret", "--metrics"}, nil},
		{"key from LLAMA_API_KEY", []string{"--metrics"}, map[string]string{"LLAMA_API_KEY": "sekret"}},
	}
	guarded := []struct{ method, path, body string }{
		{"GET", "/slots", ""},
		{"GET", "/metrics", ""},
		{"GET", "/v1/models", ""},
		{"GET", "/props", ""},
		{"POST", "/completion", `{"prompt":"hi"}`},
		{"POST", "/v1/chat/completions", `{"messages":[{"role":"user","content":"hi"}]}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := startEngine(t, tc.args, tc.env)
			r.waitLog("starting the main loop")
			ctx := boundedCtx(t)
			expect(t, "GET /health without a key", r.get("/health"), 200, okBody)
			for _, g := range guarded {
				for _, hdr := range [][]string{nil, {"Authorization", "Bearer wrong"}, {"Authorization", "sekret"}} {
					resp, err := r.do(ctx, g.method, g.path, g.body, hdr...)
					if err != nil {
						t.Fatal(err)
					}
					expect(t, g.method+" "+g.path+" with header "+strings.Join(hdr, ": "), resp, 401, badKeyBody)
				}
				for _, hdr := range [][]string{{"Authorization", "Bearer sekret"}, {"X-Api-Key", "sekret"}} {
					resp, err := r.do(ctx, g.method, g.path, g.body, hdr...)
					if err != nil {
						t.Fatal(err)
					}
					expect(t, g.method+" "+g.path+" with header "+strings.Join(hdr, ": "), resp, 200, "")
				}
			}
			if strings.Contains(r.log.String(), "sekret") {
				t.Errorf("the log shows the api key:\n%s", r.log.String())
			}
		})
	}
}

func TestMetricsNeedsTheMetricsFlag(t *testing.T) {
	r := startEngine(t, nil, nil)
	r.waitLog("starting the main loop")
	expect(t, "GET /metrics without --metrics", r.get("/metrics"), 501, noMetricsBody)
}

func TestMetricsCountProcessingAndDeferredRequests(t *testing.T) {
	r := startEngine(t, []string{"--metrics", "-np", "1"}, map[string]string{"FAKE_REQUEST_DELAY": "1m"})
	r.waitLog("starting the main loop")
	gauges := func() string {
		t.Helper()
		resp := r.get("/metrics")
		if resp.code != 200 {
			t.Fatalf("GET /metrics = %d %q", resp.code, resp.body)
		}
		var out []string
		for _, l := range strings.Split(resp.body, "\n") {
			if strings.HasPrefix(l, "llamacpp:requests_") || strings.HasPrefix(l, "llamacpp:tokens_predicted_total") {
				out = append(out, l)
			}
		}
		return strings.Join(out, ", ")
	}
	if got, want := gauges(), "llamacpp:tokens_predicted_total 0, llamacpp:requests_processing 0, llamacpp:requests_deferred 0"; got != want {
		t.Errorf("idle metrics: %s, want %s", got, want)
	}

	ctx := boundedCtx(t)
	first := r.postAsync(ctx, "/completion", `{"prompt":"a","n_predict":4}`)
	r.waitLog("task 0 | processing task")
	second := r.postAsync(ctx, "/v1/chat/completions", `{"messages":[{"role":"user","content":"b"}],"max_tokens":4}`)
	r.waitLog("defer task, id_task = 1")
	if got, want := gauges(), "llamacpp:tokens_predicted_total 0, llamacpp:requests_processing 1, llamacpp:requests_deferred 1"; got != want {
		t.Errorf("metrics with one request running and one waiting: %s, want %s", got, want)
	}

	r.waitTimers(1)
	r.clk.Advance(time.Minute)
	if res := receive(t, first); res.err != nil || res.resp.code != 200 {
		t.Fatalf("first request: %+v", res)
	}
	r.waitLog("task 1 | processing task")
	if got, want := gauges(), "llamacpp:tokens_predicted_total 4, llamacpp:requests_processing 1, llamacpp:requests_deferred 0"; got != want {
		t.Errorf("metrics once the deferred request runs: %s, want %s", got, want)
	}

	r.waitTimers(1)
	r.clk.Advance(time.Minute)
	res := receive(t, second)
	if res.err != nil || res.resp.code != 200 {
		t.Fatalf("second request: %+v", res)
	}
	type chat struct {
		Choices []struct {
			Message struct{ Role, Content string }
		}
		Usage struct {
			CompletionTokens int `json:"completion_tokens"`
		}
	}
	if c := decode[chat](t, res.resp.body); len(c.Choices) != 1 || c.Choices[0].Message.Content != " fake fake fake fake" || c.Usage.CompletionTokens != 4 {
		t.Errorf("chat answer = %s", res.resp.body)
	}
	r.waitLogN("all slots are idle", 2)
	if got, want := gauges(), "llamacpp:tokens_predicted_total 8, llamacpp:requests_processing 0, llamacpp:requests_deferred 0"; got != want {
		t.Errorf("metrics once both requests ended: %s, want %s", got, want)
	}
}

func TestSlotsShowRequestsInFlight(t *testing.T) {
	type slot struct {
		ID           int  `json:"id"`
		IDTask       int  `json:"id_task"`
		NCtx         int  `json:"n_ctx"`
		IsProcessing bool `json:"is_processing"`
	}
	r := startEngine(t, []string{"-np", "2", "-c", "2048"}, map[string]string{"FAKE_REQUEST_DELAY": "30s"})
	r.waitLog("starting the main loop")
	idle := []slot{{0, -1, 2048, false}, {1, -1, 2048, false}}
	if got := decode[[]slot](t, r.get("/slots").body); !equalSlots(got, idle) {
		t.Errorf("/slots before any request = %+v, want %+v", got, idle)
	}

	answer := r.postAsync(boundedCtx(t), "/completion", `{"prompt":"hello","n_predict":3}`)
	r.waitLog("processing task")
	busy := []slot{{0, 0, 2048, true}, {1, -1, 2048, false}}
	if got := decode[[]slot](t, r.get("/slots").body); !equalSlots(got, busy) {
		t.Errorf("/slots during a request = %+v, want %+v", got, busy)
	}
	expect(t, "GET /slots?fail_on_no_slot=1 with a slot free", r.get("/slots?fail_on_no_slot=1"), 200, "")

	r.waitTimers(1)
	r.clk.Advance(30 * time.Second)
	res := receive(t, answer)
	if res.err != nil || res.resp.code != 200 {
		t.Fatalf("POST /completion = %+v", res)
	}
	body := decode[map[string]any](t, res.resp.body)
	if body["content"] != " fake fake fake" || body["tokens_predicted"] != 3.0 || body["id_slot"] != 0.0 || body["model"] != tinyModel {
		t.Errorf("POST /completion answered %s", res.resp.body)
	}
	r.waitLog("all slots are idle")
	if got := decode[[]slot](t, r.get("/slots").body); !equalSlots(got, idle) {
		t.Errorf("/slots after the request = %+v, want %+v", got, idle)
	}
}

func equalSlots[T comparable](a, b []T) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestNoSlotsAnswers501(t *testing.T) {
	r := startEngine(t, []string{"--no-slots"}, nil)
	r.waitLog("starting the main loop")
	expect(t, "GET /slots with --no-slots", r.get("/slots"), 501, noSlotsBody)
}

func TestCrashAfterExitsWithTheExitCode(t *testing.T) {
	tests := []struct {
		name  string
		env   map[string]string
		after time.Duration
		code  int
	}{
		{"after 30s with exit code 3", map[string]string{"FAKE_CRASH_AFTER": "30s", "FAKE_EXIT_CODE": "3"}, 30 * time.Second, 3},
		{"at once with the default exit code", map[string]string{"FAKE_CRASH_AFTER": "0s"}, 0, 1},
		{"with exit code 0", map[string]string{"FAKE_CRASH_AFTER": "1s", "FAKE_EXIT_CODE": "0"}, time.Second, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := startEngine(t, nil, tc.env)
			r.waitLog("starting the main loop")
			if tc.after > 0 {
				r.waitTimers(1)
				r.clk.Advance(tc.after - time.Nanosecond)
				expect(t, "GET /health just before the crash", r.get("/health"), 200, okBody)
				if !r.running() {
					t.Fatalf("crashed before FAKE_CRASH_AFTER passed; log:\n%s", r.log.String())
				}
				r.clk.Advance(time.Nanosecond)
			}
			if got := r.wait(); got != exitWith(tc.code) {
				t.Errorf("ended with %+v, want exit status %d", got, tc.code)
			}
			want := "fake: fatal: crashing as FAKE_CRASH_AFTER=" + tc.env["FAKE_CRASH_AFTER"] + " asks, exit status " + strconv.Itoa(tc.code)
			if !strings.Contains(r.log.String(), want) {
				t.Errorf("log lacks %q:\n%s", want, r.log.String())
			}
		})
	}
}

func TestUnhealthyAfterTurnsHealth500AndKeepsServing(t *testing.T) {
	r := startEngine(t, nil, map[string]string{"FAKE_UNHEALTHY_AFTER": "10s"})
	r.waitLog("starting the main loop")
	expect(t, "GET /health when ready", r.get("/health"), 200, okBody)
	r.waitTimers(1)
	r.clk.Advance(10 * time.Second)
	r.waitLog("/health answers 500 from now on")
	expect(t, "GET /health once unhealthy", r.get("/health"), 500, unhealthyBody)
	expect(t, "GET /props once unhealthy", r.get("/props"), 200, "")
	r.clk.Advance(time.Hour)
	expect(t, "GET /health an hour later", r.get("/health"), 500, unhealthyBody)
	if !r.running() {
		t.Fatal("the server ended after turning unhealthy")
	}
	r.signal(syscall.SIGTERM)
	if got := r.wait(); got != exitWith(0) {
		t.Errorf("SIGTERM to an unhealthy server: ended with %+v, want exit status 0", got)
	}
}

func TestCrashTimesLimitsFaultsToTheFirstStarts(t *testing.T) {
	counter := filepath.Join(t.TempDir(), "starts")
	env := map[string]string{
		"FAKE_CRASH_ON_START": "1",
		"FAKE_CRASH_TIMES":    "2",
		"FAKE_COUNTER_FILE":   counter,
		"FAKE_EXIT_CODE":      "7",
	}
	for start := 1; start <= 2; start++ {
		r := startEngine(t, nil, env)
		if got := r.wait(); got != exitWith(7) {
			t.Fatalf("start %d ended with %+v, want exit status 7", start, got)
		}
		for _, want := range []string{"fake: start " + strconv.Itoa(start) + ", fault knobs on", "fake: fatal: crashing on start as FAKE_CRASH_ON_START asks, exit status 7"} {
			if !strings.Contains(r.log.String(), want) {
				t.Errorf("start %d: log lacks %q:\n%s", start, want, r.log.String())
			}
		}
		if strings.Contains(r.log.String(), "HTTP server is listening") {
			t.Errorf("start %d listened before crashing on start", start)
		}
	}
	r := startEngine(t, nil, env)
	r.waitLog("fake: start 3, fault knobs off")
	r.waitLog("starting the main loop")
	expect(t, "GET /health on the third start", r.get("/health"), 200, okBody)
	if b, err := os.ReadFile(counter); err != nil || string(b) != "3\n" {
		t.Errorf("counter file holds %q (%v), want \"3\\n\"", b, err)
	}
}

func TestCrashTimesAlsoLimitsCrashAfter(t *testing.T) {
	counter := filepath.Join(t.TempDir(), "starts")
	env := map[string]string{"FAKE_CRASH_AFTER": "0s", "FAKE_CRASH_TIMES": "1", "FAKE_COUNTER_FILE": counter}
	if got := startEngine(t, nil, env).wait(); got != exitWith(1) {
		t.Fatalf("first start ended with %+v, want exit status 1", got)
	}
	r := startEngine(t, nil, env)
	r.waitLog("starting the main loop")
	expect(t, "GET /health on the second start", r.get("/health"), 200, okBody)
}

func TestCounterFileCountsConcurrentStarts(t *testing.T) {
	counter := filepath.Join(t.TempDir(), "starts")
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if _, err := countStart(counter); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if b, _ := os.ReadFile(counter); string(b) != "8\n" {
		t.Errorf("after 8 concurrent starts the counter holds %q, want \"8\\n\"", b)
	}
}

func TestCounterFileWithGarbageIsAnError(t *testing.T) {
	counter := filepath.Join(t.TempDir(), "starts")
	if err := os.WriteFile(counter, []byte("many"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := startEngine(t, nil, map[string]string{"FAKE_COUNTER_FILE": counter})
	if got := r.wait(); got != exitWith(1) {
		t.Errorf("ended with %+v, want exit status 1", got)
	}
	want := `fake: error: FAKE_COUNTER_FILE ` + counter + ` holds "many", not a start count: remove it to start from zero`
	if !strings.Contains(r.log.String(), want) {
		t.Errorf("log lacks %q:\n%s", want, r.log.String())
	}
}

func TestModelThatCannotLoadAborts(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	notGGUF := write("weights.bin", "PK\x03\x04 a zip, not a model")
	short := write("short.gguf", "GG")
	tests := []struct {
		name       string
		model      string
		loading503 bool // answers 503 before dying
		firstLine  string
	}{
		{"missing file", filepath.Join(dir, "absent.gguf"), false, "gguf_init_from_file: failed to open GGUF file"},
		{"directory", dir, false, "gguf_init_from_file: failed to open GGUF file"},
		{"no GGUF magic", notGGUF, true, "invalid magic characters"},
		{"shorter than the magic", short, true, "invalid magic characters"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := startEngineRaw(t, []string{"-m", tc.model, "--port", "0"}, map[string]string{"FAKE_LOAD_DELAY": "50ms"})
			if tc.loading503 {
				expect(t, "GET /health while the bad model loads", r.get("/health"), 503, loadingBody)
				r.waitTimers(1)
				r.clk.Advance(50 * time.Millisecond)
			}
			if got := r.wait(); got != killedBy(syscall.SIGABRT) || got.status() != 134 {
				t.Errorf("ended with %+v (status %d), want death by SIGABRT (134)", got, got.status())
			}
			for _, want := range []string{tc.firstLine, "failed to load model '" + tc.model + "'", "main: exiting due to model loading error"} {
				if !strings.Contains(r.log.String(), want) {
					t.Errorf("log lacks %q:\n%s", want, r.log.String())
				}
			}
		})
	}
}

func TestDefaultModelPathIsTriedWithoutDashM(t *testing.T) {
	r := startEngineRaw(t, []string{"--port", "0"}, nil)
	if got := r.wait(); got != killedBy(syscall.SIGABRT) {
		t.Errorf("ended with %+v, want death by SIGABRT", got)
	}
	if want := "failed to load model 'models/7B/ggml-model-f16.gguf'"; !strings.Contains(r.log.String(), want) {
		t.Errorf("log lacks %q:\n%s", want, r.log.String())
	}
}

func TestSkipModelCheckAcceptsAnyPath(t *testing.T) {
	r := startEngineRaw(t, []string{"-m", "/no/such/model.gguf", "--port", "0"}, map[string]string{"FAKE_SKIP_MODEL_CHECK": "1"})
	r.waitLog("starting the main loop")
	expect(t, "GET /health", r.get("/health"), 200, okBody)
}

func TestPortInUseExits1(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	r := startEngineRaw(t, []string{"-m", tinyModel, "--port", port}, nil)
	if got := r.wait(); got != exitWith(1) {
		t.Errorf("ended with %+v, want exit status 1", got)
	}
	if want := "couldn't bind HTTP server socket, hostname: 127.0.0.1, port: " + port; !strings.Contains(r.log.String(), want) {
		t.Errorf("log lacks %q:\n%s", want, r.log.String())
	}
}

func TestSignals(t *testing.T) {
	t.Run("SIGTERM when idle exits 0", func(t *testing.T) {
		r := startEngine(t, nil, nil)
		r.waitLog("starting the main loop")
		r.signal(syscall.SIGTERM)
		if got := r.wait(); got != exitWith(0) {
			t.Errorf("ended with %+v, want exit status 0", got)
		}
		if !strings.Contains(r.log.String(), "cleaning up before exit...") {
			t.Errorf("log lacks the clean-up line:\n%s", r.log.String())
		}
	})
	for _, s := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(s.String()+" while loading kills by that signal", func(t *testing.T) {
			r := startEngine(t, nil, map[string]string{"FAKE_LOAD_DELAY": "1h"})
			r.waitLog("loading model")
			r.signal(s)
			if got := r.wait(); got != killedBy(s) || got.status() != 128+int(s) {
				t.Errorf("ended with %+v (status %d), want death by %v", got, got.status(), s)
			}
		})
	}
	t.Run("SIGTERM with a request in flight stops it and never answers it", func(t *testing.T) {
		r := startEngine(t, nil, map[string]string{"FAKE_REQUEST_DELAY": "1m"})
		r.waitLog("starting the main loop")
		ctx, hangUp := context.WithCancel(boundedCtx(t))
		answer := r.postAsync(ctx, "/completion", `{"prompt":"hi"}`)
		r.waitLog("processing task")
		r.waitTimers(1)
		r.signal(syscall.SIGTERM)
		r.waitLog("cleaning up before exit...")
		if conn, err := net.Dial("tcp", strings.TrimPrefix(r.url, "http://")); err == nil {
			conn.Close()
			t.Error("a new connection was accepted after SIGTERM")
		}
		// The request's time passes: build 10573 still neither answers
		// nor exits; only the client hanging up ends it.
		r.clk.Advance(time.Minute)
		if !r.running() {
			t.Fatal("the server ended with a request in flight")
		}
		hangUp()
		if res := receive(t, answer); res.err == nil && res.resp.code == 200 {
			t.Errorf("the request in flight was answered after SIGTERM: %+v", res)
		}
		if got := r.wait(); got != exitWith(0) {
			t.Errorf("ended with %+v, want exit status 0", got)
		}
	})
	t.Run("SIGTERM with a request in flight ends when the client hangs up", func(t *testing.T) {
		r := startEngine(t, nil, map[string]string{"FAKE_REQUEST_DELAY": "1h"})
		r.waitLog("starting the main loop")
		ctx, hangUp := context.WithCancel(boundedCtx(t))
		answer := r.postAsync(ctx, "/completion", `{"prompt":"hi"}`)
		r.waitLog("processing task")
		r.signal(syscall.SIGTERM)
		r.waitLog("cleaning up before exit...")
		hangUp()
		receive(t, answer)
		r.waitLog("cancel task, id_task = 0")
		if got := r.wait(); got != exitWith(0) {
			t.Errorf("ended with %+v, want exit status 0", got)
		}
	})
	t.Run("second SIGTERM exits 1 at once", func(t *testing.T) {
		r := startEngine(t, nil, map[string]string{"FAKE_REQUEST_DELAY": "1h"})
		r.waitLog("starting the main loop")
		answer := r.postAsync(boundedCtx(t), "/completion", `{"prompt":"hi"}`)
		r.waitLog("processing task")
		r.signal(syscall.SIGTERM)
		r.waitLog("cleaning up before exit...")
		r.signal(syscall.SIGTERM)
		if got := r.wait(); got != exitWith(1) {
			t.Errorf("ended with %+v, want exit status 1", got)
		}
		if !strings.Contains(r.log.String(), "Received second interrupt, terminating immediately.") {
			t.Errorf("log lacks the second-interrupt line:\n%s", r.log.String())
		}
		if res := receive(t, answer); res.err == nil {
			t.Errorf("the request in flight got %+v, want its connection closed", res.resp)
		}
	})
	t.Run("FAKE_IGNORE_SIGTERM ignores SIGTERM and SIGINT", func(t *testing.T) {
		r := startEngine(t, nil, map[string]string{"FAKE_IGNORE_SIGTERM": "1", "FAKE_LOAD_DELAY": "1s"})
		r.waitLog("loading model")
		r.signal(syscall.SIGTERM)
		r.waitLog("ignoring terminated")
		r.waitTimers(1)
		r.clk.Advance(time.Second)
		r.waitLog("starting the main loop")
		r.signal(syscall.SIGTERM)
		r.signal(syscall.SIGINT)
		r.waitLog("ignoring interrupt")
		expect(t, "GET /health after ignored signals", r.get("/health"), 200, okBody)
		r.kill()
		if got := r.wait(); got != killedBy(syscall.SIGKILL) {
			t.Errorf("ended with %+v, want death by SIGKILL", got)
		}
	})
}

func TestInflightKnobHoldsSlotsWithoutAClient(t *testing.T) {
	r := startEngine(t, []string{"-np", "1", "--metrics"}, map[string]string{"FAKE_INFLIGHT": "2", "FAKE_REQUEST_DELAY": "10s"})
	r.waitLog("starting the main loop")
	type slot struct {
		IsProcessing bool `json:"is_processing"`
	}
	if got := decode[[]slot](t, r.get("/slots").body); len(got) != 1 || !got[0].IsProcessing {
		t.Errorf("/slots right after ready = %+v, want one busy slot", got)
	}
	metrics := r.get("/metrics").body
	for _, want := range []string{"llamacpp:requests_processing 1\n", "llamacpp:requests_deferred 1\n"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q:\n%s", want, metrics)
		}
	}
	r.signal(syscall.SIGTERM)
	r.waitLog("cleaning up before exit...")
	r.waitTimers(1)
	r.clk.Advance(10 * time.Second)
	r.waitLog("task 1 | processing task")
	r.waitTimers(1)
	if !r.running() {
		t.Fatal("ended with a synthetic request still in flight")
	}
	r.clk.Advance(10 * time.Second)
	if got := r.wait(); got != exitWith(0) {
		t.Errorf("ended with %+v, want exit status 0", got)
	}
}

func TestPIDFileHoldsOwnPID(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "engine.pid")
	r := startEngine(t, nil, map[string]string{"FAKE_PID_FILE": pidFile})
	if r.url == "" {
		t.Fatalf("never listened; log:\n%s", r.log.String())
	}
	if b, err := os.ReadFile(pidFile); err != nil || string(b) != strconv.Itoa(os.Getpid())+"\n" {
		t.Errorf("pid file holds %q (%v), want %d", b, err, os.Getpid())
	}
}

func TestUnixSocketHost(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "engine.sock")
	r := startEngineRaw(t, []string{"-m", tinyModel, "--host", sock}, nil)
	r.waitLog("starting the main loop")
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	defer hc.CloseIdleConnections()
	resp, err := hc.Get("http://engine/health")
	if err != nil {
		t.Fatalf("GET /health over %s: %v", sock, err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("GET /health over the unix socket = %d, want 200", resp.StatusCode)
	}
}
