package sshtest

import (
	"bufio"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/llorch/llorch/internal/freeport"
	"github.com/llorch/llorch/internal/tail"
)

// SSHD is where Debian's openssh-server puts the daemon.
const SSHD = "/usr/sbin/sshd"

// startTimeout bounds how long sshd may take to listen.
const startTimeout = 20 * time.Second

// Server is one sshd.
type Server struct {
	Host string // the address it listens on: 127.0.0.1, or a namespace's address
	Port int
	User string // the user it logs in: the one running the tests

	// ClientKeyFile is the private key (OpenSSH format) authorized_keys
	// admits; ClientKey is the same key.
	ClientKeyFile string
	ClientKey     ed25519.PrivateKey

	// KnownHostsFile has one line: HostKey for Host:Port.
	KnownHostsFile string
	HostKey        ssh.PublicKey

	Dir string // config, keys and logs

	prefix []string // run sshd under this command (ip netns exec NAME)
	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	log    *tail.Lines
}

// Binary is sshd's path, or an error saying how to install it.
func Binary() (string, error) {
	if _, err := os.Stat(SSHD); err != nil {
		return "", errors.New("sshd is not installed: the tests run a real OpenSSH server; install it with apt-get install openssh-server (.ci/run does)")
	}
	return SSHD, nil
}

// Options change a server from the defaults.
type Options struct {
	// MaxSessions is sshd's limit on sessions per connection; 0 means 64
	// (OpenSSH's own default is 10).
	MaxSessions int
}

// Start runs a server on a free loopback port with its files in a
// temporary directory of t, and stops it when t ends. Its log is printed
// when t has failed.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	s, err := run(t.TempDir(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = s.Stop()
		if t.Failed() {
			t.Logf("sshd log (%s:%d):\n%s", s.Host, s.Port, s.Log(40))
		}
	})
	return s
}

// Run starts a server on a free loopback port with its files in dir and
// returns once it listens. The caller stops it.
func Run(dir string) (*Server, error) { return run(dir, Options{}) }

func run(dir string, opts Options) (*Server, error) {
	var err error
	for range 3 { // another process may take the free port first
		var port int
		if port, err = freeport.Port(); err != nil {
			return nil, err
		}
		var s *Server
		if s, err = start(dir, "127.0.0.1", port, nil, opts); err == nil {
			return s, nil
		}
		if !strings.Contains(err.Error(), "Address already in use") {
			return nil, err
		}
	}
	return nil, err
}

// start writes the server's files into dir and starts sshd under prefix.
func start(dir, host string, port int, prefix []string, opts Options) (*Server, error) {
	if opts.MaxSessions == 0 {
		opts.MaxSessions = 64
	}
	bin, err := Binary()
	if err != nil {
		return nil, err
	}
	u, err := user.Current()
	if err != nil {
		return nil, fmt.Errorf("looking up the current user: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if os.Geteuid() == 0 {
		// sshd run as root insists on its privilege separation directory,
		// which Debian makes at boot and a container may lack.
		if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
			return nil, err
		}
	}
	s := &Server{Host: host, Port: port, User: u.Username, Dir: dir, prefix: prefix,
		ClientKeyFile:  filepath.Join(dir, "id_ed25519"),
		KnownHostsFile: filepath.Join(dir, "known_hosts"),
	}
	hostKeyFile := filepath.Join(dir, "ssh_host_ed25519_key")
	if _, s.HostKey, err = WriteKey(hostKeyFile); err != nil {
		return nil, err
	}
	var clientPub ssh.PublicKey
	if s.ClientKey, clientPub, err = WriteKey(s.ClientKeyFile); err != nil {
		return nil, err
	}
	authorized := filepath.Join(dir, "authorized_keys")
	if err := os.WriteFile(authorized, ssh.MarshalAuthorizedKey(clientPub), 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(s.KnownHostsFile, []byte(s.KnownHostsLine(s.HostKey)+"\n"), 0o600); err != nil {
		return nil, err
	}
	config := strings.Join([]string{
		"ListenAddress " + host,
		"Port " + strconv.Itoa(port),
		"HostKey " + hostKeyFile,
		"PidFile none",
		"AuthorizedKeysFile " + authorized,
		"AuthenticationMethods publickey",
		"PubkeyAuthentication yes",
		"PasswordAuthentication no",
		"KbdInteractiveAuthentication no",
		"PermitRootLogin prohibit-password",
		"UsePAM no",
		"StrictModes no",
		"UseDNS no",
		"PrintMotd no",
		"PrintLastLog no",
		"AllowUsers " + u.Username,
		// A benchmark or a refresh opens many sessions on one connection,
		// one after another; concurrent ones are few.
		"MaxSessions " + strconv.Itoa(opts.MaxSessions),
		"MaxStartups 100",
		"LogLevel VERBOSE",
		// Debian's bash reads ~/.bashrc for commands sshd runs unless it
		// is a nested shell (SHLVL > 1 after its own increment): without
		// this the tests would run the tester's bashrc, which may take
		// longer than everything else a command costs (pyenv init: 150 ms).
		"SetEnv SHLVL=1",
		"",
	}, "\n")
	configFile := filepath.Join(dir, "sshd_config")
	if err := os.WriteFile(configFile, []byte(config), 0o600); err != nil {
		return nil, err
	}
	args := append(append([]string(nil), prefix...), bin, "-D", "-e", "-f", configFile)
	cmd := exec.Command(args[0], args[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting sshd: %w", err)
	}
	s.cmd, s.exited, s.log = cmd, make(chan struct{}), &tail.Lines{}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		once := false
		for sc.Scan() {
			line := sc.Text()
			s.log.WriteLine(line)
			// sshd -e logs this once its socket is bound and listening.
			if !once && strings.Contains(line, "Server listening on") {
				once = true
				close(ready)
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
		_ = cmd.Wait()
		close(s.exited)
	}()
	timer := time.NewTimer(startTimeout)
	defer timer.Stop()
	select {
	case <-ready:
		return s, nil
	case <-s.exited:
		return nil, fmt.Errorf("sshd exited before listening on %s:%d:\n%s", host, port, s.log.Last(20))
	case <-timer.C:
		_ = s.Stop()
		return nil, fmt.Errorf("sshd did not listen on %s:%d within %s:\n%s", host, port, startTimeout, s.log.Last(20))
	}
}

// KnownHostsLine is the known_hosts line naming key for the server's
// address.
func (s *Server) KnownHostsLine(key ssh.PublicKey) string {
	return knownhosts.Line([]string{knownhosts.Normalize(s.Addr())}, key)
}

// Addr is host:port.
func (s *Server) Addr() string { return fmt.Sprintf("%s:%d", s.Host, s.Port) }

// Stop ends the server (SIGTERM to its process group, SIGKILL after 10 s)
// and waits for it. Connections already made end with their clients.
func (s *Server) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-s.exited:
		return nil
	default:
	}
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGTERM)
	timer := time.NewTimer(10 * time.Second)
	defer timer.Stop()
	select {
	case <-s.exited:
	case <-timer.C:
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.exited
	}
	return nil
}

// Log is the last n lines sshd logged.
func (s *Server) Log(n int) string { return s.log.Last(n) }

// WriteKey generates an ed25519 key and writes its private half to path
// in OpenSSH format (0600) and its public half to path.pub.
func WriteKey(path string) (ed25519.PrivateKey, ssh.PublicKey, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	block, err := ssh.MarshalPrivateKey(priv, "llorch test "+filepath.Base(path))
	if err != nil {
		return nil, nil, err
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		return nil, nil, err
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		return nil, nil, err
	}
	return priv, sshPub, os.WriteFile(path+".pub", ssh.MarshalAuthorizedKey(sshPub), 0o644)
}
