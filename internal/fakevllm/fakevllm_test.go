package fakevllm

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func freePort(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func envOf(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestRefusesUnknownArgumentsAsArgparseDoes(t *testing.T) {
	var stderr bytes.Buffer
	code := Run([]string{"serve", "m", "--nope", "1"}, envOf(nil), io.Discard, &stderr, nil)
	if code != 2 || strings.TrimSpace(stderr.String()) != "vllm: error: unrecognized arguments: --nope 1" {
		t.Fatalf("exit %d, stderr %q", code, stderr.String())
	}
	var stdout bytes.Buffer
	if code := Run([]string{"--version"}, envOf(nil), &stdout, io.Discard, nil); code != 0 || stdout.String() != Version+"\n" {
		t.Fatalf("--version: exit %d, %q", code, stdout.String())
	}
}

// get waits for the server to listen (the fake, like vLLM, does not
// listen while it loads) and returns the body of url.
func get(t *testing.T, url, token string) (int, string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, string(b)
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s: %v", url, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestServesVLLMsEndpointsAndDrainsOnSIGTERM(t *testing.T) {
	port := freePort(t)
	sigs := make(chan os.Signal, 2)
	var log lockedBuffer
	exited := make(chan int, 1)
	go func() {
		exited <- Run([]string{"serve", "/models/qwen", "--host", "127.0.0.1", "--port", strconv.Itoa(port), "--served-model-name", "qwen"},
			envOf(map[string]string{"VLLM_API_KEY": "k", "FAKE_INFLIGHT": "1", "FAKE_REQUEST_DELAY": "300ms"}), io.Discard, &log, sigs)
	}()
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	if code, body := get(t, base+"/health", ""); code != 200 || body != "" {
		t.Fatalf("/health = %d %q", code, body)
	}
	if code, _ := get(t, base+"/v1/models", ""); code != 401 {
		t.Fatalf("/v1/models without the key = %d, want 401", code)
	}
	if _, body := get(t, base+"/v1/models", "k"); !strings.Contains(body, `"root":"/models/qwen"`) || !strings.Contains(body, `"id":"qwen"`) {
		t.Fatalf("/v1/models = %s", body)
	}
	if _, body := get(t, base+"/metrics", ""); !strings.Contains(body, `vllm:num_requests_running{model_name="qwen"} 1.0`) {
		t.Fatalf("/metrics with a request in flight = %s", body)
	}
	sigs <- syscall.SIGTERM
	if code := <-exited; code != 0 {
		t.Fatalf("exit %d after SIGTERM", code)
	}
	l := log.String()
	if i, j := strings.Index(l, "Finished request"), strings.Index(l, "Finished server process"); i < 0 || j < i {
		t.Fatalf("the request in flight did not finish before the exit:\n%s", l)
	}
}
