package agent

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/llorch/llorch/internal/supervisor"
)

// Client is the llorch side of an agent connection. Its methods may be
// called from several goroutines; their requests are in flight together.
type Client struct {
	name   string
	w      io.Writer
	closer io.Closer
	why    func() string
	peer   Hello

	wmu sync.Mutex // one line at a time on w

	mu      sync.Mutex
	next    uint64
	pending map[uint64]chan response
	dead    error         // why the connection ended, once it has
	done    chan struct{} // closed when it has
}

// ClientOptions describe the stream a Client talks over.
type ClientOptions struct {
	// Machine names the machine in every error.
	Machine string
	// Closer ends the stream (the SSH session): Close calls it, and so
	// does NewClient when it fails.
	Closer io.Closer
	// Why, when set, adds to the error of a stream that ended what the
	// agent said about it (its stderr).
	Why func() string
}

// NewClient sends this llorch's hello on w, waits for the agent's on r,
// and returns a Client once both speak the same protocol version. ctx
// bounds only the wait for the hello. The goroutine reading r ends when
// r does: Close ends it.
func NewClient(ctx context.Context, r io.Reader, w io.Writer, opts ClientOptions) (*Client, error) {
	c := &Client{name: opts.Machine, w: w, closer: opts.Closer, why: opts.Why,
		pending: map[uint64]chan response{}, done: make(chan struct{})}
	fail := func(err error) (*Client, error) {
		_ = c.Close()
		return nil, err
	}
	// Reading begins before the hello goes out, as in Serve.
	hello := make(chan []byte, 1)
	go c.read(r, hello)
	own := Own()
	if err := c.send(helloMsg{Hello: &own}); err != nil {
		return fail(fmt.Errorf("machine %q: sending hello to the llorch agent: %w", c.name, err))
	}
	var first []byte
	select {
	case first = <-hello:
	case <-c.done:
		return fail(c.deadErr("", "before its hello"))
	case <-ctx.Done():
		return fail(fmt.Errorf("machine %q: waiting for the llorch agent's hello: %w", c.name, ctx.Err()))
	}
	var hm helloMsg
	if json.Unmarshal(first, &hm) != nil || hm.Hello == nil {
		return fail(fmt.Errorf("machine %q: the llorch agent's first message is not a hello but %s: something other than llorch agent answered on the session", c.name, excerpt(first)))
	}
	c.peer = *hm.Hello
	if c.peer.Protocol != ProtocolVersion {
		return fail(fmt.Errorf("machine %q: the llorch agent there speaks %s, but this llorch speaks %s: both ends must speak the same protocol; llorch starts the agent from its own binary, uploaded to the machine's data_dir, so run the same llorch build at both ends",
			c.name, c.peer, own))
	}
	return c, nil
}

// Peer is the agent's hello.
func (c *Client) Peer() Hello { return c.peer }

// Close ends the connection; pending requests fail.
func (c *Client) Close() error {
	c.fail(errClosed)
	if c.closer != nil {
		return c.closer.Close()
	}
	return nil
}

var errClosed = errors.New("the connection was closed")

// Done is closed once the connection has ended.
func (c *Client) Done() <-chan struct{} { return c.done }

// read hands the first line to hello and answers to their requests until
// r ends.
func (c *Client) read(r io.Reader, hello chan<- []byte) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxLine)
	first := true
	for sc.Scan() {
		if first {
			first = false
			hello <- append([]byte(nil), sc.Bytes()...)
			continue
		}
		var resp response
		if err := json.Unmarshal(sc.Bytes(), &resp); err != nil {
			c.fail(fmt.Errorf("the agent sent %s, which is not an answer: %w", excerpt(sc.Bytes()), err))
			return
		}
		c.mu.Lock()
		ch := c.pending[resp.ID]
		delete(c.pending, resp.ID)
		c.mu.Unlock()
		if ch != nil { // nil: abandoned, or an error about no request
			ch <- resp
		}
	}
	err := sc.Err()
	if err == nil {
		err = io.EOF
	}
	c.fail(err)
}

// fail records the end of the connection; the first cause wins.
func (c *Client) fail(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dead == nil {
		c.dead = err
		close(c.done)
	}
}

// deadErr words the end of the connection for a request; when says at
// which point it came.
func (c *Client) deadErr(what, when string) error {
	if what != "" {
		what += ": "
	}
	c.mu.Lock()
	err := c.dead
	c.mu.Unlock()
	if errors.Is(err, errClosed) {
		return fmt.Errorf("machine %q: %sthe connection to the llorch agent was closed", c.name, what)
	}
	why := ""
	if c.why != nil {
		if s := c.why(); s != "" {
			why = "; it said: " + s
		}
	}
	if errors.Is(err, io.EOF) {
		return fmt.Errorf("machine %q: %sthe llorch agent's connection ended %s: the agent exited or the connection dropped%s", c.name, what, when, why)
	}
	return fmt.Errorf("machine %q: %sthe llorch agent's connection failed %s: %w%s", c.name, what, when, err, why)
}

func (c *Client) send(v any) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = c.w.Write(append(b, '\n'))
	return err
}

// call sends req and waits for its answer. The send itself is not bound
// by ctx: a request is a line of a few hundred bytes, which the SSH
// channel's window takes at once. When ctx is done first the
// request is abandoned: the agent is told to cancel it and its answer,
// should one come, is dropped; the connection stays usable. what names
// the request in errors.
func (c *Client) call(ctx context.Context, what string, req request) (response, error) {
	if err := ctx.Err(); err != nil {
		return response{}, fmt.Errorf("machine %q: %s: %w", c.name, what, err)
	}
	ch := make(chan response, 1)
	c.mu.Lock()
	if c.dead != nil {
		c.mu.Unlock()
		return response{}, c.deadErr(what, "earlier")
	}
	c.next++
	req.ID = c.next
	c.pending[req.ID] = ch
	c.mu.Unlock()
	forget := func() {
		c.mu.Lock()
		delete(c.pending, req.ID)
		c.mu.Unlock()
	}
	if err := c.send(req); err != nil {
		forget()
		return response{}, fmt.Errorf("machine %q: %s: sending the request to the llorch agent: %w", c.name, what, err)
	}
	select {
	case resp := <-ch:
		if resp.Error != "" {
			return resp, fmt.Errorf("machine %q: %s: %s", c.name, what, resp.Error)
		}
		return resp, nil
	case <-c.done:
		select {
		case resp := <-ch: // answered just before the end
			if resp.Error != "" {
				return resp, fmt.Errorf("machine %q: %s: %s", c.name, what, resp.Error)
			}
			return resp, nil
		default:
		}
		return response{}, c.deadErr(what, "with the request unanswered")
	case <-ctx.Done():
		forget()
		// Not waited for: a stream that does not take the line now would
		// hold up the return. The write ends when the stream takes it or
		// Close ends the stream.
		go func() { _ = c.send(request{ID: req.ID, Op: opCancel}) }()
		return response{}, fmt.Errorf("machine %q: %s: %w", c.name, what, ctx.Err())
	}
}

// Status is every run directory's status on the machine, in one round
// trip, sorted by run directory.
func (c *Client) Status(ctx context.Context) ([]Replica, error) {
	resp, err := c.call(ctx, "status", request{Op: opStatus})
	return resp.Replicas, err
}

// Launch starts a supervisor for spec on the machine and returns its
// first ready status; on failure nothing is left running there and the
// error carries the engine's last log lines. spec.RunDir must be
// DATA_DIR/run/NAME on the machine.
func (c *Client) Launch(ctx context.Context, spec supervisor.Spec) (supervisor.Status, error) {
	resp, err := c.call(ctx, "launching "+spec.Addr, request{Op: opLaunch, Spec: &spec})
	if err != nil {
		return supervisor.Status{}, err
	}
	if resp.Status == nil {
		return supervisor.Status{}, fmt.Errorf("machine %q: launching %s: the agent answered without a status", c.name, spec.Addr)
	}
	return *resp.Status, nil
}

// Stop stops the engine and the supervisor of runDir (grace 0: the
// spec's stop grace) and returns once both are gone; nothing running
// there is no error.
func (c *Client) Stop(ctx context.Context, runDir string, grace time.Duration) error {
	_, err := c.call(ctx, "stopping "+runDir, request{Op: opStop, RunDir: runDir, Grace: grace})
	return err
}

// Drain drains runDir's replica (deadline 0: the spec's) and returns
// the status it ended in, once its engine has stopped.
func (c *Client) Drain(ctx context.Context, runDir string, deadline time.Duration) (supervisor.Status, error) {
	resp, err := c.call(ctx, "draining "+runDir, request{Op: opDrain, RunDir: runDir, Grace: deadline})
	if resp.Status != nil {
		return *resp.Status, err
	}
	return supervisor.Status{}, err
}

// Handoffs is the handoff file of every run directory whose spec names
// one that exists.
func (c *Client) Handoffs(ctx context.Context) ([]Handoff, error) {
	resp, err := c.call(ctx, "reading handoff files", request{Op: opHandoffs})
	return resp.Handoffs, err
}
