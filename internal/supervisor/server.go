package supervisor

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// The control protocol: newline-delimited JSON over the supervisor's unix
// socket, small enough to carry over TCP when supervisors run on other
// hosts. Requests:
//
//	{"op":"status"}                  → {"status":{…}}
//	{"op":"watch"}                   → {"status":{…}} now and on every change, until the client closes
//	{"op":"drain"}                   → {"status":{…}} once the engine has drained and stopped
//	{"op":"drain","deadline":"5s"}   → the same, with this deadline instead of the spec's
//	{"op":"stop","grace":"10s"}      → {"status":{…}} once the engine is gone; then the supervisor exits
//	{"op":"update","settings":{…}}   → {"status":{…}} once the settings (a Settings) apply
//
// Anything else is answered {"error":"…"}. A grace or deadline of "0s"
// means the spec's.
const (
	opStatus  = "status"
	opWatch   = "watch"
	opDrain   = "drain"
	opStop    = "stop"
	opUpdate  = "update"
	opUnwatch = "unwatch" // internal: a watching client went away
)

type wireRequest struct {
	Op       string    `json:"op"`
	Grace    string    `json:"grace,omitempty"`
	Deadline string    `json:"deadline,omitempty"`
	Settings *Settings `json:"settings,omitempty"`
}

type wireResponse struct {
	Status *Status `json:"status,omitempty"`
	Error  string  `json:"error,omitempty"`
}

// maxSunPath is the longest unix socket path Linux accepts (sun_path is
// 108 bytes including the terminating NUL).
const maxSunPath = 107

// watchBuffer is how many statuses a slow watcher may fall behind before
// it loses the oldest.
const watchBuffer = 64

// socketPath returns where runDir's supervisor listens: RUNDIR/supervisor.sock,
// or, when that path is too long for a unix socket, a hashed name in a
// private directory under os.TempDir (recorded in RUNDIR/socket).
func socketPath(runDir string) (path string, indirect bool, err error) {
	abs, err := filepath.Abs(runDir)
	if err != nil {
		return "", false, fmt.Errorf("resolving run directory %s: %w", runDir, err)
	}
	p := filepath.Join(abs, SocketFile)
	if len(p) <= maxSunPath {
		return p, false, nil
	}
	sum := sha256.Sum256([]byte(abs))
	dir := filepath.Join(os.TempDir(), fmt.Sprintf("llorch-%d", os.Getuid()))
	return filepath.Join(dir, hex.EncodeToString(sum[:8])+".sock"), true, nil
}

// listenControl listens on runDir's socket, mode 0600, and returns a
// cleanup that closes it and removes the socket file.
func listenControl(runDir string) (net.Listener, func(), error) {
	path, indirect, err := socketPath(runDir)
	if err != nil {
		return nil, nil, err
	}
	if indirect {
		if err := privateDir(filepath.Dir(path)); err != nil {
			return nil, nil, err
		}
	}
	// A supervisor killed with SIGKILL leaves its socket behind; the
	// caller has checked that no live supervisor owns this run directory.
	if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
		return nil, nil, fmt.Errorf("removing stale control socket: %w", err)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, nil, fmt.Errorf("listening on control socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		_ = ln.Close()
		return nil, nil, fmt.Errorf("restricting control socket: %w", err)
	}
	pointer := filepath.Join(runDir, SocketPathFile)
	if indirect {
		if err := os.WriteFile(pointer, []byte(path+"\n"), 0o600); err != nil {
			_ = ln.Close()
			return nil, nil, fmt.Errorf("recording control socket path: %w", err)
		}
	} else {
		_ = os.Remove(pointer)
	}
	return ln, func() {
		_ = ln.Close() // unlinks the socket file
		if indirect {
			_ = os.Remove(pointer)
		}
	}, nil
}

// privateDir makes dir (0700) or checks that an existing one is ours and
// private, so nobody else can plant a socket where we look for one.
func privateDir(dir string) error {
	if err := os.Mkdir(dir, 0o700); err != nil && !os.IsExist(err) {
		return fmt.Errorf("creating socket directory: %w", err)
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("checking socket directory: %w", err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !fi.IsDir() || fi.Mode().Perm() != 0o700 || (ok && int(st.Uid) != os.Getuid()) {
		return fmt.Errorf("socket directory %s is not a private directory of this user; remove it and retry", dir)
	}
	return nil
}

// resolveSocket returns the socket path of the supervisor in runDir.
func resolveSocket(runDir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(runDir, SocketPathFile))
	if err == nil {
		return strings.TrimSpace(string(b)), nil
	}
	if !os.IsNotExist(err) {
		return "", fmt.Errorf("reading control socket path: %w", err)
	}
	p, _, err := socketPath(runDir)
	return p, err
}

// server answers control requests; status comes from the snapshot, the
// rest goes through the supervisor loop.
type server struct {
	ln net.Listener
	s  *supervisor

	wg    sync.WaitGroup
	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

func newServer(ln net.Listener, s *supervisor) *server {
	return &server{ln: ln, s: s, conns: make(map[net.Conn]struct{})}
}

// serve accepts until the listener is closed.
func (srv *server) serve() {
	for {
		c, err := srv.ln.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				srv.s.log.Error("control socket accept", "err", err)
			}
			return
		}
		srv.mu.Lock()
		if srv.conns == nil { // shutting down
			srv.mu.Unlock()
			_ = c.Close()
			continue
		}
		srv.conns[c] = struct{}{}
		srv.wg.Add(1)
		srv.mu.Unlock()
		go srv.handle(c)
	}
}

// shutdown runs after the loop has answered everyone: it stops accepting,
// wakes every reader, and gives handlers a moment to flush final answers.
func (srv *server) shutdown() {
	_ = srv.ln.Close()
	srv.mu.Lock()
	conns := srv.conns
	srv.conns = nil
	srv.mu.Unlock()
	for c := range conns {
		_ = c.SetReadDeadline(time.Now())
	}
	done := make(chan struct{})
	go func() { srv.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * time.Second): // a client that stopped reading
		for c := range conns {
			_ = c.Close()
		}
		<-done
	}
}

func (srv *server) handle(c net.Conn) {
	defer srv.wg.Done()
	defer c.Close()
	enc := json.NewEncoder(c)
	sc := bufio.NewScanner(c)
	sc.Buffer(make([]byte, 4096), 64<<10)
	for sc.Scan() {
		var req wireRequest
		if err := json.Unmarshal(sc.Bytes(), &req); err != nil {
			_ = enc.Encode(wireResponse{Error: fmt.Sprintf("request is not JSON: %v", err)})
			continue
		}
		switch req.Op {
		case opStatus:
			st := srv.s.Snapshot()
			if enc.Encode(wireResponse{Status: &st}) != nil {
				return
			}
		case opWatch:
			srv.watch(c, enc, sc)
			return
		case opDrain, opStop, opUpdate:
			r, msg := parseRequest(req)
			if msg != "" {
				_ = enc.Encode(wireResponse{Error: msg})
				continue
			}
			st, err := srv.s.call(r)
			resp := wireResponse{Status: &st}
			if err != nil {
				resp = wireResponse{Error: err.Error()}
			}
			if enc.Encode(resp) != nil {
				return
			}
		default:
			_ = enc.Encode(wireResponse{Error: fmt.Sprintf("unknown op %q; use status, watch, drain, stop or update", req.Op)})
		}
	}
}

// parseRequest turns a drain, stop or update request into the loop's
// request, or returns the answer to a malformed one.
func parseRequest(req wireRequest) (request, string) {
	r := request{op: req.Op}
	var msg string
	if r.grace, msg = parseDuration("grace", req.Grace, "10s"); msg != "" {
		return r, msg
	}
	if r.deadline, msg = parseDuration("deadline", req.Deadline, "5s"); msg != "" {
		return r, msg
	}
	if req.Op == opUpdate {
		if req.Settings == nil {
			return r, `update needs settings: send {"op":"update","settings":{…}}`
		}
		r.settings = *req.Settings
	}
	return r, ""
}

// parseDuration reads an optional non-negative duration field.
func parseDuration(name, v, example string) (time.Duration, string) {
	if v == "" {
		return 0, ""
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return 0, fmt.Sprintf("%s %q is not a duration; use a number and a unit, like %q", name, v, example)
	}
	return d, ""
}

// watch streams statuses until the client goes away or the loop ends.
func (srv *server) watch(c net.Conn, enc *json.Encoder, sc *bufio.Scanner) {
	ch := make(chan Status, watchBuffer)
	if _, err := srv.s.call(request{op: opWatch, watch: ch}); err != nil {
		_ = enc.Encode(wireResponse{Error: err.Error()})
		return
	}
	gone := make(chan struct{})
	go func() {
		// Ends when the client closes, or at shutdown's read deadline.
		for sc.Scan() {
		}
		close(gone)
	}()
	for {
		select {
		case st, ok := <-ch:
			if !ok {
				return
			}
			if enc.Encode(wireResponse{Status: &st}) != nil {
				_, _ = srv.s.call(request{op: opUnwatch, watch: ch})
				return
			}
		case <-gone:
			_, _ = srv.s.call(request{op: opUnwatch, watch: ch})
			return
		}
	}
}

// errShuttingDown answers requests that arrive after the loop ended.
var errShuttingDown = errors.New("the supervisor is shutting down")

// call hands req to the loop and waits for its answer. The loop answers
// every request it accepted before it returns, so the wait cannot strand.
func (s *supervisor) call(req request) (Status, error) {
	switch req.op {
	case opDrain, opStop:
		req.reply = make(chan Status, 1)
	case opUpdate:
		req.done = make(chan error, 1)
	}
	select {
	case s.reqs <- req:
	case <-s.loopDone:
		return s.Snapshot(), errShuttingDown
	}
	switch {
	case req.reply != nil:
		return <-req.reply, nil
	case req.done != nil:
		if err := <-req.done; err != nil {
			return Status{}, err
		}
		return s.Snapshot(), nil
	}
	return Status{}, nil
}
