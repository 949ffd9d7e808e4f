package supervisor

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Probe timeouts. Readiness and drain polls are frequent and cheap, so a
// slow answer is simply retried; a liveness probe waits longer because a
// busy engine may answer /health late without being dead.
const (
	readinessProbeTimeout = 2 * time.Second
	livenessProbeTimeout  = 5 * time.Second
	busyProbeTimeout      = 2 * time.Second
)

// Target is the engine a probe asks about.
type Target struct {
	BaseURL    string // "http://127.0.0.1:8080"
	Host       string
	Port       int
	PID        int // the engine; also its process group
	HealthPath string
	ModelPath  string // "" skips the /props check
	Token      string // bearer token for /props, /slots, /metrics
}

// Prober asks an engine about itself. HTTPProber is the real one.
type Prober interface {
	// Health GETs the health path and returns the HTTP status and a short
	// description of the answer; err means no answer at all.
	Health(ctx context.Context, t Target) (code int, detail string, err error)
	// Confirm checks that the server answering at t is the engine t.PID.
	// It returns a *ForeignServerError when another process answers there,
	// and other errors when it cannot tell yet.
	Confirm(ctx context.Context, t Target) error
	// InFlight reports how many requests the engine has in flight
	// (processing or waiting for a slot).
	InFlight(ctx context.Context, t Target) (int, error)
	// Complete asks the engine to complete prompt with nPredict tokens and
	// returns the text, for the smoke readiness check.
	Complete(ctx context.Context, t Target, prompt string, nPredict int) (string, error)
}

// ForeignServerError says that something other than the spawned engine
// answers on the engine's port (ENGINE-NOTES: an older llama-server starts
// on a taken port and the other server answers /health).
type ForeignServerError struct {
	Host string
	Port int
	PID  int    // engine
	By   string // who answers instead, e.g. "pid 4242, llama-server"
}

func (e *ForeignServerError) Error() string {
	return fmt.Sprintf("port %d on %s is answered by another process (%s), not by the engine (pid %d); stop that process or give the pool another port", e.Port, e.Host, e.By, e.PID)
}

// HTTPProber probes over HTTP and, on Linux, checks socket ownership in
// /proc.
type HTTPProber struct {
	Client *http.Client // nil: a private client without proxies
	Proc   string       // procfs root; "" = "/proc"
}

var _ Prober = (*HTTPProber)(nil)

// NewHTTPProber returns a prober with its own transport, so probes never go
// through an HTTP proxy from the environment.
//
// Every request goes on a fresh connection that the prober closes itself
// once the answer is read (see get). A kept-alive connection costs
// llama-server build 4748, which does not set TCP_NODELAY, ~40 ms a request
// (its body waits for the client's delayed ACK), and when the engine closes
// it after 5 s idle, the TIME-WAIT socket sits on the engine's own port.
// Closed from this side, the TIME-WAIT is on the prober's ephemeral port,
// and a fresh loopback connection answers in well under a millisecond.
func NewHTTPProber() *HTTPProber {
	tr := &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 1, DisableCompression: true}
	return &HTTPProber{Client: &http.Client{Transport: tr}}
}

func (p *HTTPProber) client() *http.Client {
	if p.Client != nil {
		return p.Client
	}
	return http.DefaultClient
}

func (p *HTTPProber) get(ctx context.Context, url, token string, limit int64) (int, []byte, error) {
	return p.do(ctx, http.MethodGet, url, token, nil, limit)
}

func (p *HTTPProber) do(ctx context.Context, method, url, token string, body io.Reader, limit int64) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		return 0, nil, fmt.Errorf("building request for %s: %w", url, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	c := p.client()
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	// Closing the body hands the connection back to the pool, and closing
	// the pool's idle connections then closes it from this side: no
	// "Connection: close" (the engine would close first and keep the
	// TIME-WAIT), no kept-alive connection (Nagle stalls).
	defer c.CloseIdleConnections()
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, limit))
	if err != nil {
		return resp.StatusCode, nil, fmt.Errorf("reading answer from %s: %w", url, err)
	}
	return resp.StatusCode, answer, nil
}

// Complete implements Prober: POST /completion, llama-server's native
// endpoint, and the completion's text.
func (p *HTTPProber) Complete(ctx context.Context, t Target, prompt string, nPredict int) (string, error) {
	req, err := json.Marshal(map[string]any{"prompt": prompt, "n_predict": nPredict})
	if err != nil {
		return "", err
	}
	code, body, err := p.do(ctx, http.MethodPost, t.BaseURL+"/completion", t.Token, bytes.NewReader(req), 1<<20)
	if err != nil {
		return "", fmt.Errorf("asking %s/completion: %w", t.BaseURL, err)
	}
	if code != http.StatusOK {
		return "", fmt.Errorf("%s/completion answered %s", t.BaseURL, describeAnswer(code, body))
	}
	var answer struct {
		Content *string `json:"content"`
	}
	if err := json.Unmarshal(body, &answer); err != nil || answer.Content == nil {
		return "", fmt.Errorf("%s/completion answered 200 without a completion: %.200q", t.BaseURL, body)
	}
	return *answer.Content, nil
}

// Health implements Prober.
func (p *HTTPProber) Health(ctx context.Context, t Target) (int, string, error) {
	code, body, err := p.get(ctx, t.BaseURL+t.HealthPath, "", 4<<10)
	if err != nil {
		return 0, "", err
	}
	return code, describeAnswer(code, body), nil
}

// describeAnswer turns a llama-server answer into "503 Loading model".
func describeAnswer(code int, body []byte) string {
	var e struct {
		Error struct {
			Message string `json:"message"`
		} `json:"error"`
		Status string `json:"status"`
	}
	msg := ""
	if json.Unmarshal(body, &e) == nil {
		msg = e.Error.Message
		if msg == "" {
			msg = e.Status
		}
	}
	if msg == "" {
		msg = strings.TrimSpace(string(body))
		if len(msg) > 80 {
			msg = msg[:80] + "…"
		}
	}
	if msg == "" {
		return strconv.Itoa(code)
	}
	return strconv.Itoa(code) + " " + msg
}

// Confirm implements Prober: first the listening socket's owner in /proc
// (every listener on the port must belong to the engine's process group),
// then, when the spec names a model, /props' model_path.
func (p *HTTPProber) Confirm(ctx context.Context, t Target) error {
	root := p.Proc
	if root == "" {
		root = "/proc"
	}
	switch pid, comm := (procNet{root: root}).foreignListener(t.Host, t.Port, t.PID); {
	case pid > 0:
		by := fmt.Sprintf("pid %d", pid)
		if comm != "" {
			by += ", " + comm
		}
		return &ForeignServerError{Host: t.Host, Port: t.Port, PID: t.PID, By: by}
	case pid < 0:
		return &ForeignServerError{Host: t.Host, Port: t.Port, PID: t.PID, By: "a process this user cannot inspect"}
	}
	if t.ModelPath == "" {
		return nil
	}
	code, body, err := p.get(ctx, t.BaseURL+"/props", t.Token, 1<<20)
	if err != nil {
		return fmt.Errorf("asking %s/props which model it serves: %w", t.BaseURL, err)
	}
	if code != http.StatusOK {
		return nil // older servers or a disabled endpoint: nothing to compare
	}
	var props struct {
		ModelPath string `json:"model_path"`
	}
	if json.Unmarshal(body, &props) != nil || props.ModelPath == "" {
		return nil
	}
	if !samePath(props.ModelPath, t.ModelPath) {
		return &ForeignServerError{Host: t.Host, Port: t.Port, PID: t.PID, By: fmt.Sprintf("a server with model %s instead of %s", props.ModelPath, t.ModelPath)}
	}
	return nil
}

func samePath(a, b string) bool {
	if filepath.Clean(a) == filepath.Clean(b) {
		return true
	}
	fa, errA := os.Stat(a)
	fb, errB := os.Stat(b)
	return errA == nil && errB == nil && os.SameFile(fa, fb)
}

// InFlight implements Prober: the slots with is_processing in /slots and,
// when that is not available, /metrics (requests_processing plus
// requests_deferred).
func (p *HTTPProber) InFlight(ctx context.Context, t Target) (int, error) {
	code, body, err := p.get(ctx, t.BaseURL+"/slots", t.Token, 4<<20)
	if err != nil {
		return 0, fmt.Errorf("asking %s/slots for in-flight requests: %w", t.BaseURL, err)
	}
	if code == http.StatusOK {
		var slots []struct {
			IsProcessing bool `json:"is_processing"`
		}
		if err := json.Unmarshal(body, &slots); err == nil {
			n := 0
			for _, s := range slots {
				if s.IsProcessing {
					n++
				}
			}
			return n, nil
		}
	}
	slotsAnswer := describeAnswer(code, body)
	code, body, err = p.get(ctx, t.BaseURL+"/metrics", t.Token, 4<<20)
	if err != nil {
		return 0, fmt.Errorf("asking %s/metrics for in-flight requests: %w", t.BaseURL, err)
	}
	if code == http.StatusOK {
		if n, ok := metricsInFlight(body); ok {
			return n, nil
		}
	}
	return 0, fmt.Errorf("the engine reports no in-flight counts: /slots answered %s, /metrics answered %s", slotsAnswer, describeAnswer(code, body))
}

// metricsInFlight reads llama-server's Prometheus gauges; ok is false when
// neither gauge is present.
func metricsInFlight(body []byte) (n int, ok bool) {
	sc := bufio.NewScanner(strings.NewReader(string(body)))
	for sc.Scan() {
		name, value, found := strings.Cut(strings.TrimSpace(sc.Text()), " ")
		if !found || (name != "llamacpp:requests_processing" && name != "llamacpp:requests_deferred") {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil {
			continue
		}
		ok = true
		if v > 0 {
			n += int(v)
		}
	}
	return n, ok
}
