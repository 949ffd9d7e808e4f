package supervisor

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestSumGaugesAddsEveryLabelSet(t *testing.T) {
	body := `# HELP vllm:num_requests_running Number of requests currently running on GPU.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{model_name="a"} 2.0
vllm:num_requests_running{model_name="b {x}"} 1.0
vllm:num_requests_running_total 7
vllm:num_requests_waiting{model_name="a",note="say \"}\""} 3 1700000000
vllm:num_requests_waiting{model_name="c"} NaN
`
	n, ok := sumGauges([]byte(body), []string{"vllm:num_requests_running", "vllm:num_requests_waiting"})
	if !ok || n != 6 {
		t.Fatalf("sumGauges = %d, %v; want 6 (2+1+3: another metric with a longer name, and NaN, do not count)", n, ok)
	}
	if _, ok := sumGauges([]byte("other 1\n"), []string{"vllm:num_requests_running"}); ok {
		t.Fatal("sumGauges found a gauge that is not there")
	}
}

func TestJSONAtWalksObjectsAndArrays(t *testing.T) {
	body := []byte(`{"data":[{"id":"qwen","root":"/m/qwen"}],"n":1}`)
	if got, err := jsonStringAt(body, "data.0.root"); err != nil || got != "/m/qwen" {
		t.Fatalf("data.0.root = %q, %v", got, err)
	}
	for path, want := range map[string]string{
		"data.1.root": `the answer has no data.1.root: "{\"data\":[{\"id\":\"qwen\",\"root\":\"/m/qwen\"}],\"n\":1}"`,
		"n":           `the answer's n is not a string: "{\"data\":[{\"id\":\"qwen\",\"root\":\"/m/qwen\"}],\"n\":1}"`,
	} {
		if _, err := jsonStringAt(body, path); err == nil || err.Error() != want {
			t.Errorf("%s: error %v\nwant %s", path, err, want)
		}
	}
	if _, err := jsonStringAt([]byte("<html>"), "x"); err == nil || err.Error() != `the answer is not JSON: "<html>"` {
		t.Errorf("not JSON: %v", err)
	}
}

// vllmProtocol is what the example vLLM provider declares.
func vllmProtocol(model string) Protocol {
	return Protocol{
		ReadyStatus: []int{200},
		Identity:    &IdentityProbe{Path: "/v1/models", Field: "data.0.root", Expect: model},
		InFlight:    []InFlightProbe{{Path: "/metrics", Gauges: []string{"vllm:num_requests_running", "vllm:num_requests_waiting"}}},
		Completion: &CompletionProbe{Path: "/v1/completions", PromptField: "prompt", MaxTokensField: "max_tokens",
			Fixed: map[string]string{"model": "qwen"}, TextField: "choices.0.text"},
	}
}

func TestHTTPProberFollowsTheProviderProtocol(t *testing.T) {
	var completionBody string
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/models", func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte(`{"object":"list","data":[{"id":"qwen","root":"Qwen/Qwen2.5-7B"}]}`))
	})
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte("vllm:num_requests_running{model_name=\"qwen\"} 1.0\nvllm:num_requests_waiting{model_name=\"qwen\"} 2.0\n"))
	})
	mux.HandleFunc("POST /v1/completions", func(w http.ResponseWriter, r *http.Request) {
		b := make([]byte, 512)
		n, _ := r.Body.Read(b)
		completionBody = string(b[:n])
		w.Write([]byte(`{"choices":[{"index":0,"text":" Paris."}]}`))
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	p := NewHTTPProber()
	p.Proc = t.TempDir() // no /proc/net: only the identity probe speaks
	tgt := Target{BaseURL: srv.URL, Host: "127.0.0.1", Port: 8000, PID: 42, Protocol: vllmProtocol("Qwen/Qwen2.5-7B")}

	if n, err := p.InFlight(t.Context(), tgt); err != nil || n != 3 {
		t.Fatalf("InFlight = %d, %v; want 3 from vLLM's gauges", n, err)
	}
	if got, err := p.Complete(t.Context(), tgt, "The capital of France is", 2); err != nil || got != " Paris." {
		t.Fatalf("Complete = %q, %v", got, err)
	}
	if completionBody != `{"max_tokens":2,"model":"qwen","prompt":"The capital of France is"}` {
		t.Fatalf("completion request %s", completionBody)
	}
	if err := p.Confirm(t.Context(), tgt); err != nil {
		t.Fatalf("Confirm with the right model: %v", err)
	}
	tgt.Protocol.Identity.Expect = "Qwen/Qwen2.5-72B"
	var foreign *ForeignServerError
	if err := p.Confirm(t.Context(), tgt); !errors.As(err, &foreign) || !strings.Contains(err.Error(), "a server with model Qwen/Qwen2.5-7B instead of Qwen/Qwen2.5-72B") {
		t.Fatalf("Confirm with another model = %v", err)
	}
}

func TestHTTPProberSaysWhatTheProtocolLacks(t *testing.T) {
	p := NewHTTPProber()
	tgt := Target{BaseURL: "http://127.0.0.1:1"}
	if _, err := p.InFlight(t.Context(), tgt); err == nil || err.Error() != "this engine's provider describes no way to count requests in flight" {
		t.Errorf("InFlight: %v", err)
	}
	if _, err := p.Complete(t.Context(), tgt, "x", 1); err == nil || !strings.HasPrefix(err.Error(), "this engine's provider describes no completion endpoint") {
		t.Errorf("Complete: %v", err)
	}
}

func TestSpecWithoutAProtocolIsLlamaServers(t *testing.T) {
	s := Spec{ModelPath: "/m/a.gguf"}
	p := s.protocol()
	if p.Identity == nil || p.Identity.Path != "/props" || p.Identity.Expect != "/m/a.gguf" || p.Completion.Path != "/completion" || len(p.InFlight) != 2 {
		t.Fatalf("legacy protocol %+v", p)
	}
	if p := (Spec{}).protocol(); p.Identity != nil {
		t.Fatal("a spec without a model path gets an identity check")
	}
}

// TestRepeatedStopSignalEndsAnEngineWaitingForItsClients: llama-server
// 10573 answers SIGTERM by waiting for its clients, and a second SIGTERM
// makes it exit at once; a protocol that says so gets the second signal
// when the grace ends, not SIGKILL.
func TestRepeatedStopSignalEndsAnEngineWaitingForItsClients(t *testing.T) {
	for _, repeat := range []bool{true, false} {
		spec := fakeSpec(t, map[string]string{"FAKE_BUILD": "10573", "FAKE_INFLIGHT": "1", "FAKE_REQUEST_DELAY": "1h"})
		spec.StopGrace = 200 * time.Millisecond
		p := LegacyProtocol(spec.ModelPath)
		p.RepeatStopForcesExit = repeat
		spec.Protocol = &p
		c, st := launch(t, spec)
		if err := c.Stop(waitCtx(t), 0); err != nil {
			t.Fatalf("Stop: %v", err)
		}
		if Alive(st.PID) {
			t.Fatalf("engine %d survived the stop", st.PID)
		}
		log := readEngineLog(t, spec.RunDir)
		sl, _ := os.ReadFile(filepath.Join(spec.RunDir, SupervisorLogFile))
		second := strings.Contains(log, "Received second interrupt, terminating immediately.")
		killed := strings.Contains(string(sl), "killing it")
		if second != repeat || killed == repeat {
			t.Fatalf("repeat=%v: second signal seen %v, SIGKILL %v; engine log:\n%s\nsupervisor log:\n%s", repeat, second, killed, log, sl)
		}
	}
}
