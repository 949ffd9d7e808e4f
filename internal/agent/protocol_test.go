package agent_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/llorch/llorch/internal/agent"
	"github.com/llorch/llorch/internal/supervisor"
)

// serve runs Serve on in-memory pipes and returns a client of it; both
// end when t does.
func serve(t *testing.T, opts agent.Options) *agent.Client {
	t.Helper()
	cr, sw := io.Pipe() // server → client
	sr, cw := io.Pipe() // client → server
	done := make(chan error, 1)
	go func() {
		done <- agent.Serve(context.Background(), sr, sw, opts)
		sw.Close()
	}()
	c, err := agent.NewClient(waitCtx(t), cr, cw, agent.ClientOptions{Machine: "gpu1", Closer: cw})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return c
}

func TestHandshakeAndStatusOfAnEmptyDataDir(t *testing.T) {
	c := serve(t, agent.Options{DataDir: t.TempDir()})
	if got, want := c.Peer(), agent.Own(); got != want || got.Protocol != 1 {
		t.Errorf("peer hello %+v, want %+v (protocol 1)", got, want)
	}
	reps, err := c.Status(waitCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(reps) != 0 {
		t.Errorf("status of an empty data dir = %+v, want none", reps)
	}
	hs, err := c.Handoffs(waitCtx(t))
	if err != nil || len(hs) != 0 {
		t.Errorf("handoffs of an empty data dir = %+v, %v; want none", hs, err)
	}
}

// peer is a scripted other end: it reads what the client sends and
// writes what the test tells it to.
type peer struct {
	in  *bufio.Scanner // what the client sent
	out io.WriteCloser // to the client
}

func newPeer(t *testing.T) (*peer, io.Reader, io.WriteCloser) {
	cr, pw := io.Pipe()
	pr, cw := io.Pipe()
	t.Cleanup(func() { pw.Close(); pr.Close() })
	return &peer{in: bufio.NewScanner(pr), out: pw}, cr, cw
}

func (p *peer) line(t *testing.T) map[string]any {
	t.Helper()
	if !p.in.Scan() {
		t.Fatalf("peer: no line from the client: %v", p.in.Err())
	}
	var m map[string]any
	if err := json.Unmarshal(p.in.Bytes(), &m); err != nil {
		t.Fatalf("peer: %q: %v", p.in.Bytes(), err)
	}
	return m
}

func (p *peer) write(t *testing.T, s string) {
	t.Helper()
	if _, err := io.WriteString(p.out, s+"\n"); err != nil {
		t.Fatal(err)
	}
}

// connect makes a client against p, which answers the hello with its
// own protocol 1 hello.
func connect(t *testing.T, p *peer, r io.Reader, w io.WriteCloser) *agent.Client {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.in.Scan() // the client's hello
		_, _ = io.WriteString(p.out, `{"hello":{"protocol":1,"llorch":"0.1.0","build":"test"}}`+"\n")
	}()
	c, err := agent.NewClient(waitCtx(t), r, w, agent.ClientOptions{Machine: "gpu1", Closer: w})
	<-done
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestHelloRefused(t *testing.T) {
	own := agent.Own().String()
	tests := []struct {
		name, hello, want string
	}{
		{
			name:  "another protocol version",
			hello: `{"hello":{"protocol":99,"llorch":"9.9.9","build":"f00"}}`,
			want: `machine "gpu1": the llorch agent there speaks protocol 99 (llorch 9.9.9, build f00), but this llorch speaks ` + own +
				`: both ends must speak the same protocol; llorch starts the agent from its own binary, uploaded to the machine's data_dir, so run the same llorch build at both ends`,
		},
		{
			name:  "not a hello",
			hello: `Welcome to gpu1!`,
			want:  `machine "gpu1": the llorch agent's first message is not a hello but "Welcome to gpu1!": something other than llorch agent answered on the session`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, r, w := newPeer(t)
			go func() {
				p.in.Scan()
				_, _ = io.WriteString(p.out, tc.hello+"\n")
			}()
			_, err := agent.NewClient(waitCtx(t), r, w, agent.ClientOptions{Machine: "gpu1", Closer: w})
			if err == nil || err.Error() != tc.want {
				t.Fatalf("NewClient = %v\nwant %s", err, tc.want)
			}
		})
	}
}

// The agent refuses a client of another version, after its own hello
// (from which the client learns why).
func TestServeRefusesAnotherVersion(t *testing.T) {
	for name, tc := range map[string]struct{ hello, want string }{
		"another protocol version": {`{"hello":{"protocol":99,"llorch":"9.9.9","build":"f00"}}`,
			"agent: the client speaks protocol 99 (llorch 9.9.9, build f00), this agent " + agent.Own().String() + "; refusing it"},
		"not a hello": {`{"id":1,"op":"status"}`,
			`agent: the client's first message is not a hello: "{\"id\":1,\"op\":\"status\"}"`},
	} {
		t.Run(name, func(t *testing.T) {
			var out strings.Builder
			err := agent.Serve(waitCtx(t), strings.NewReader(tc.hello+"\n"), &out, agent.Options{DataDir: t.TempDir()})
			if err == nil || err.Error() != tc.want {
				t.Fatalf("Serve = %v\nwant %s", err, tc.want)
			}
			if !strings.HasPrefix(out.String(), `{"hello":{"protocol":1,`) {
				t.Errorf("Serve wrote %q, want its hello first", out.String())
			}
		})
	}
}

func TestServeAnswersBadRequests(t *testing.T) {
	c := serve(t, agent.Options{DataDir: "/srv/llorch"})
	tests := []struct {
		name string
		call func() error
		want string
	}{
		{"stop outside the run directory", func() error { return c.Stop(waitCtx(t), "/etc", 0) },
			`machine "gpu1": stopping /etc: run directory "/etc" is not a directory of /srv/llorch/run: the agent manages only its own data directory's run directories`},
		{"drain of a relative run directory", func() error { _, err := c.Drain(waitCtx(t), "run/a", 0); return err },
			`machine "gpu1": draining run/a: run directory "run/a" is not a directory of /srv/llorch/run: the agent manages only its own data directory's run directories`},
		{"launch into a nested directory", func() error {
			_, err := c.Launch(waitCtx(t), fakeSpecAt("/srv/llorch/run/a/b"))
			return err
		}, `machine "gpu1": launching pool.chat/r0: run directory "/srv/llorch/run/a/b" is not a directory of /srv/llorch/run: the agent manages only its own data directory's run directories`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.call(); err == nil || err.Error() != tc.want {
				t.Fatalf("got %v\nwant %s", err, tc.want)
			}
		})
	}
}

func TestServeAnswersAnUnknownRequest(t *testing.T) {
	var out strings.Builder
	in := `{"hello":{"protocol":1}}` + "\n" + `{"id":7,"op":"reboot"}` + "\n" + "not json\n"
	if err := agent.Serve(waitCtx(t), strings.NewReader(in), &out, agent.Options{DataDir: t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("Serve wrote %q, want hello and two answers", out.String())
	}
	got := lines[1:]
	want := []string{
		`{"id":7,"error":"the agent has no request \"reboot\": it speaks protocol 1"}`,
		`{"id":0,"error":"the agent cannot read the request \"not json\": invalid character 'o' in literal null (expecting 'u')"}`,
	}
	// The answers come from goroutines of their own, in either order.
	if !(got[0] == want[0] && got[1] == want[1]) && !(got[0] == want[1] && got[1] == want[0]) {
		t.Errorf("answers:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func fakeSpecAt(runDir string) supervisor.Spec {
	return supervisor.Spec{Addr: "pool.chat/r0", RunDir: runDir}
}

// A stream that ends fails the requests in flight and every later one.
func TestDeadStreamFailsPendingRequests(t *testing.T) {
	p, r, w := newPeer(t)
	c := connect(t, p, r, w)
	errs := make(chan error, 2)
	for range 2 {
		go func() { _, err := c.Status(waitCtx(t)); errs <- err }()
	}
	p.line(t)
	p.line(t)
	p.out.Close()
	want := `machine "gpu1": status: the llorch agent's connection ended with the request unanswered: the agent exited or the connection dropped`
	for range 2 {
		if err := <-errs; err == nil || err.Error() != want {
			t.Fatalf("pending Status = %v\nwant %s", err, want)
		}
	}
	_, err := c.Handoffs(waitCtx(t))
	want = `machine "gpu1": reading handoff files: the llorch agent's connection ended earlier: the agent exited or the connection dropped`
	if err == nil || err.Error() != want {
		t.Fatalf("Handoffs after the end = %v\nwant %s", err, want)
	}
	c.Close()
	_, err = c.Status(waitCtx(t))
	if err == nil || !strings.Contains(err.Error(), "ended earlier") {
		t.Fatalf("Status after Close = %v", err)
	}
}

func TestClosedClientFailsRequests(t *testing.T) {
	p, r, w := newPeer(t)
	c := connect(t, p, r, w)
	c.Close()
	_, err := c.Status(waitCtx(t))
	want := `machine "gpu1": status: the connection to the llorch agent was closed`
	if err == nil || err.Error() != want {
		t.Fatalf("Status after Close = %v\nwant %s", err, want)
	}
}

// A cancelled request is abandoned: the agent is told, its late answer
// is dropped, and the connection keeps working.
func TestCancelAbandonsTheRequestOnly(t *testing.T) {
	p, r, w := newPeer(t)
	c := connect(t, p, r, w)
	ctx, cancel := context.WithCancel(waitCtx(t))
	errc := make(chan error, 1)
	go func() { _, err := c.Status(ctx); errc <- err }()
	first := p.line(t)
	cancel()
	err := <-errc
	if want := `machine "gpu1": status: context canceled`; err == nil || err.Error() != want || !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Status = %v, want %s", err, want)
	}
	if m := p.line(t); m["op"] != "cancel" || m["id"] != first["id"] {
		t.Fatalf("after the cancel the client sent %v, want a cancel of id %v", m, first["id"])
	}
	p.write(t, `{"id":1,"replicas":[{"run_dir":"/late"}]}`) // the abandoned answer

	go func() { reps, err := c.Status(waitCtx(t)); errc <- errors.Join(err, check(reps)) }()
	second := p.line(t)
	p.write(t, `{"id":`+jsonNumber(second["id"])+`,"replicas":[{"run_dir":"/srv/llorch/run/a","running":true}]}`)
	select {
	case err := <-errc:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(testTimeout):
		t.Fatal("no answer to the second request")
	}
}

func check(reps []agent.Replica) error {
	if len(reps) != 1 || reps[0].RunDir != "/srv/llorch/run/a" || !reps[0].Running {
		return errors.New("second Status got the wrong answer")
	}
	return nil
}

func jsonNumber(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
