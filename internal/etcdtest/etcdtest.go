package etcdtest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/llorch/llorch/internal/freeport"
	"github.com/llorch/llorch/internal/tail"
)

// startTimeout bounds how long etcd may take to serve clients.
const startTimeout = 30 * time.Second

// Options tune a server. The zero value is a plain-HTTP server.
type Options struct {
	// CertFile and KeyFile make clients speak TLS; TrustedCAFile, when
	// set, also makes the server require client certificates signed by it.
	CertFile, KeyFile, TrustedCAFile string
}

// Server is one etcd process.
type Server struct {
	Endpoint string // client URL: http://127.0.0.1:PORT (https with TLS)
	DataDir  string

	opts    Options
	peerURL string
	mu      sync.Mutex
	cmd     *exec.Cmd
	exited  chan struct{}
	log     *tail.Lines
	waitErr error
}

// Binary is the etcd executable found on PATH (or in /usr/bin), or an
// error saying how to install it.
func Binary() (string, error) {
	if p, err := exec.LookPath("etcd"); err == nil {
		return p, nil
	}
	if _, err := os.Stat("/usr/bin/etcd"); err == nil {
		return "/usr/bin/etcd", nil
	}
	return "", errors.New("etcd is not installed: the tests run a real etcd server; install it with apt-get install etcd-server (.ci/run does)")
}

// Start runs a server with its data in a temporary directory of t and
// stops it when t ends.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	s, err := Run(t.TempDir(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Stop() })
	return s
}

// Run starts a server with its data in dataDir and returns once it serves
// clients. The caller stops it.
func Run(dataDir string, opts Options) (*Server, error) {
	cp, err := freePort()
	if err != nil {
		return nil, err
	}
	pp, err := freePort()
	if err != nil {
		return nil, err
	}
	scheme := "http"
	if opts.CertFile != "" {
		scheme = "https"
	}
	s := &Server{
		Endpoint: fmt.Sprintf("%s://127.0.0.1:%d", scheme, cp),
		DataDir:  filepath.Join(dataDir, "etcd"),
		opts:     opts,
		peerURL:  fmt.Sprintf("http://127.0.0.1:%d", pp),
	}
	if err := s.start(); err != nil {
		return nil, err
	}
	return s, nil
}

// start runs the process and waits for its "serving client traffic" log line.
func (s *Server) start() error {
	bin, err := Binary()
	if err != nil {
		return err
	}
	args := []string{
		"--name", "default", "--data-dir", s.DataDir,
		"--listen-client-urls", s.Endpoint, "--advertise-client-urls", s.Endpoint,
		"--listen-peer-urls", s.peerURL, "--initial-advertise-peer-urls", s.peerURL,
		"--initial-cluster", "default=" + s.peerURL,
		// One member elects itself after one election timeout: keep it short.
		"--heartbeat-interval", "10", "--election-timeout", "100",
		"--logger", "zap", "--log-outputs", "stderr", "--log-level", "info",
	}
	if s.opts.CertFile != "" {
		args = append(args, "--cert-file", s.opts.CertFile, "--key-file", s.opts.KeyFile)
		if s.opts.TrustedCAFile != "" {
			args = append(args, "--trusted-ca-file", s.opts.TrustedCAFile, "--client-cert-auth")
		}
	}
	cmd := exec.Command(bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting etcd: %w", err)
	}
	s.mu.Lock()
	s.cmd, s.exited, s.log, s.waitErr = cmd, make(chan struct{}), &tail.Lines{}, nil
	exited, log := s.exited, s.log
	s.mu.Unlock()

	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		once := false
		for sc.Scan() {
			line := sc.Text()
			log.WriteLine(line)
			if !once && strings.Contains(line, "serving client traffic") {
				once = true
				close(ready)
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
		err := cmd.Wait()
		s.mu.Lock()
		s.waitErr = err
		s.mu.Unlock()
		close(exited)
	}()
	timer := time.NewTimer(startTimeout)
	defer timer.Stop()
	select {
	case <-ready:
		return nil
	case <-exited:
		return fmt.Errorf("etcd exited before serving clients (%v):\n%s", s.exitErr(), log.Last(30))
	case <-timer.C:
		_ = s.signal(syscall.SIGKILL)
		<-exited
		return fmt.Errorf("etcd did not serve clients within %s:\n%s", startTimeout, log.Last(30))
	}
}

func (s *Server) exitErr() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.waitErr
}

func (s *Server) signal(sig syscall.Signal) error {
	s.mu.Lock()
	cmd := s.cmd
	s.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		return nil
	}
	return syscall.Kill(-cmd.Process.Pid, sig)
}

// wait waits for the process to exit after sig; SIGKILL after 10 s.
func (s *Server) wait(sig syscall.Signal) error {
	s.mu.Lock()
	exited := s.exited
	s.mu.Unlock()
	if exited == nil {
		return nil
	}
	select {
	case <-exited:
		return nil // already gone
	default:
	}
	_ = s.signal(sig)
	timer := time.NewTimer(10 * time.Second)
	defer timer.Stop()
	select {
	case <-exited:
	case <-timer.C:
		_ = s.signal(syscall.SIGKILL)
		<-exited
	}
	return nil
}

// Stop ends the server (SIGTERM) and waits for it.
func (s *Server) Stop() error { return s.wait(syscall.SIGTERM) }

// Kill ends the server with SIGKILL, as a crash would, and waits for it.
func (s *Server) Kill() error { return s.wait(syscall.SIGKILL) }

// Pause stops the server's process (SIGSTOP) without ending it: clients
// connect but get no answer. Resume continues it.
func (s *Server) Pause() error { return s.signal(syscall.SIGSTOP) }

// Resume continues a paused server.
func (s *Server) Resume() error { return s.signal(syscall.SIGCONT) }

// Restart starts a stopped or killed server again on the same ports and
// data.
func (s *Server) Restart() error {
	_ = s.Stop()
	return s.start()
}

// Log is the last n lines the server logged.
func (s *Server) Log(n int) string {
	s.mu.Lock()
	log := s.log
	s.mu.Unlock()
	if log == nil {
		return ""
	}
	return log.Last(n)
}

// WaitReachable waits until a TCP connection to the server's client port
// succeeds, or ctx is done.
func (s *Server) WaitReachable(ctx context.Context) error {
	host := strings.TrimPrefix(strings.TrimPrefix(s.Endpoint, "https://"), "http://")
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", host)
	if err != nil {
		return err
	}
	return c.Close()
}

func freePort() (int, error) { return freeport.Port() }

// ClosedPort is a loopback address (host:port) where nothing listens: a
// port that was free a moment ago.
func ClosedPort(t testing.TB) string {
	t.Helper()
	p, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("127.0.0.1:%d", p)
}
