package supervisor

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"time"
)

// ErrNotRunning means no supervisor answers on a run directory's socket:
// it was never started, has stopped, or was killed (a SIGKILLed supervisor
// leaves its socket file behind; its engine died with it).
var ErrNotRunning = errors.New("supervisor is not running")

// SocketClient talks to one supervisor over its control socket. It dials a
// connection per call and holds nothing open between calls, so it is safe
// for concurrent use and needs no Close.
type SocketClient struct {
	runDir string
	path   string
}

var _ Client = (*SocketClient)(nil)

// NewClient returns a client for the supervisor in runDir without
// contacting it.
func NewClient(runDir string) (Client, error) {
	return newSocketClient(runDir)
}

func newSocketClient(runDir string) (*SocketClient, error) {
	path, err := resolveSocket(runDir)
	if err != nil {
		return nil, err
	}
	return &SocketClient{runDir: runDir, path: path}, nil
}

// Dial returns a client for the supervisor in runDir after checking that
// it answers; otherwise an error wrapping ErrNotRunning (nothing answers)
// or saying what went wrong.
func Dial(ctx context.Context, runDir string) (*SocketClient, error) {
	c, err := newSocketClient(runDir)
	if err != nil {
		return nil, err
	}
	if _, err := c.Status(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// conn is one control connection bound to ctx: cancelling ctx unblocks its
// reads and writes.
type conn struct {
	c    net.Conn
	r    *bufio.Reader
	stop func() bool
}

func (c *SocketClient) dial(ctx context.Context) (*conn, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "unix", c.path)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) {
			return nil, fmt.Errorf("%w in %s (no answer on %s)", ErrNotRunning, c.runDir, c.path)
		}
		return nil, fmt.Errorf("connecting to supervisor in %s: %w", c.runDir, err)
	}
	stop := context.AfterFunc(ctx, func() { _ = nc.SetDeadline(time.Now()) })
	return &conn{c: nc, r: bufio.NewReader(nc), stop: stop}, nil
}

func (k *conn) close() {
	k.stop()
	_ = k.c.Close()
}

func (k *conn) send(ctx context.Context, req wireRequest) error {
	b, _ := json.Marshal(req)
	if _, err := k.c.Write(append(b, '\n')); err != nil {
		return k.fail(ctx, fmt.Errorf("sending %s request: %w", req.Op, err))
	}
	return nil
}

// recv reads one response; io.EOF when the supervisor closed the connection.
func (k *conn) recv(ctx context.Context) (Status, error) {
	line, err := k.r.ReadBytes('\n')
	if err != nil {
		if errors.Is(err, io.EOF) && len(line) == 0 {
			return Status{}, io.EOF
		}
		return Status{}, k.fail(ctx, fmt.Errorf("reading supervisor answer: %w", err))
	}
	var resp wireResponse
	if err := json.Unmarshal(line, &resp); err != nil {
		return Status{}, fmt.Errorf("supervisor answered with malformed JSON: %w", err)
	}
	if resp.Error != "" {
		return Status{}, errors.New(resp.Error)
	}
	if resp.Status == nil {
		return Status{}, errors.New("supervisor answered without a status")
	}
	return *resp.Status, nil
}

func (k *conn) fail(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

func (c *SocketClient) roundTrip(ctx context.Context, req wireRequest) (Status, error) {
	k, err := c.dial(ctx)
	if err != nil {
		return Status{}, err
	}
	defer k.close()
	if err := k.send(ctx, req); err != nil {
		return Status{}, err
	}
	st, err := k.recv(ctx)
	if errors.Is(err, io.EOF) {
		return Status{}, fmt.Errorf("%w in %s: it closed the connection before answering %s", ErrNotRunning, c.runDir, req.Op)
	}
	return st, err
}

// Status returns the supervisor's current status.
func (c *SocketClient) Status(ctx context.Context) (Status, error) {
	return c.roundTrip(ctx, wireRequest{Op: opStatus})
}

// Drain implements Client: it returns once the engine has drained and
// stopped (state stopped); the supervisor keeps running until Stop.
func (c *SocketClient) Drain(ctx context.Context) error {
	_, err := c.DrainWithin(ctx, 0)
	return err
}

// DrainWithin is Drain with deadline d instead of the spec's drain
// deadline (d 0 means the spec's): the engine is stopped once it has no
// requests in flight or d has passed since the drain began. A drain
// already under way ends by the earlier of its deadline and d.
func (c *SocketClient) DrainWithin(ctx context.Context, d time.Duration) (Status, error) {
	if d < 0 {
		return Status{}, fmt.Errorf("draining %s: deadline %s is negative; give a positive duration, or 0 for the spec's", c.runDir, d)
	}
	req := wireRequest{Op: opDrain}
	if d > 0 {
		req.Deadline = d.String()
	}
	st, err := c.roundTrip(ctx, req)
	if err != nil {
		return Status{}, fmt.Errorf("draining %s: %w", c.runDir, err)
	}
	if st.State != Stopped {
		return st, fmt.Errorf("draining %s: supervisor answered in state %s", c.runDir, st.State)
	}
	return st, nil
}

// Update implements Client. Settings are validated by the supervisor;
// invalid ones change nothing and come back as an error naming each
// problem.
func (c *SocketClient) Update(ctx context.Context, s Settings) error {
	if _, err := c.roundTrip(ctx, wireRequest{Op: opUpdate, Settings: &s}); err != nil {
		return fmt.Errorf("updating settings of %s: %w", c.runDir, err)
	}
	return nil
}

// Stop implements Client: it returns once the engine and the supervisor
// process are both gone. grace 0 uses the spec's stop grace.
func (c *SocketClient) Stop(ctx context.Context, grace time.Duration) error {
	k, err := c.dial(ctx)
	if err != nil {
		if errors.Is(err, ErrNotRunning) {
			return nil // nothing to stop
		}
		return err
	}
	defer k.close()
	if err := k.send(ctx, wireRequest{Op: opStatus}); err != nil {
		return err
	}
	before, err := k.recv(ctx)
	if err != nil {
		return fmt.Errorf("stopping %s: %w", c.runDir, err)
	}
	// Pin the supervisor process before asking it to stop: once it exits,
	// its parent may reap it at once and its pid go to another process.
	gone, err := watchProcess(before.SupervisorPID)
	if err != nil {
		return fmt.Errorf("stopping %s: watching supervisor %d: %w", c.runDir, before.SupervisorPID, err)
	}
	defer gone.close()
	req := wireRequest{Op: opStop}
	if grace > 0 {
		req.Grace = grace.String()
	}
	if err := k.send(ctx, req); err != nil {
		return err
	}
	// The answer comes once the engine is gone; EOF alone also means the
	// supervisor is going away.
	if _, err := k.recv(ctx); err != nil && !errors.Is(err, io.EOF) {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("stopping %s: %w", c.runDir, err)
	}
	if err := gone.wait(ctx); err != nil {
		return fmt.Errorf("waiting for supervisor %d of %s to exit: %w", before.SupervisorPID, c.runDir, err)
	}
	return nil
}

// Watch calls fn with the current status and then with every change, until
// fn returns false (nil), ctx ends (ctx's error) or the supervisor exits
// (an ErrNotRunning error).
func (c *SocketClient) Watch(ctx context.Context, fn func(Status) bool) error {
	k, err := c.dial(ctx)
	if err != nil {
		return err
	}
	defer k.close()
	if err := k.send(ctx, wireRequest{Op: opWatch}); err != nil {
		return err
	}
	for {
		st, err := k.recv(ctx)
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("%w in %s: it exited while being watched", ErrNotRunning, c.runDir)
		}
		if err != nil {
			return err
		}
		if !fn(st) {
			return nil
		}
	}
}

// Close implements Client; a SocketClient holds no connection.
func (c *SocketClient) Close() error { return nil }
