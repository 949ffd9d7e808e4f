package remote_test

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/llorch/llorch/internal/remote"
	"github.com/llorch/llorch/internal/remote/sshtest"
)

// A machine that stops answering mid-command (a cable pulled, a host
// frozen) does not hang a cancelled Run: the connection is given up.
func TestRunCancelOnAMachineThatStoppedAnswering(t *testing.T) {
	s := shared(t)
	defer remote.SetKillGrace(100 * time.Millisecond)()
	p := newFreezingProxy(t, s.Addr())
	m := p.machine(t, s, "frozen")
	c, err := remote.Dial(t.Context(), m)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	dir := t.TempDir()
	fifo, pidFile := filepath.Join(dir, "started"), filepath.Join(dir, "pid")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	// The command outlives the connection (the machine never hears of the
	// cancel): the test ends it by its pid.
	t.Cleanup(func() {
		if b, err := os.ReadFile(pidFile); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 0 {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
	cmd := "echo $$ > " + remote.Quote(pidFile) + "; echo > " + remote.Quote(fifo) + "; exec sleep 27.1828"
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		_, err := c.Run(ctx, cmd, nil)
		done <- err
	}()
	f, err := os.Open(fifo)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	p.freeze()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Run = %v, want context.Canceled", err)
	}
	if _, err := c.Run(t.Context(), "true", nil); err == nil {
		t.Errorf("Run on the given-up connection succeeded")
	}
}

// freezingProxy forwards TCP to a server until freeze, after which it
// passes nothing either way and closes nothing, as a dead link does.
type freezingProxy struct {
	port   int
	frozen chan struct{}
	once   sync.Once
}

func newFreezingProxy(t *testing.T, target string) *freezingProxy {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &freezingProxy{port: l.Addr().(*net.TCPAddr).Port, frozen: make(chan struct{})}
	var mu sync.Mutex
	var conns []net.Conn
	var wg sync.WaitGroup
	t.Cleanup(func() {
		l.Close()
		p.freeze()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			in, err := l.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				in.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, in, out)
			mu.Unlock()
			wg.Add(2)
			go func() { defer wg.Done(); p.pipe(out, in) }()
			go func() { defer wg.Done(); p.pipe(in, out) }()
		}
	}()
	return p
}

// machine is a Machine that reaches s through p, with a known_hosts file
// for p's address.
func (p *freezingProxy) machine(t *testing.T, s *sshtest.Server, name string) remote.Machine {
	m := machine(s, name)
	m.Address, m.Port = "127.0.0.1", p.port
	m.KnownHostsFile = filepath.Join(t.TempDir(), "known_hosts")
	line := knownhosts.Line([]string{knownhosts.Normalize(net.JoinHostPort(m.Address, strconv.Itoa(p.port)))}, s.HostKey)
	if err := os.WriteFile(m.KnownHostsFile, []byte(line+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return m
}

func (p *freezingProxy) freeze() { p.once.Do(func() { close(p.frozen) }) }

// pipe copies src to dst until src ends or the proxy freezes.
func (p *freezingProxy) pipe(dst io.Writer, src io.Reader) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		select {
		case <-p.frozen:
			return // dropped, as a dead link drops it
		default:
		}
		if n > 0 {
			if _, err := dst.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// Ping says whether a connection still gets answers.
func TestPing(t *testing.T) {
	s := shared(t)
	p := newFreezingProxy(t, s.Addr())
	m := p.machine(t, s, "gpu1")
	c, err := remote.Dial(t.Context(), m)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Ping(t.Context()); err != nil {
		t.Errorf("Ping of a working connection = %v", err)
	}

	p.freeze()
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	err = c.Ping(ctx)
	if want := `machine "gpu1": no answer on the connection: context deadline exceeded`; err == nil || err.Error() != want {
		t.Errorf("Ping of a frozen connection = %v, want %s", err, want)
	}

	c.Close()
	err = c.Ping(t.Context())
	if want := `machine "gpu1": the connection is gone: `; err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("Ping of a closed connection = %v, want %s...", err, want)
	}
}
