package supervisor

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
)

// engineStub serves fixed answers per path and records the auth header.
func engineStub(t *testing.T, answers map[string]struct {
	code int
	body string
}) (*httptest.Server, *string) {
	t.Helper()
	var auth string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slots" {
			auth = r.Header.Get("Authorization")
		}
		a, ok := answers[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(a.code)
		_, _ = w.Write([]byte(a.body))
	}))
	t.Cleanup(srv.Close)
	return srv, &auth
}

type answer = struct {
	code int
	body string
}

func TestHTTPProberInFlight(t *testing.T) {
	notFound := answer{501, `{"error":{"code":501,"message":"This server does not support metrics endpoint. Start it with ` + "`--metrics`" + `"}}`}
	tests := []struct {
		name    string
		answers map[string]answer
		want    int
		wantErr string
	}{
		{name: "processing slots are counted", answers: map[string]answer{"/slots": {200, `[{"id":0,"is_processing":false},{"id":1,"is_processing":true},{"id":2,"is_processing":true}]`}}, want: 2},
		{name: "idle slots count none", answers: map[string]answer{"/slots": {200, `[{"id":0,"is_processing":false}]`}}},
		{name: "metrics when slots are off", answers: map[string]answer{
			"/slots":   {501, `{"error":{"code":501,"message":"This server does not support slots endpoint."}}`},
			"/metrics": {200, "# HELP x\nllamacpp:requests_processing 1\nllamacpp:requests_deferred 0\n"},
		}, want: 1},
		{name: "deferred requests count too", answers: map[string]answer{
			"/metrics": {200, "llamacpp:requests_processing 1\nllamacpp:requests_deferred 2\n"},
		}, want: 3},
		{name: "idle metrics", answers: map[string]answer{
			"/metrics": {200, "llamacpp:requests_processing 0\nllamacpp:requests_deferred 0\n"},
		}},
		{name: "neither endpoint", answers: map[string]answer{
			"/slots":   {501, `{"error":{"code":501,"message":"This server does not support slots endpoint."}}`},
			"/metrics": notFound,
		}, wantErr: "the engine reports no in-flight counts: /slots answered 501 This server does not support slots endpoint., /metrics answered 501 This server does not support metrics endpoint. Start it with `--metrics`"},
		{name: "wrong api key", answers: map[string]answer{
			"/slots":   {401, `{"error":{"code":401,"message":"Invalid API Key","type":"authentication_error"}}`},
			"/metrics": {401, `{"error":{"code":401,"message":"Invalid API Key","type":"authentication_error"}}`},
		}, wantErr: "the engine reports no in-flight counts: /slots answered 401 Invalid API Key, /metrics answered 401 Invalid API Key"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv, auth := engineStub(t, tc.answers)
			n, err := NewHTTPProber().InFlight(t.Context(), Target{BaseURL: srv.URL, Token: "s3cret", Protocol: LegacyProtocol("")})
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("InFlight error = %v\nwant %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || n != tc.want {
				t.Fatalf("InFlight = %v, %v; want %v", n, err, tc.want)
			}
			if *auth != "" && *auth != "Bearer s3cret" {
				t.Fatalf("Authorization %q, want the probe token", *auth)
			}
		})
	}
}

func TestHTTPProberSendsTheTokenOnlyWhenSet(t *testing.T) {
	srv, auth := engineStub(t, map[string]answer{"/slots": {200, `[]`}})
	if _, err := NewHTTPProber().InFlight(t.Context(), Target{BaseURL: srv.URL, Token: "k", Protocol: LegacyProtocol("")}); err != nil || *auth != "Bearer k" {
		t.Fatalf("with a token: auth %q, err %v", *auth, err)
	}
	if _, err := NewHTTPProber().InFlight(t.Context(), Target{BaseURL: srv.URL, Protocol: LegacyProtocol("")}); err != nil || *auth != "" {
		t.Fatalf("without a token: auth %q, err %v", *auth, err)
	}
}

func TestHTTPProberHealthDescribesTheAnswer(t *testing.T) {
	tests := []struct {
		body, want string
		code       int
	}{
		{code: 503, body: `{"error":{"code":503,"message":"Loading model","type":"unavailable_error"}}`, want: "503 Loading model"},
		{code: 200, body: `{"status":"ok"}`, want: "200 ok"},
		{code: 500, body: `plain failure`, want: "500 plain failure"},
		{code: 204, want: "204"},
	}
	for _, tc := range tests {
		t.Run(tc.want, func(t *testing.T) {
			srv, _ := engineStub(t, map[string]answer{"/health": {tc.code, tc.body}})
			code, detail, err := NewHTTPProber().Health(t.Context(), Target{BaseURL: srv.URL, HealthPath: "/health"})
			if err != nil || code != tc.code || detail != tc.want {
				t.Fatalf("Health = %d, %q, %v; want %d, %q", code, detail, err, tc.code, tc.want)
			}
		})
	}
}

func TestHTTPProberConfirmComparesTheModelPath(t *testing.T) {
	emptyProc := t.TempDir() // no /proc/net: the socket check has nothing to say
	tests := []struct {
		name    string
		props   answer
		wantErr string
	}{
		{name: "same model", props: answer{200, `{"model_path":"/m/a.gguf"}`}},
		{name: "same model, uncleaned path", props: answer{200, `{"model_path":"/m/./a.gguf"}`}},
		{name: "no props endpoint", props: answer{404, `not found`}},
		{name: "props without a model path", props: answer{200, `{"total_slots":1}`}},
		{name: "another model", props: answer{200, `{"model_path":"/m/other.gguf"}`},
			wantErr: "port 8080 on 127.0.0.1 is answered by another process (a server with model /m/other.gguf instead of /m/a.gguf), not by the engine (pid 42); stop that process or give the pool another port"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv, _ := engineStub(t, map[string]answer{"/props": tc.props})
			p := NewHTTPProber()
			p.Proc = emptyProc
			err := p.Confirm(t.Context(), Target{BaseURL: srv.URL, Host: "127.0.0.1", Port: 8080, PID: 42, Protocol: LegacyProtocol("/m/a.gguf")})
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Confirm = %v, want nil", err)
				}
				return
			}
			var foreign *ForeignServerError
			if !errors.As(err, &foreign) || err.Error() != tc.wantErr {
				t.Fatalf("Confirm = %v\nwant ForeignServerError %q", err, tc.wantErr)
			}
		})
	}
}

func TestHTTPProberConfirmSeesAnotherProcessOnThePort(t *testing.T) {
	// This test process listens; a "engine" with another pid group answers
	// nothing on it: the listener is foreign.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	p := NewHTTPProber()
	err = p.Confirm(t.Context(), Target{BaseURL: "http://" + ln.Addr().String(), Host: "127.0.0.1", Port: port, PID: 999999999})
	comm, _ := os.ReadFile("/proc/self/comm")
	want := "port " + strconv.Itoa(port) + " on 127.0.0.1 is answered by another process (pid " + strconv.Itoa(os.Getpid()) + ", " + strings.TrimSpace(string(comm)) + "), not by the engine (pid 999999999); stop that process or give the pool another port"
	if err == nil || err.Error() != want {
		t.Fatalf("Confirm = %v\nwant %q", err, want)
	}
	// And the same socket is confirmed when the engine is this process.
	if err := p.Confirm(t.Context(), Target{Host: "127.0.0.1", Port: port, PID: os.Getpid()}); err != nil {
		t.Fatalf("Confirm for the listening process itself = %v", err)
	}
}

func TestPortBusyNamesTheHolder(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	comm, _ := os.ReadFile("/proc/self/comm")
	want := "port " + strconv.Itoa(port) + " on 127.0.0.1 is already in use by another process (pid " + strconv.Itoa(os.Getpid()) + ", " + strings.TrimSpace(string(comm)) + "); stop that process or give the pool another port"
	if got := portBusy("127.0.0.1", port); got != want {
		t.Fatalf("portBusy = %q\nwant %q", got, want)
	}
	_ = ln.Close()
	if got := portBusy("127.0.0.1", port); got != "" {
		t.Fatalf("portBusy on a released port = %q, want free", got)
	}
	if got := portBusy("203.0.113.7", port); got == "" || got[:len("cannot listen on port")] != "cannot listen on port" {
		t.Fatalf("portBusy on an address this host does not have = %q", got)
	}
}

func TestAliveAndWaitGone(t *testing.T) {
	if !Alive(os.Getpid()) {
		t.Fatal("Alive(self) = false")
	}
	for _, pid := range []int{0, -1, 1 << 30} {
		if Alive(pid) {
			t.Fatalf("Alive(%d) = true", pid)
		}
	}
	p, err := ExecSpawner{}.Start(t.Context(), Cmd{Path: "fake-llama-server", Args: []string{"--version"}, Env: os.Environ(), Log: &discard{}})
	if err != nil {
		t.Fatal(err)
	}
	es := <-p.Done()
	if es.Failed() || es.String() != "exited with status 0" {
		t.Fatalf("--version exit = %v", es)
	}
	if Alive(p.PID()) {
		t.Fatalf("Alive(%d) after it was reaped", p.PID())
	}
	if err := waitGone(t.Context(), p.PID()); err != nil {
		t.Fatalf("waitGone on an exited process: %v", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := waitGone(ctx, 1); !errors.Is(err, context.Canceled) {
		t.Fatalf("waitGone(init) with a cancelled context = %v, want context.Canceled", err)
	}
}

type discard struct{}

func (*discard) Write(p []byte) (int, error) { return len(p), nil }

func TestExitStatusWording(t *testing.T) {
	tests := []struct {
		es     ExitStatus
		want   string
		failed bool
	}{
		{ExitStatus{Code: 0}, "exited with status 0", false},
		{ExitStatus{Code: 1}, "exited with status 1", true},
		{ExitStatus{Code: -1, Signal: 6}, "was killed by signal SIGABRT", true},
		{ExitStatus{Code: -1, Err: errors.New("wait: no child")}, "ended in an unknown way (wait: no child)", true},
	}
	for _, tc := range tests {
		if got := tc.es.String(); got != tc.want || tc.es.Failed() != tc.failed {
			t.Errorf("%+v: String() = %q, Failed() = %v; want %q, %v", tc.es, got, tc.es.Failed(), tc.want, tc.failed)
		}
	}
}

func TestSpawnerReportsAMissingBinary(t *testing.T) {
	_, err := ExecSpawner{}.Start(t.Context(), Cmd{Path: "no-such-llama-server"})
	want := `finding engine binary "no-such-llama-server" on PATH: exec: "no-such-llama-server": executable file not found in $PATH`
	if err == nil || err.Error() != want {
		t.Fatalf("Start = %v\nwant %q", err, want)
	}
}
