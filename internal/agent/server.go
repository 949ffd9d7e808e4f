package agent

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/spf13/afero"

	"github.com/llorch/llorch/internal/supervisor"
	"github.com/llorch/llorch/state/handoff"
)

// maxLine bounds one message: a status of a thousand replicas is about
// 600 KB.
const maxLine = 64 << 20

// Options configure the serving side.
type Options struct {
	// DataDir is llorch's directory on the machine; run directories are
	// DataDir/run/NAME.
	DataDir string
	// Exe supervises the replicas the agent launches, as `Exe supervise
	// RUNDIR`; "" means supervisor.Program of this executable.
	Exe string
	// Env is the supervisors' environment; nil means
	// supervisor.SupervisorEnviron of this process's.
	Env []string
}

// Serve speaks the agent protocol on r and w until r ends (nil) or ctx
// is done (ctx's error), and returns once every request in flight has
// been answered; ctx's end cancels them. It refuses a client of another
// protocol version. The goroutine reading r ends when r does: the caller
// closes it (for `llorch agent`, stdin ends with the SSH session).
func Serve(ctx context.Context, r io.Reader, w io.Writer, opts Options) error {
	dataDir, err := filepath.Abs(opts.DataDir)
	if err != nil || opts.DataDir == "" {
		return fmt.Errorf("agent: data directory %q: give an absolute path", opts.DataDir)
	}
	exe := opts.Exe
	if exe == "" {
		self, err := os.Executable()
		if err != nil {
			return fmt.Errorf("agent: finding the llorch executable: %w", err)
		}
		exe, _ = supervisor.Program(self)
	}
	s := &server{runs: filepath.Join(dataDir, "run"), fs: afero.NewOsFs(),
		launcher: &supervisor.ExecLauncher{Exe: exe, Args: []string{"supervise"}, Env: opts.Env}}
	lines := make(chan []byte)
	readErr := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), maxLine)
		for sc.Scan() {
			select {
			case lines <- append([]byte(nil), sc.Bytes()...):
			case <-ctx.Done():
				readErr <- ctx.Err()
				return
			}
		}
		readErr <- sc.Err()
	}()
	next := func() ([]byte, error) {
		select {
		case l := <-lines:
			return l, nil
		case err := <-readErr:
			if err == nil {
				err = io.EOF
			}
			return nil, err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}

	// Reading has begun before the hello goes out: over a pipe without a
	// buffer, both sides' hellos would otherwise wait for each other.
	out := &lineWriter{w: w}
	own := Own()
	if err := out.send(helloMsg{Hello: &own}); err != nil {
		return fmt.Errorf("agent: sending hello: %w", err)
	}
	first, err := next()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil // the client went away before its hello
		}
		return fmt.Errorf("agent: reading the client's hello: %w", err)
	}
	var hm helloMsg
	if json.Unmarshal(first, &hm) != nil || hm.Hello == nil {
		return fmt.Errorf("agent: the client's first message is not a hello: %s", excerpt(first))
	}
	if hm.Hello.Protocol != ProtocolVersion {
		return fmt.Errorf("agent: the client speaks %s, this agent %s; refusing it", hm.Hello, own)
	}

	reqCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	var mu sync.Mutex
	inflight := map[uint64]context.CancelFunc{}
	for {
		line, err := next()
		if err != nil {
			cancel()
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		var req request
		if err := json.Unmarshal(line, &req); err != nil {
			_ = out.send(response{Error: fmt.Sprintf("the agent cannot read the request %s: %v", excerpt(line), err)})
			continue
		}
		if req.Op == opCancel {
			mu.Lock()
			if c := inflight[req.ID]; c != nil {
				c()
			}
			mu.Unlock()
			continue
		}
		rctx, rcancel := context.WithCancel(reqCtx)
		mu.Lock()
		inflight[req.ID] = rcancel
		mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp := s.handle(rctx, req)
			resp.ID = req.ID
			mu.Lock()
			delete(inflight, req.ID)
			mu.Unlock()
			rcancel()
			// A write that fails means the client is gone; the read
			// loop learns so from r.
			_ = out.send(resp)
		}()
	}
}

type server struct {
	runs     string // DATA_DIR/run
	fs       afero.Fs
	launcher *supervisor.ExecLauncher
}

func (s *server) handle(ctx context.Context, req request) response {
	fail := func(err error) response { return response{Error: err.Error()} }
	switch req.Op {
	case opStatus:
		reps, err := s.status()
		if err != nil {
			return fail(err)
		}
		return response{Replicas: reps}
	case opLaunch:
		if req.Spec == nil {
			return fail(errors.New("launch without a spec"))
		}
		if err := s.checkRunDir(req.Spec.RunDir); err != nil {
			return fail(err)
		}
		c, st, err := s.launcher.Launch(ctx, *req.Spec)
		if err != nil {
			return fail(err)
		}
		_ = c.Close()
		return response{Status: &st}
	case opStop, opDrain:
		if err := s.checkRunDir(req.RunDir); err != nil {
			return fail(err)
		}
		c, err := supervisor.NewClient(req.RunDir)
		if err != nil {
			return fail(err)
		}
		defer c.Close()
		// The client's error names the request and its run directory
		// already; the supervisor client's does too.
		bare := func(err error, verb string) response {
			return response{Error: strings.TrimPrefix(err.Error(), verb+" "+req.RunDir+": ")}
		}
		if req.Op == opStop {
			if err := c.Stop(ctx, req.Grace); err != nil {
				return bare(err, "stopping")
			}
			return response{}
		}
		st, err := c.DrainWithin(ctx, req.Grace)
		if err != nil {
			return bare(err, "draining")
		}
		return response{Status: &st}
	case opHandoffs:
		hs, err := s.handoffs()
		if err != nil {
			return fail(err)
		}
		return response{Handoffs: hs}
	}
	return fail(fmt.Errorf("the agent has no request %q: it speaks protocol %d", req.Op, ProtocolVersion))
}

// checkRunDir refuses a run directory that is not DATA_DIR/run/NAME.
func (s *server) checkRunDir(dir string) error {
	if dir == "" || !filepath.IsAbs(dir) || filepath.Dir(filepath.Clean(dir)) != s.runs {
		return fmt.Errorf("run directory %q is not a directory of %s: the agent manages only its own data directory's run directories", dir, s.runs)
	}
	return nil
}

// runDirs lists DATA_DIR/run's directories, sorted; none when it does
// not exist yet.
func (s *server) runDirs() ([]string, error) {
	entries, err := os.ReadDir(s.runs)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("listing run directories: %w", err)
	}
	var dirs []string
	for _, e := range entries {
		if e.IsDir() {
			dirs = append(dirs, filepath.Join(s.runs, e.Name()))
		}
	}
	return dirs, nil
}

// status reads every run directory as a refresh does locally: one
// status.json read each, and one snapshot of the listening control
// sockets for all of them.
func (s *server) status() ([]Replica, error) {
	dirs, err := s.runDirs()
	if err != nil {
		return nil, err
	}
	socks, _ := supervisor.ListeningControlSockets() // nil: RunningIn reads command lines
	reps := make([]Replica, 0, len(dirs))
	for _, d := range dirs {
		st, ok := supervisor.RunningIn(s.fs, d, socks)
		r := Replica{RunDir: d, Status: st, Running: ok}
		if !ok && st.SupervisorPID == 0 {
			if _, err := supervisor.ReadStatus(s.fs, d); err != nil {
				r.Error = err.Error()
			}
		}
		reps = append(reps, r)
	}
	return reps, nil
}

// handoffs reads the handoff file each run directory's spec names, where
// there is one.
func (s *server) handoffs() ([]Handoff, error) {
	dirs, err := s.runDirs()
	if err != nil {
		return nil, err
	}
	var hs []Handoff
	for _, d := range dirs {
		spec, err := supervisor.ReadSpec(s.fs, d)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			hs = append(hs, Handoff{RunDir: d, Error: err.Error()})
			continue
		}
		if spec.HandoffPath == "" {
			continue
		}
		f, err := handoff.Read(s.fs, spec.HandoffPath)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		h := Handoff{RunDir: d, Path: spec.HandoffPath, File: f}
		if err != nil {
			h.Error = err.Error()
		}
		hs = append(hs, h)
	}
	return hs, nil
}

// lineWriter writes one JSON message per line, whole lines only, from
// several goroutines.
type lineWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lineWriter) send(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	_, err = l.w.Write(append(b, '\n'))
	return err
}

// excerpt is a message for an error: at most 80 bytes, quoted.
func excerpt(b []byte) string {
	if len(b) > 80 {
		return fmt.Sprintf("%q...", b[:77])
	}
	return fmt.Sprintf("%q", b)
}
