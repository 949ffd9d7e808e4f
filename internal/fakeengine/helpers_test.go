package fakeengine

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/llorch/llorch/internal/clock"
)

// tinyModel is the demo's 544-byte GGUF committed in the repository: the
// fake engine only checks the GGUF magic, so any real GGUF file will do.
var tinyModel = func() string {
	p, err := filepath.Abs(filepath.Join("..", "..", "examples", "demo", "models", "demo.gguf"))
	if err != nil {
		panic(err)
	}
	return p
}()

// waitBound bounds every wait in these tests so a bug fails the test
// instead of hanging it. It is never a pass/fail threshold.
const waitBound = 10 * time.Second

func boundedCtx(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), waitBound)
	t.Cleanup(cancel)
	return ctx
}

// manualClock is a clock.Clock that moves only when told to.
type manualClock struct {
	mu      sync.Mutex
	now     time.Time
	timers  []*manualTimer
	changed chan struct{} // closed and replaced whenever timers change
}

type manualTimer struct {
	c    *manualClock
	ch   chan time.Time
	when time.Time
}

func newManualClock() *manualClock {
	return &manualClock{now: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC), changed: make(chan struct{})}
}

func (c *manualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *manualClock) Since(t time.Time) time.Duration { return c.Now().Sub(t) }

func (c *manualClock) NewTimer(d time.Duration) clock.Timer {
	t := &manualTimer{c: c, ch: make(chan time.Time, 1)}
	t.Reset(d)
	return t
}

func (c *manualClock) notifyLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// Advance moves time on and fires every timer that came due.
func (c *manualClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	c.timers = slices.DeleteFunc(c.timers, func(t *manualTimer) bool {
		if t.when.After(c.now) {
			return false
		}
		t.fire(c.now)
		return true
	})
	c.notifyLocked()
}

// waitTimers blocks until at least n timers are pending, so Advance is
// sure to reach the timer the test means.
func (c *manualClock) waitTimers(ctx context.Context, n int) error {
	for {
		c.mu.Lock()
		pending, changed := len(c.timers), c.changed
		c.mu.Unlock()
		if pending >= n {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("waiting for %d pending timers (have %d): %w", n, pending, ctx.Err())
		}
	}
}

func (t *manualTimer) C() <-chan time.Time { return t.ch }

// fire delivers like a time.Timer: at most one tick waits in the channel.
func (t *manualTimer) fire(now time.Time) {
	select {
	case t.ch <- now:
	default:
	}
}

func (t *manualTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	n := len(t.c.timers)
	t.c.timers = slices.DeleteFunc(t.c.timers, func(x *manualTimer) bool { return x == t })
	t.c.notifyLocked()
	return len(t.c.timers) < n
}

func (t *manualTimer) Reset(d time.Duration) bool {
	was := t.Stop()
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	t.when = t.c.now.Add(d)
	if d <= 0 {
		t.fire(t.c.now)
		return was
	}
	t.c.timers = append(t.c.timers, t)
	t.c.notifyLocked()
	return was
}

// logBuffer collects a server's stderr and lets a test wait for a line, so
// tests react to what the server says instead of sleeping.
type logBuffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{}
}

func newLogBuffer() *logBuffer { return &logBuffer{changed: make(chan struct{})} }

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Write(p)
	close(b.changed)
	b.changed = make(chan struct{})
	return len(p), nil
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// lines returns the complete lines written so far.
func (b *logBuffer) lines() []string {
	s := b.String()
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return strings.Split(s[:i], "\n")
	}
	return nil
}

// waitFor blocks until n complete lines contain substr and returns the
// last of them.
func (b *logBuffer) waitFor(ctx context.Context, substr string, n int) (string, error) {
	for {
		b.mu.Lock()
		changed := b.changed
		b.mu.Unlock()
		var found []string
		for _, l := range b.lines() {
			if strings.Contains(l, substr) {
				found = append(found, l)
			}
		}
		if len(found) >= n {
			return found[n-1], nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return "", fmt.Errorf("waiting for log line %q (#%d): %w\nlog so far:\n%s", substr, n, ctx.Err(), b.String())
		}
	}
}

var listeningLine = regexp.MustCompile(`HTTP server is listening, hostname: (\S+), port: (\d+),`)

// baseURL reads the bound address from the "HTTP server is listening" line.
func (b *logBuffer) baseURL(ctx context.Context) (string, error) {
	line, err := b.waitFor(ctx, "HTTP server is listening", 1)
	if err != nil {
		return "", err
	}
	m := listeningLine.FindStringSubmatch(line)
	if m == nil {
		return "", fmt.Errorf("cannot read the address from %q", line)
	}
	return "http://" + net.JoinHostPort(m[1], m[2]), nil
}

func envFunc(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// engineRun is one in-process server driven by a manual clock and a
// signal channel.
type engineRun struct {
	t    testing.TB
	clk  *manualClock
	log  *logBuffer
	sigs chan os.Signal
	kill context.CancelFunc
	done chan outcome
	url  string
	hc   *http.Client
}

// startEngine runs the server in process with the tiny model on a free
// port, adding args and env, and waits until it listens or ends.
func startEngine(t testing.TB, args []string, env map[string]string) *engineRun {
	t.Helper()
	full := append([]string{"-m", tinyModel, "--port", "0"}, args...)
	return startEngineRaw(t, full, env)
}

func startEngineRaw(t testing.TB, args []string, env map[string]string) *engineRun {
	t.Helper()
	if env == nil {
		env = map[string]string{}
	}
	if _, ok := env["FAKE_LOAD_DELAY"]; !ok {
		env["FAKE_LOAD_DELAY"] = "0s"
	}
	killCtx, kill := context.WithCancel(t.Context())
	r := &engineRun{
		t:    t,
		clk:  newManualClock(),
		log:  newLogBuffer(),
		sigs: make(chan os.Signal, 4),
		kill: kill,
		done: make(chan outcome, 1),
		hc:   &http.Client{Transport: &http.Transport{}},
	}
	go func() {
		r.done <- run(killCtx, args, envFunc(env), io.Discard, r.log, r.clk, r.sigs)
	}()
	t.Cleanup(func() {
		kill()
		<-r.done
		r.hc.CloseIdleConnections()
	})
	ctx := boundedCtx(t)
	listening := make(chan string, 1)
	go func() {
		u, err := r.log.baseURL(ctx)
		if err != nil {
			u = ""
		}
		listening <- u
	}()
	select {
	case u := <-listening:
		r.url = u
	case o := <-r.done:
		r.done <- o // keep it for wait
	}
	return r
}

// wait returns how the server ended.
func (r *engineRun) wait() outcome {
	r.t.Helper()
	select {
	case o := <-r.done:
		r.done <- o
		return o
	case <-time.After(waitBound):
		r.t.Fatalf("server did not end; log:\n%s", r.log.String())
		return outcome{}
	}
}

// running reports whether the server has not ended. It is only asked
// where nothing can be ending it concurrently.
func (r *engineRun) running() bool {
	select {
	case o := <-r.done:
		r.done <- o
		return false
	default:
		return true
	}
}

func (r *engineRun) waitLog(substr string) string {
	r.t.Helper()
	return r.waitLogN(substr, 1)
}

func (r *engineRun) waitLogN(substr string, n int) string {
	r.t.Helper()
	line, err := r.log.waitFor(boundedCtx(r.t), substr, n)
	if err != nil {
		r.t.Fatal(err)
	}
	return line
}

func (r *engineRun) waitTimers(n int) {
	r.t.Helper()
	if err := r.clk.waitTimers(boundedCtx(r.t), n); err != nil {
		r.t.Fatal(err)
	}
}

func (r *engineRun) signal(s syscall.Signal) { r.sigs <- s }

type response struct {
	code int
	body string
}

func (r *engineRun) do(ctx context.Context, method, path, body string, header ...string) (response, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, r.url+path, rd)
	if err != nil {
		return response{}, err
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := r.hc.Do(req)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return response{resp.StatusCode, string(b)}, err
}

// get fails the test when the request cannot be made at all.
func (r *engineRun) get(path string, header ...string) response {
	r.t.Helper()
	resp, err := r.do(boundedCtx(r.t), http.MethodGet, path, "", header...)
	if err != nil {
		r.t.Fatalf("GET %s: %v\nlog:\n%s", path, err, r.log.String())
	}
	return resp
}

func (r *engineRun) post(path, body string, header ...string) response {
	r.t.Helper()
	resp, err := r.do(boundedCtx(r.t), http.MethodPost, path, body, header...)
	if err != nil {
		r.t.Fatalf("POST %s: %v\nlog:\n%s", path, err, r.log.String())
	}
	return resp
}

// postAsync sends a request in the background; its result arrives on the
// returned channel.
func (r *engineRun) postAsync(ctx context.Context, path, body string) <-chan result {
	ch := make(chan result, 1)
	go func() {
		resp, err := r.do(ctx, http.MethodPost, path, body)
		ch <- result{resp, err}
	}()
	return ch
}

type result struct {
	resp response
	err  error
}

func receive[T any](t testing.TB, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(waitBound):
		t.Fatal("nothing arrived")
		var zero T
		return zero
	}
}

func decode[T any](t testing.TB, body string) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatalf("decoding %q: %v", body, err)
	}
	return v
}

// process is the fake run as a real child process (the registered
// "fake-llama-server" command), for what only a process can show:
// death by a signal, real signal delivery.
type process struct {
	t    testing.TB
	cmd  *exec.Cmd
	log  *logBuffer
	done chan error
	url  string
}

func startProcess(t testing.TB, args []string, env ...string) *process {
	t.Helper()
	return startProcessIn(t, "", args, env...)
}

// startProcessIn starts the child in dir ("" = the test's own).
func startProcessIn(t testing.TB, dir string, args []string, env ...string) *process {
	t.Helper()
	p := &process{t: t, log: newLogBuffer(), done: make(chan error, 1)}
	p.cmd = exec.Command("fake-llama-server", args...)
	p.cmd.Dir = dir
	// Only what the test names: a developer's LLAMA_ARG_* must not leak in.
	// A -race child otherwise sleeps a second before a clean exit
	// (the race runtime's atexit_sleep_ms).
	p.cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "GORACE=atexit_sleep_ms=0"}, env...)
	p.cmd.Stderr = p.log
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting fake-llama-server: %v", err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
		p.done <- nil
	})
	return p
}

// listen waits for the listening line and records the URL.
func (p *process) listen() {
	p.t.Helper()
	u, err := p.log.baseURL(boundedCtx(p.t))
	if err != nil {
		p.t.Fatal(err)
	}
	p.url = u
}

func (p *process) waitLog(substr string) {
	p.t.Helper()
	if _, err := p.log.waitFor(boundedCtx(p.t), substr, 1); err != nil {
		p.t.Fatal(err)
	}
}

func (p *process) signal(s syscall.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(s); err != nil {
		p.t.Fatalf("sending %v: %v", s, err)
	}
}

// wait returns the child's wait status once it has ended.
func (p *process) wait() syscall.WaitStatus {
	p.t.Helper()
	select {
	case <-p.done:
		p.done <- nil
	case <-time.After(waitBound):
		p.t.Fatalf("fake-llama-server did not end; log:\n%s", p.log.String())
	}
	return p.cmd.ProcessState.Sys().(syscall.WaitStatus)
}

func describe(ws syscall.WaitStatus) string {
	switch {
	case ws.Signaled():
		return "killed by " + ws.Signal().String()
	case ws.Exited():
		return "exit status " + strconv.Itoa(ws.ExitStatus())
	}
	return fmt.Sprintf("wait status %#x", uint32(ws))
}
