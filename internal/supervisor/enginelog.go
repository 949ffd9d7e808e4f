package supervisor

import (
	"bytes"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/spf13/afero"
)

// Log defaults, used when Spec leaves them zero.
const (
	DefaultLogMaxBytes = 10 << 20
	DefaultLogKeep     = 3
	// tailLines is how many of the engine's last log lines go into a
	// start failure's last_error.
	tailLines = 20
	// maxTailLine bounds one remembered line, so a runaway line without a
	// newline cannot grow the tail without limit.
	maxTailLine = 4 << 10
)

// engineLog is engine.log: it appends, rotates at maxBytes keeping keep old
// files (engine.log.1 is the newest), and remembers the last lines written
// since the last MarkStart for error messages. Engine output arrives from
// os/exec's copying goroutine while the supervisor loop reads the tail, so
// it locks.
type engineLog struct {
	fs       afero.Fs
	path     string
	maxBytes int64
	keep     int

	// activity, when set, gets a token (never blocking; tokens coalesce)
	// after each write of engine output that holds more than quiet lines,
	// while watching is on: the supervisor probes readiness on output. Set
	// before any engine runs.
	activity chan<- struct{}
	watching atomic.Bool

	mu sync.Mutex
	// quiet lines are kept in the file but not in the tail, and are no
	// activity: llama-server logs every request, and the supervisor's own
	// probes would push the lines that explain a failure out of the tail
	// and, as activity, trigger probes of their own without end.
	quiet []string

	f    afero.File
	size int64
	tail []string // complete lines since MarkStart, at most tailLines
	part []byte   // the unfinished last line
}

func openEngineLog(fs afero.Fs, path string, maxBytes int64, keep int, quiet ...string) (*engineLog, error) {
	l := &engineLog{fs: fs, path: path, maxBytes: maxBytes, keep: keep, quiet: quiet}
	if err := l.open(); err != nil {
		return nil, err
	}
	return l, nil
}

func (l *engineLog) open() error {
	f, err := l.fs.OpenFile(l.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("opening engine log: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return fmt.Errorf("reading size of engine log %s: %w", l.path, err)
	}
	l.f, l.size = f, fi.Size()
	return nil
}

// Write appends the engine's output p, rotating first when p would take
// the file past maxBytes, and signals activity. A write error is reported
// to the caller (os/exec's copier), which then stops copying; the engine's
// later output is lost but the engine runs on.
func (l *engineLog) Write(p []byte) (int, error) {
	n, loud, err := l.write(p)
	if loud && l.activity != nil && l.watching.Load() {
		select {
		case l.activity <- struct{}{}:
		default: // a token is already waiting
		}
	}
	return n, err
}

// write appends p; loud reports output other than quiet lines.
func (l *engineLog) write(p []byte) (n int, loud bool, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	loud = l.remember(p)
	if l.f == nil {
		return 0, loud, fmt.Errorf("engine log %s is closed", l.path)
	}
	if l.size > 0 && l.size+int64(len(p)) > l.maxBytes {
		if err := l.rotate(); err != nil {
			return 0, loud, err
		}
	}
	n, err = l.f.Write(p)
	l.size += int64(n)
	return n, loud, err
}

// watchOutput turns activity signals on (a starting engine) or off.
func (l *engineLog) watchOutput(on bool) { l.watching.Store(on) }

// setQuiet replaces the quiet line patterns (the health path changed).
func (l *engineLog) setQuiet(quiet []string) {
	l.mu.Lock()
	l.quiet = quiet
	l.mu.Unlock()
}

// rotate shifts engine.log.N-1 → .N … engine.log → .1 and reopens; l.mu is
// held.
func (l *engineLog) rotate() error {
	if err := l.f.Close(); err != nil {
		return fmt.Errorf("closing engine log for rotation: %w", err)
	}
	l.f = nil
	if l.keep <= 0 {
		if err := l.fs.Remove(l.path); err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("rotating engine log: %w", err)
		}
		return l.open()
	}
	_ = l.fs.Remove(fmt.Sprintf("%s.%d", l.path, l.keep))
	for i := l.keep - 1; i >= 1; i-- {
		from := fmt.Sprintf("%s.%d", l.path, i)
		if err := l.fs.Rename(from, fmt.Sprintf("%s.%d", l.path, i+1)); err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("rotating engine log: %w", err)
		}
	}
	if err := l.fs.Rename(l.path, l.path+".1"); err != nil {
		return fmt.Errorf("rotating engine log: %w", err)
	}
	return l.open()
}

// remember keeps the last tailLines complete lines and reports whether p
// holds anything but quiet lines (an unfinished line counts by what it
// holds so far); l.mu is held.
func (l *engineLog) remember(p []byte) (loud bool) {
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			room := maxTailLine - len(l.part)
			l.part = append(l.part, p[:min(len(p), max(room, 0))]...)
			return loud || !l.isQuiet(string(l.part))
		}
		room := maxTailLine - len(l.part)
		l.part = append(l.part, p[:min(i, max(room, 0))]...)
		if line := strings.TrimRight(string(l.part), "\r"); !l.isQuiet(line) {
			l.tail = append(l.tail, line)
			loud = true
		}
		if len(l.tail) > tailLines {
			l.tail = l.tail[len(l.tail)-tailLines:]
		}
		l.part = l.part[:0]
		p = p[i+1:]
	}
	return loud
}

func (l *engineLog) isQuiet(line string) bool {
	for _, q := range l.quiet {
		if strings.Contains(line, q) {
			return true
		}
	}
	return false
}

// probeLogLines are the substrings of llama-server's request log lines
// ("srv  log_server_r: request: GET /health 127.0.0.1 200") that the
// supervisor's own probes cause.
func probeLogLines(healthPath string, p Protocol) []string {
	paths := []string{healthPath}
	if p.Identity != nil {
		paths = append(paths, p.Identity.Path)
	}
	for _, f := range p.InFlight {
		paths = append(paths, f.Path)
	}
	// "GET /health " is in llama-server's request line ("request: GET
	// /health 127.0.0.1 200") and in uvicorn's ("GET /health HTTP/1.1").
	var out []string
	for _, path := range paths {
		if line := "GET " + path + " "; !slices.Contains(out, line) {
			out = append(out, line)
		}
	}
	return out
}

// MarkStart writes a separator line for a new engine process and forgets
// the previous process's tail.
func (l *engineLog) MarkStart(line string) {
	l.mu.Lock()
	l.tail, l.part = nil, nil
	l.mu.Unlock()
	_, _, _ = l.write([]byte(line + "\n")) // the supervisor's line: no activity
	l.mu.Lock()
	l.tail = nil
	l.mu.Unlock()
}

// Tail returns the last lines the current engine wrote, including an
// unfinished last line; never nil.
func (l *engineLog) Tail() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := append(make([]string, 0, len(l.tail)+1), l.tail...)
	if len(l.part) > 0 {
		out = append(out, string(l.part))
	}
	if len(out) > tailLines {
		out = out[len(out)-tailLines:]
	}
	return out
}

func (l *engineLog) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}

// withTail appends the engine's last log lines to msg, the shape of every
// start failure's last_error.
func withTail(msg string, tail []string) string {
	if len(tail) == 0 {
		return msg + " (the engine wrote nothing to its log)"
	}
	return msg + "; last engine log lines:\n" + strings.Join(tail, "\n")
}
