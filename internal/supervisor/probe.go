package supervisor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
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
	Token      string // bearer token for every path but the health path
	// Protocol says how this engine answers (identity, in-flight counts,
	// completions).
	Protocol Protocol
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

// Complete implements Prober: POST the protocol's completion request and
// read the text from its answer.
func (p *HTTPProber) Complete(ctx context.Context, t Target, prompt string, nPredict int) (string, error) {
	c := t.Protocol.Completion
	if c == nil {
		return "", errors.New("this engine's provider describes no completion endpoint, so health { smoke } cannot ask it for one; remove the smoke block")
	}
	fields := make(map[string]any, len(c.Fixed)+2)
	for k, v := range c.Fixed {
		fields[k] = v
	}
	fields[c.PromptField] = prompt
	if c.MaxTokensField != "" {
		fields[c.MaxTokensField] = nPredict
	}
	req, err := json.Marshal(fields)
	if err != nil {
		return "", err
	}
	url := t.BaseURL + c.Path
	code, body, err := p.do(ctx, http.MethodPost, url, t.Token, bytes.NewReader(req), 1<<20)
	if err != nil {
		return "", fmt.Errorf("asking %s: %w", url, err)
	}
	if code != http.StatusOK {
		return "", fmt.Errorf("%s answered %s", url, describeAnswer(code, body))
	}
	text, err := jsonStringAt(body, c.TextField)
	if err != nil {
		return "", fmt.Errorf("%s answered 200 without a completion: %w", url, err)
	}
	return text, nil
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
	id := t.Protocol.Identity
	if id == nil {
		return nil
	}
	url := t.BaseURL + id.Path
	code, body, err := p.get(ctx, url, t.Token, 1<<20)
	if err != nil {
		return fmt.Errorf("asking %s which model it serves: %w", url, err)
	}
	if code != http.StatusOK {
		return nil // older servers or a disabled endpoint: nothing to compare
	}
	got, err := jsonStringAt(body, id.Field)
	if err != nil || got == "" {
		return nil
	}
	if !filepath.IsAbs(got) && filepath.IsAbs(id.Expect) && t.PID > 0 {
		// A path as the engine was given it, relative to its working
		// directory (an engine started by hand, for llorch import).
		if cwd, err := os.Readlink(filepath.Join("/proc", strconv.Itoa(t.PID), "cwd")); err == nil {
			got = filepath.Join(cwd, got)
		}
	}
	if !sameModel(got, id.Expect) {
		return &ForeignServerError{Host: t.Host, Port: t.Port, PID: t.PID, By: fmt.Sprintf("a server with model %s instead of %s", got, id.Expect)}
	}
	return nil
}

// sameModel compares what an engine says it serves with what it should:
// equal strings, or two paths naming the same file.
func sameModel(got, want string) bool {
	return got == want || (filepath.IsAbs(got) && filepath.IsAbs(want) && samePath(got, want))
}

func samePath(a, b string) bool {
	if filepath.Clean(a) == filepath.Clean(b) {
		return true
	}
	fa, errA := os.Stat(a)
	fb, errB := os.Stat(b)
	return errA == nil && errB == nil && os.SameFile(fa, fb)
}

// InFlight implements Prober: the protocol's in-flight probes in order,
// the first that answers with a count.
func (p *HTTPProber) InFlight(ctx context.Context, t Target) (int, error) {
	if len(t.Protocol.InFlight) == 0 {
		return 0, errors.New("this engine's provider describes no way to count requests in flight")
	}
	var answers []string
	for _, f := range t.Protocol.InFlight {
		url := t.BaseURL + f.Path
		code, body, err := p.get(ctx, url, t.Token, 4<<20)
		if err != nil {
			return 0, fmt.Errorf("asking %s for in-flight requests: %w", url, err)
		}
		if code == http.StatusOK {
			var n int
			var ok bool
			if f.CountTrue != "" {
				n, ok = countTrue(body, f.CountTrue)
			} else {
				n, ok = sumGauges(body, f.Gauges)
			}
			if ok {
				return n, nil
			}
		}
		answers = append(answers, fmt.Sprintf("%s answered %s", f.Path, describeAnswer(code, body)))
	}
	return 0, fmt.Errorf("the engine reports no in-flight counts: %s", strings.Join(answers, ", "))
}
