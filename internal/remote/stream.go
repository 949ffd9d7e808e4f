package remote

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"golang.org/x/crypto/ssh"
)

// Stream is a command running on the machine with its standard input and
// output connected to this process, for a conversation (the llorch agent)
// rather than a question with one answer (Run).
type Stream struct {
	// Stdin is the command's standard input; closing it sends EOF.
	Stdin io.WriteCloser
	// Stdout is the command's standard output; it returns io.EOF once
	// the command has closed it or the session has ended.
	Stdout io.Reader

	conn   *Conn
	cmd    string
	s      *ssh.Session
	stderr *tailBuffer
	done   chan struct{} // closed when the session's end is known
	err    error         // s.Wait's, set before done is closed
	once   sync.Once
}

// stderrTail is how much of a stream's stderr is kept for messages.
const stderrTail = 4 << 10

// Start runs cmd with the login shell of the machine's user, as Run
// does, and returns at once with its stdin and stdout connected. ctx
// bounds only the start (opening the session on a machine that may not
// answer): the command runs until it exits or Close is called, whatever
// becomes of ctx later. The last 4 KiB of its stderr are kept for Wait's
// error.
func (c *Conn) Start(ctx context.Context, cmd string) (*Stream, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("machine %q: starting %s: %w", c.machine.Name, brief(cmd), err)
	}
	s, err := c.newSession(ctx)
	if err != nil {
		return nil, fmt.Errorf("machine %q: opening an ssh session: %w", c.machine.Name, err)
	}
	st := &Stream{conn: c, cmd: cmd, s: s, stderr: &tailBuffer{max: stderrTail}, done: make(chan struct{})}
	s.Stderr = st.stderr
	if st.Stdin, err = s.StdinPipe(); err == nil {
		st.Stdout, err = s.StdoutPipe()
	}
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("machine %q: opening an ssh session: %w", c.machine.Name, err)
	}
	if err := s.Start(cmd); err != nil {
		s.Close()
		return nil, fmt.Errorf("machine %q: starting %s: %w", c.machine.Name, brief(cmd), err)
	}
	c.sessions.Add(1)
	go func() { // ends with the session, which Close ends
		st.err = s.Wait()
		c.sessions.Add(-1)
		close(st.done)
	}()
	return st, nil
}

// Wait waits for the command to end, or ctx, and says how it ended: nil
// for exit status 0, an error naming the status or signal and the end of
// its stderr otherwise. Read Stdout to its end before: the command may
// be blocked writing to it.
func (st *Stream) Wait(ctx context.Context) error {
	select {
	case <-st.done:
	case <-ctx.Done():
		return fmt.Errorf("machine %q: waiting for %s: %w", st.conn.machine.Name, brief(st.cmd), ctx.Err())
	}
	var ee *ssh.ExitError
	var missing *ssh.ExitMissingError
	tail := st.Stderr()
	if tail != "" {
		tail = ": " + tail
	}
	switch {
	case st.err == nil:
		return nil
	case errors.As(st.err, &ee) && ee.Signal() != "":
		return fmt.Errorf("machine %q: %s was ended by SIG%s%s", st.conn.machine.Name, brief(st.cmd), ee.Signal(), tail)
	case errors.As(st.err, &ee):
		return fmt.Errorf("machine %q: %s exited with status %d%s", st.conn.machine.Name, brief(st.cmd), ee.ExitStatus(), tail)
	case errors.As(st.err, &missing):
		return fmt.Errorf("machine %q: %s ended without an exit status: the connection may have dropped%s", st.conn.machine.Name, brief(st.cmd), tail)
	}
	return fmt.Errorf("machine %q: running %s: %w", st.conn.machine.Name, brief(st.cmd), st.err)
}

// Exited is closed once the command has ended (or the session closed).
func (st *Stream) Exited() <-chan struct{} { return st.done }

// Stderr is the end of what the command wrote to stderr so far, trimmed.
func (st *Stream) Stderr() string { return st.stderr.String() }

// Close closes the command's stdin and the session. A command reading
// its stdin (the agent) sees EOF and ends; sshd does not signal commands
// run without a terminal, so processes the command started in sessions of
// their own keep running.
func (st *Stream) Close() error {
	st.once.Do(func() {
		_ = st.Stdin.Close()
		_ = st.s.Close()
	})
	return nil
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append(t.b[:0], t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := string(t.b)
	for len(s) > 0 && (s[len(s)-1] == '\n' || s[len(s)-1] == ' ') {
		s = s[:len(s)-1]
	}
	return s
}
