package remote

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ssh"
)

// killGrace is how long Run waits, after a cancelled ctx, for a command to
// end after SIGTERM, and then after SIGKILL, before it closes the session.
// A variable, so that a test need not wait it out.
var killGrace = 2 * time.Second

// Conn is one SSH connection to a machine. Its methods may be called from
// several goroutines: each Run is a session of its own on the connection.
type Conn struct {
	machine  Machine
	client   *ssh.Client
	sessions atomic.Int32 // open, for the message when sshd refuses one more
}

// Machine is the machine c is connected to.
func (c *Conn) Machine() Machine { return c.machine }

// Close closes the connection; commands still running are ended.
func (c *Conn) Close() error { return c.client.Close() }

// Result is what a command printed and how it ended.
type Result struct {
	Stdout, Stderr []byte
	// ExitCode is the command's exit status; -1 when a signal ended it.
	ExitCode int
	Signal   string // the signal's name without "SIG", when one ended it
}

// Run runs cmd with the login shell of the machine's user (a POSIX
// shell), with stdin (nil means none) as its standard input, and waits for
// it to end. A non-zero exit is not an error: the error is for a command
// that could not be run or whose end was not reported. When ctx is done
// the command's process group gets SIGTERM, then SIGKILL, and Run returns
// ctx's error once the server reports its end (see kill); when the machine
// does not answer at all, Run closes the connection, at most 5 killGrace
// after ctx is done (see abandon). Run does not
// wait for a Read of stdin that blocks: the goroutine copying it ends when
// that Read returns.
func (c *Conn) Run(ctx context.Context, cmd string, stdin io.Reader) (Result, error) {
	return c.run(ctx, cmd, stdin, true)
}

// run is Run; kill says whether to kill the command when ctx is done
// (false for the kill command itself).
func (c *Conn) run(ctx context.Context, cmd string, stdin io.Reader, kill bool) (Result, error) {
	if err := ctx.Err(); err != nil {
		return Result{}, fmt.Errorf("machine %q: running %s: %w", c.machine.Name, brief(cmd), err)
	}
	s, err := c.newSession(ctx)
	var oce *ssh.OpenChannelError
	switch {
	case errors.As(err, &oce) && (oce.Reason == ssh.Prohibited || oce.Reason == ssh.ConnectionFailed):
		// sshd says only "open failed"; its log says "no more sessions".
		return Result{}, fmt.Errorf("machine %q: the server refused another session on the connection (%d open; %q): sshd allows MaxSessions at once, 10 unless its config says otherwise; run fewer commands at once",
			c.machine.Name, c.sessions.Load(), oce.Message)
	case err != nil:
		return Result{}, fmt.Errorf("machine %q: opening an ssh session: %w", c.machine.Name, err)
	}
	c.sessions.Add(1)
	defer c.sessions.Add(-1)
	defer s.Close()
	var stdout bytes.Buffer
	stderr := &pidWriter{known: make(chan struct{})}
	s.Stdout, s.Stderr = &stdout, stderr
	var stdinPipe io.WriteCloser
	if stdin != nil {
		// Not s.Stdin: s.Wait would wait for the copy, which a Read that
		// blocks would hold up after the command has ended.
		if stdinPipe, err = s.StdinPipe(); err != nil {
			return Result{}, fmt.Errorf("machine %q: opening an ssh session: %w", c.machine.Name, err)
		}
	}
	// sshd makes the command's shell the leader of a new session, so its
	// pid names the process group to kill on cancel. OpenSSH's signal
	// request would do without it, but sshd refuses it for root logins
	// ("session signalling requires privilege separation") and before 7.9.
	if err := s.Start("echo $$ >&2\n" + cmd); err != nil {
		return Result{}, fmt.Errorf("machine %q: starting %s: %w", c.machine.Name, brief(cmd), err)
	}
	if stdinPipe != nil {
		go func() {
			_, _ = io.Copy(stdinPipe, stdin)
			stdinPipe.Close()
		}()
	}
	done := make(chan error, 1)
	go func() { done <- s.Wait() }() // ends with the session, which s.Close ends

	select {
	case err = <-done:
	case <-ctx.Done():
		if kill {
			c.kill(ctx, s, stderr, done)
		} else {
			c.abandon(s, done)
		}
		return Result{Stdout: stdout.Bytes(), Stderr: stderr.Bytes(), ExitCode: -1},
			fmt.Errorf("machine %q: running %s: %w", c.machine.Name, brief(cmd), ctx.Err())
	}
	res := Result{Stdout: stdout.Bytes(), Stderr: stderr.Bytes()}
	var ee *ssh.ExitError
	var missing *ssh.ExitMissingError
	switch {
	case err == nil:
	case errors.As(err, &ee) && ee.Signal() != "":
		res.ExitCode, res.Signal = -1, ee.Signal()
	case errors.As(err, &ee):
		res.ExitCode = ee.ExitStatus()
	case errors.As(err, &missing):
		return res, fmt.Errorf("machine %q: %s ended without an exit status: the connection may have dropped", c.machine.Name, brief(cmd))
	default:
		return res, fmt.Errorf("machine %q: running %s: %w", c.machine.Name, brief(cmd), err)
	}
	return res, nil
}

// kill ends a cancelled command: SIGTERM to its process group, from a
// session of its own, so that it may clean up (EnsureFile removes its
// temporary file), SIGKILL killGrace later if it has not ended, and the
// session closed after another killGrace. It returns when s.Wait has.
func (c *Conn) kill(ctx context.Context, s *ssh.Session, stderr *pidWriter, done <-chan error) {
	timer := time.NewTimer(killGrace)
	defer timer.Stop()
	select {
	case <-done:
		return
	case <-stderr.known:
	case <-timer.C: // no pid: the shell did not start
		c.abandon(s, done)
		return
	}
	for _, sig := range []string{"TERM", "KILL"} {
		if stderr.pid > 0 {
			kctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), killGrace)
			_, _ = c.run(kctx, "kill -"+sig+" -- -"+strconv.Itoa(stderr.pid)+" 2>/dev/null", nil, false)
			cancel()
		}
		timer.Reset(killGrace)
		select {
		case <-done:
			return
		case <-timer.C:
		}
	}
	c.abandon(s, done)
}

// abandon closes s and waits for s.Wait to return. A machine that does not
// answer the close within killGrace is unreachable: then the whole
// connection is closed, which is what ends s.Wait without an answer.
func (c *Conn) abandon(s *ssh.Session, done <-chan error) {
	s.Close()
	timer := time.NewTimer(killGrace)
	defer timer.Stop()
	select {
	case <-done:
		return
	case <-timer.C:
	}
	c.client.Close()
	<-done
}

// newSession is client.NewSession bounded by ctx: the open waits for the
// machine's answer, which an unreachable machine never sends. A session
// that opens after ctx is done is closed, so it does not count against the
// server's MaxSessions.
func (c *Conn) newSession(ctx context.Context) (*ssh.Session, error) {
	type opened struct {
		s   *ssh.Session
		err error
	}
	ch := make(chan opened) // unbuffered: a send succeeds only if run takes it
	go func() {
		s, err := c.client.NewSession()
		select {
		case ch <- opened{s, err}:
		case <-ctx.Done():
			if s != nil {
				s.Close()
			}
		}
	}()
	select {
	case o := <-ch:
		return o.s, o.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// pidWriter is a command's stderr: its first line is the pid the wrapper
// in run prints, the rest is the command's.
type pidWriter struct {
	mu    sync.Mutex
	first []byte        // the first line so far
	seen  bool          // the first line is complete
	pid   int           // from the first line; 0 when it was no number
	known chan struct{} // closed when seen
	buf   bytes.Buffer  // the rest
}

func (w *pidWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(p)
	if !w.seen {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			w.first = append(w.first, p...)
			return n, nil
		}
		w.first = append(w.first, p[:i]...)
		w.pid, _ = strconv.Atoi(string(w.first))
		w.seen = true
		close(w.known)
		p = p[i+1:]
	}
	w.buf.Write(p)
	return n, nil
}

// Bytes is what the command wrote to stderr.
func (w *pidWriter) Bytes() []byte {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.seen { // the wrapper did not run: all of it is the shell's
		return append([]byte(nil), w.first...)
	}
	return w.buf.Bytes()
}

// brief is cmd for an error message: its first line, at most 60 bytes.
func brief(cmd string) string {
	if i := strings.IndexByte(cmd, '\n'); i >= 0 {
		cmd = cmd[:i] + " ..."
	}
	if len(cmd) > 60 {
		cmd = cmd[:57] + "..."
	}
	return fmt.Sprintf("%q", cmd)
}

// Quote makes s one word for the remote shell.
func Quote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./=:@+,") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// Ping asks the server for an answer on the connection (OpenSSH's
// keepalive request), to learn that a connection made earlier still
// works. It returns ctx's error, wrapped, if no answer comes before ctx is
// done: a connection that does not answer is not closed here, the caller
// decides.
func (c *Conn) Ping(ctx context.Context) error {
	answered := make(chan error, 1) // the request ends when the connection does
	go func() {
		// sshd answers a request it does not know with a failure, which is
		// an answer all the same.
		_, _, err := c.client.SendRequest("keepalive@openssh.com", true, nil)
		answered <- err
	}()
	select {
	case err := <-answered:
		if err != nil {
			return fmt.Errorf("machine %q: the connection is gone: %w", c.machine.Name, err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("machine %q: no answer on the connection: %w", c.machine.Name, ctx.Err())
	}
}
