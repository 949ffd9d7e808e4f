package fakeengine

import (
	"fmt"
	"net"
	"net/http"
	"strconv"
)

// build is the llama-server build the fake behaves as (FAKE_BUILD). The two
// differ where ENGINE-NOTES found a supervisor could be right for one and
// wrong for the other: socket options, TCP_NODELAY, SIGTERM, and a few
// flag defaults.
type build struct {
	number  int
	commit  string
	version string // the --version line
	// reusePort: bind with SO_REUSEPORT and without SO_REUSEADDR (4748),
	// so the dead engine's TIME-WAIT sockets block a plain bind but not
	// another engine of this build, and two of them can share a port.
	// Otherwise SO_REUSEADDR only (10573), as Go's own listeners.
	reusePort bool
	// noDelay: TCP_NODELAY on every accepted socket (10573). Without it
	// (4748), an answer written as headers then body waits for the client's
	// delayed ACK on a kept-alive connection: ~40 ms a request.
	noDelay bool
	// abortOnTerm: the first SIGTERM once loaded aborts the process
	// (SIGABRT, "terminate called without an active exception") within a
	// few milliseconds, dropping requests in flight (4748). Otherwise it
	// stops accepting and waits for the clients of requests in flight to
	// hang up (10573).
	abortOnTerm bool
	// slotsByDefault: /slots is served unless --no-slots (10573); 4748
	// serves it only with --slots.
	slotsByDefault bool
	// flashAttnValue: -fa takes on|off|auto (10573); in 4748 it is a switch.
	flashAttnValue bool
	// hasFit: -fit/--fit exists (10573).
	hasFit bool
}

var builds = map[string]build{
	"10573": {
		number: 10573, commit: "d775b8967",
		version: "version: 0.2.0-dev (build 10573, commit d775b8967)",
		noDelay: true, slotsByDefault: true, flashAttnValue: true, hasFit: true,
	},
	"4748": {
		number: 4748, commit: "c392e5094",
		version:   "version: 4748 (c392e5094)",
		reusePort: true, abortOnTerm: true,
	},
}

const defaultBuild = "10573"

// parseBuild reads FAKE_BUILD.
func parseBuild(env func(string) string) (build, error) {
	name := env("FAKE_BUILD")
	if name == "" {
		name = defaultBuild
	}
	b, ok := builds[name]
	if !ok {
		return build{}, fmt.Errorf("error: FAKE_BUILD=%q is not a build the fake copies: want 4748 or 10573", name)
	}
	return b, nil
}

// info is what /props' build_info and the completion answers' fingerprint
// say: "b10573-d775b8967".
func (b build) info() string { return "b" + strconv.Itoa(b.number) + "-" + b.commit }

// listenConfig sets the build's socket options before bind: Go sets
// SO_REUSEADDR on every listener first, so a 4748 listener clears it again.
func (b build) listenConfig() *net.ListenConfig {
	if !b.reusePort {
		return &net.ListenConfig{}
	}
	return &net.ListenConfig{Control: reusePortOnly}
}

// wrapListener turns TCP_NODELAY off on accepted connections for a build
// that never sets it (Go sets it on every accepted socket).
func (b build) wrapListener(ln net.Listener) net.Listener {
	if b.noDelay {
		return ln
	}
	return nagleListener{ln}
}

type nagleListener struct{ net.Listener }

func (l nagleListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok && err == nil {
		_ = tc.SetNoDelay(false)
	}
	return c, err
}

// splitWrites sends every answer as cpp-httplib does, the headers in one
// write and the body in another, so that without TCP_NODELAY the body waits
// for the client to acknowledge the headers. Go would send a small answer
// in one write, and Nagle's algorithm would then never be seen.
func (b build) splitWrites(next http.Handler) http.Handler {
	if b.noDelay {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		bw := &bufferedWriter{ResponseWriter: w}
		next.ServeHTTP(bw, r)
		if bw.hijacked {
			return
		}
		code := bw.code
		if code == 0 {
			code = http.StatusOK
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(bw.body)))
		w.WriteHeader(code)
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
		_, _ = w.Write(bw.body)
	})
}

// bufferedWriter holds an answer until its handler returns.
type bufferedWriter struct {
	http.ResponseWriter
	code     int
	body     []byte
	hijacked bool
}

func (w *bufferedWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
}

func (w *bufferedWriter) Write(p []byte) (int, error) {
	w.body = append(w.body, p...)
	return len(p), nil
}

// Unwrap lets http.ResponseController hijack the connection (drop).
func (w *bufferedWriter) Unwrap() http.ResponseWriter {
	w.hijacked = true
	return w.ResponseWriter
}
