package fakeengine

import (
	"bufio"
	"errors"
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

	"golang.org/x/sys/unix"
)

// Each build's socket behaviour, as ENGINE-NOTES records it.

func TestBuildsBindAsTheRealServers(t *testing.T) {
	t.Run("4748 shares a port with another 4748 and the kernel splits connections", func(t *testing.T) {
		first := startEngine(t, []string{"-a", "first"}, map[string]string{"FAKE_BUILD": "4748"})
		first.waitLog("starting the main loop")
		port := strings.TrimPrefix(first.url, "http://127.0.0.1:")
		second := startEngineRaw(t, []string{"-m", tinyModel, "--port", port, "-a", "second"}, map[string]string{"FAKE_BUILD": "4748", "FAKE_LOAD_DELAY": "0s"})
		second.waitLog("starting the main loop")
		seen := map[string]bool{}
		for range 64 {
			seen[modelAlias(t, first.url)] = true
		}
		if !seen["first"] || !seen["second"] {
			t.Errorf("64 fresh connections reached %v, want both servers", seen)
		}
	})
	t.Run("10573 cannot bind a port a 4748 holds", func(t *testing.T) {
		first := startEngine(t, nil, map[string]string{"FAKE_BUILD": "4748"})
		port := strings.TrimPrefix(first.url, "http://127.0.0.1:")
		second := startEngineRaw(t, []string{"-m", tinyModel, "--port", port}, map[string]string{"FAKE_BUILD": "10573"})
		if got := second.wait(); got != exitWith(1) {
			t.Errorf("ended with %+v, want exit status 1", got)
		}
		second.waitLog("couldn't bind HTTP server socket, hostname: 127.0.0.1, port: " + port)
	})
	for _, tc := range []struct {
		build string
		// plainBind: whether a SO_REUSEADDR bind (Go's net.Listen, what a
		// port check does) succeeds over the dead server's TIME-WAIT.
		plainBind bool
	}{
		{"4748", false},
		{"10573", true},
	} {
		t.Run(tc.build+" after it dies with a server-side TIME-WAIT on its port", func(t *testing.T) {
			r := startEngine(t, nil, map[string]string{"FAKE_BUILD": tc.build})
			r.waitLog("starting the main loop")
			port := strings.TrimPrefix(r.url, "http://127.0.0.1:")
			// "Connection: close" makes the server close first, so the
			// TIME-WAIT socket is on the server's side of the connection.
			closeFromServer(t, r.url)
			r.kill()
			r.wait()
			if !timeWaitOn(t, port) {
				t.Fatal("no TIME-WAIT socket on the server's port; the test cannot show anything")
			}
			ln, err := net.Listen("tcp", "127.0.0.1:"+port)
			if err == nil {
				ln.Close()
			}
			if got := err == nil; got != tc.plainBind {
				t.Errorf("net.Listen over the TIME-WAIT socket: err = %v, want success %t", err, tc.plainBind)
			}
			again := startEngineRaw(t, []string{"-m", tinyModel, "--port", port}, map[string]string{"FAKE_BUILD": tc.build, "FAKE_LOAD_DELAY": "0s"})
			again.waitLog("starting the main loop")
		})
	}
}

// modelAlias asks /props on a fresh connection which server answers.
func modelAlias(t *testing.T, url string) string {
	t.Helper()
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Get(url + "/props")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	return decode[struct {
		Alias string `json:"model_alias"`
	}](t, readAll(t, resp.Body)).Alias
}

func readAll(t *testing.T, r io.Reader) string {
	t.Helper()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// closeFromServer makes one request that the server answers and then
// closes, and waits for the close.
func closeFromServer(t *testing.T, url string) {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(waitBound))
	if _, err := io.WriteString(c, "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(c); err != nil {
		t.Fatalf("waiting for the server to close: %v", err)
	}
}

// timeWaitOn reports a TIME-WAIT socket whose local port is port.
func timeWaitOn(t *testing.T, port string) bool {
	t.Helper()
	for _, name := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		raw, err := os.ReadFile(name)
		if err != nil {
			continue
		}
		b := string(raw)
		p, _ := strconv.Atoi(port)
		want := ":" + strings.ToUpper(strconv.FormatInt(int64(p), 16))
		for line := range strings.SplitSeq(b, "\n") {
			f := strings.Fields(line)
			if len(f) > 3 && strings.HasSuffix(f[1], want) && f[3] == "06" { // TCP_TIME_WAIT
				return true
			}
		}
	}
	return false
}

func TestBuildsKeepAliveAndNagle(t *testing.T) {
	for _, tc := range []struct {
		build   string
		noDelay bool
		writes  int // write calls for one small answer
	}{
		{"4748", false, 2},
		{"10573", true, 1},
	} {
		t.Run(tc.build, func(t *testing.T) {
			b := builds[tc.build]
			raw, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			counting := &countingListener{Listener: b.wrapListener(raw)}
			srv := &http.Server{Handler: b.splitWrites(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
			}))}
			go func() { _ = srv.Serve(counting) }()
			t.Cleanup(func() { _ = srv.Close() })

			c, err := net.Dial("tcp", raw.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(waitBound))
			br := bufio.NewReader(c)
			for range 2 {
				if _, err := io.WriteString(c, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
					t.Fatal(err)
				}
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					t.Fatal(err)
				}
				if body := readAll(t, resp.Body); resp.StatusCode != 200 || !strings.Contains(body, `"ok"`) {
					t.Fatalf("answer %d %q", resp.StatusCode, body)
				}
			}
			conn := counting.last()
			if got := conn.noDelay(t); got != tc.noDelay {
				t.Errorf("TCP_NODELAY on the accepted socket = %t, want %t", got, tc.noDelay)
			}
			if got := conn.writes(); got != 2*tc.writes {
				t.Errorf("two answers took %d writes, want %d", got, 2*tc.writes)
			}
		})
	}
}

type countingListener struct {
	net.Listener
	mu    sync.Mutex
	conns []*countingConn
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	cc := &countingConn{Conn: c}
	l.mu.Lock()
	l.conns = append(l.conns, cc)
	l.mu.Unlock()
	return cc, nil
}

func (l *countingListener) last() *countingConn {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.conns[len(l.conns)-1]
}

type countingConn struct {
	net.Conn
	mu sync.Mutex
	n  int
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.n++
	c.mu.Unlock()
	return c.Conn.Write(p)
}

func (c *countingConn) writes() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

func (c *countingConn) noDelay(t *testing.T) bool {
	t.Helper()
	sc, err := c.Conn.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var v int
	var serr error
	if err := sc.Control(func(fd uintptr) { v, serr = unix.GetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_NODELAY) }); err != nil {
		t.Fatal(err)
	}
	if serr != nil {
		t.Fatal(serr)
	}
	return v != 0
}

// The idle keep-alive close is real time (cpp-httplib's 5 s), so this test
// waits for it once.
func TestBuildsCloseIdleKeepAliveFromTheServer(t *testing.T) {
	t.Parallel()
	r := startEngine(t, nil, nil)
	r.waitLog("starting the main loop")
	c, err := net.Dial("tcp", strings.TrimPrefix(r.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(keepAliveTimeout + waitBound))
	if _, err := io.WriteString(c, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, resp.Body)
	start := time.Now()
	if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
		t.Fatalf("reading the idle connection: %v, want EOF (closed by the server)", err)
	}
	if waited := time.Since(start); waited < keepAliveTimeout/2 {
		t.Errorf("the server closed the idle connection after %s, before its keep-alive timeout", waited)
	}
}

func TestBuild4748AbortsOnSIGTERM(t *testing.T) {
	t.Run("idle", func(t *testing.T) {
		r := startEngine(t, nil, map[string]string{"FAKE_BUILD": "4748"})
		r.waitLog("starting the main loop")
		r.signal(syscall.SIGTERM)
		if got := r.wait(); got != killedBy(syscall.SIGABRT) {
			t.Errorf("ended with %+v, want death by SIGABRT", got)
		}
		r.waitLog("terminate called without an active exception")
	})
	t.Run("a request in flight is dropped", func(t *testing.T) {
		r := startEngine(t, nil, map[string]string{"FAKE_BUILD": "4748", "FAKE_REQUEST_DELAY": "1h"})
		r.waitLog("starting the main loop")
		answer := r.postAsync(boundedCtx(t), "/completion", `{"prompt":"hi"}`)
		r.waitLog("processing task")
		r.signal(syscall.SIGTERM)
		if got := r.wait(); got != killedBy(syscall.SIGABRT) {
			t.Errorf("ended with %+v, want death by SIGABRT", got)
		}
		if res := receive(t, answer); res.err == nil {
			t.Errorf("the request in flight got an answer: %+v", res.resp)
		}
	})
	t.Run("while loading it dies by SIGTERM", func(t *testing.T) {
		r := startEngine(t, nil, map[string]string{"FAKE_BUILD": "4748", "FAKE_HANG_LOAD": "1"})
		r.waitLog("never finishes loading")
		r.signal(syscall.SIGTERM)
		if got := r.wait(); got != killedBy(syscall.SIGTERM) {
			t.Errorf("ended with %+v, want death by SIGTERM", got)
		}
	})
}

func TestBuild4748FlagsAndEndpoints(t *testing.T) {
	env := map[string]string{"FAKE_BUILD": "4748"}
	t.Run("version", func(t *testing.T) {
		r := startEngineRaw(t, []string{"--version"}, env)
		if got := r.wait(); got != exitWith(0) {
			t.Fatalf("ended with %+v", got)
		}
		r.waitLog("version: 4748 (c392e5094)")
	})
	t.Run("-fa is a switch", func(t *testing.T) {
		r := startEngine(t, []string{"-fa"}, env)
		r.waitLog("starting the main loop")
	})
	t.Run("--fit does not exist", func(t *testing.T) {
		r := startEngine(t, []string{"--fit", "on"}, env)
		if got := r.wait(); got != exitWith(1) {
			t.Fatalf("ended with %+v", got)
		}
		r.waitLog("error: invalid argument: --fit")
	})
	t.Run("/slots needs --slots", func(t *testing.T) {
		r := startEngine(t, nil, env)
		r.waitLog("starting the main loop")
		if got := r.get("/slots"); got.code != 501 || !strings.Contains(got.body, "Start it with `--slots`") {
			t.Errorf("/slots answered %d %s", got.code, got.body)
		}
		if got := r.get("/props"); !strings.Contains(got.body, `"build_info":"b4748-c392e5094"`) {
			t.Errorf("/props says %s", got.body)
		}
	})
	t.Run("unknown build", func(t *testing.T) {
		r := startEngine(t, nil, map[string]string{"FAKE_BUILD": "9999"})
		if got := r.wait(); got != exitWith(1) {
			t.Fatalf("ended with %+v", got)
		}
		r.waitLog(`FAKE_BUILD="9999" is not a build the fake copies: want 4748 or 10573`)
	})
}
