package remote_test

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/llorch/llorch/internal/freeport"
	"github.com/llorch/llorch/internal/remote"
	"github.com/llorch/llorch/internal/remote/sshtest"
)

func TestDialRuns(t *testing.T) {
	s := shared(t)
	agentOnly := machine(s, "gpu1")
	agentOnly.PrivateKeyFile, agentOnly.UseAgent = "", true
	serveAgent(t, s.ClientKey)
	// A key file the server refuses, then the agent's key it accepts.
	fileThenAgent := agentOnly
	fileThenAgent.PrivateKeyFile = filepath.Join(t.TempDir(), "other")
	writeKey(t, fileThenAgent.PrivateKeyFile)
	// known_hosts with hashed names (ssh-keygen -H), and the key on the
	// second line.
	hashed := machine(s, "gpu1")
	hashed.KnownHostsFile = filepath.Join(t.TempDir(), "known_hosts")
	content := knownhosts.Line([]string{knownhosts.HashHostname("other.example")}, ecdsaKey(t)) + "\n" +
		knownhosts.Line([]string{knownhosts.HashHostname(knownhosts.Normalize(s.Addr()))}, s.HostKey) + "\n"
	if err := os.WriteFile(hashed.KnownHostsFile, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, m := range map[string]remote.Machine{
		"private key file":                   machine(s, "gpu1"),
		"ssh-agent":                          agentOnly,
		"a refused key file, then the agent": fileThenAgent,
		"hashed known_hosts":                 hashed,
	} {
		t.Run(name, func(t *testing.T) {
			c, err := remote.Dial(t.Context(), m)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			res, err := c.Run(t.Context(), "echo $USER", nil)
			if err != nil || string(res.Stdout) != s.User+"\n" {
				t.Errorf("echo $USER = %q, %v, want %q", res.Stdout, err, s.User)
			}
			if c.Machine().Name != "gpu1" {
				t.Errorf("Machine().Name = %q", c.Machine().Name)
			}
		})
	}
}

// Every way Dial fails is its own type, and its text names the machine and
// says what to do.
func TestDialErrors(t *testing.T) {
	s := shared(t)
	dir := t.TempDir()
	port := strconv.Itoa(s.Port)
	addr := s.Addr()
	khLine := "[127.0.0.1]:" + port

	otherPriv, otherKey := writeKey(t, filepath.Join(dir, "other"))
	ecKey := ecdsaKey(t)
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	empty := write("empty_known_hosts", "")
	changed := write("changed_known_hosts", "# another key\n"+s.KnownHostsLine(otherKey)+"\n")
	otherType := write("ecdsa_known_hosts", s.KnownHostsLine(ecKey)+"\n")
	revoked := write("revoked_known_hosts", "@revoked * "+string(ssh.MarshalAuthorizedKey(s.HostKey))+s.KnownHostsLine(s.HostKey)+"\n")
	garbageKey := write("garbage_key", "not a key\n")
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKeyWithPassphrase(priv, "", []byte("secret"))
	if err != nil {
		t.Fatal(err)
	}
	locked := write("locked_key", string(pem.EncodeToMemory(block)))
	agentSock := serveAgent(t, otherPriv)

	refusedPort, err := freeport.Port()
	if err != nil {
		t.Fatal(err)
	}
	silent := silentListener(t)
	closing := closingListener(t)
	blackhole := blackholeListener(t)

	fp := ssh.FingerprintSHA256
	tests := []struct {
		name   string
		change func(m *remote.Machine)
		env    string // SSH_AUTH_SOCK, for cases that set UseAgent
		want   string
		as     any
	}{
		{
			name:   "connection refused",
			change: func(m *remote.Machine) { m.Port = refusedPort },
			want: fmt.Sprintf(`machine "gpu1": connecting to 127.0.0.1:%d: connection refused: nothing listens on port %d there; check that sshd runs on the machine and that %d is its SSH port`,
				refusedPort, refusedPort, refusedPort),
			as: new(*remote.RefusedError),
		},
		{
			name:   "a server that never speaks",
			change: func(m *remote.Machine) { m.Port = silent; m.ConnectTimeout = 100 * time.Millisecond },
			want: fmt.Sprintf(`machine "gpu1": connected to 127.0.0.1:%d but the SSH handshake did not finish within 100ms: check that the port is sshd's and that the machine is not overloaded`,
				silent),
			as: new(*remote.TimeoutError),
		},
		{
			name:   "a connect that gets no answer",
			change: func(m *remote.Machine) { m.Port = blackhole; m.ConnectTimeout = 100 * time.Millisecond },
			want: fmt.Sprintf(`machine "gpu1": connecting to 127.0.0.1:%d: no answer within 100ms: check the address, that the machine is up, and that no firewall drops SSH traffic`,
				blackhole),
			as: new(*remote.TimeoutError),
		},
		{
			name:   "a port that is not sshd",
			change: func(m *remote.Machine) { m.Port = closing },
			want:   fmt.Sprintf(`machine "gpu1": ssh handshake with 127.0.0.1:%d failed: ssh: handshake failed: EOF: check that the port is sshd's`, closing),
			as:     new(*remote.ConnectError),
		},
		{
			name:   "a key the server does not accept",
			change: func(m *remote.Machine) { m.PrivateKeyFile = filepath.Join(dir, "other") },
			want: fmt.Sprintf(`machine "gpu1": ssh authentication as %q at %s failed: the server accepted none of: public key %s (ssh-ed25519 %s); add the public key to ~%s/.ssh/authorized_keys on the machine, or configure a key it accepts`,
				s.User, addr, filepath.Join(dir, "other"), fp(otherKey), s.User),
			as: new(*remote.AuthError),
		},
		{
			name:   "an unknown host key",
			change: func(m *remote.Machine) { m.KnownHostsFile = empty },
			want: fmt.Sprintf("machine \"gpu1\": the host key of %s is not in known_hosts file %s: the server offered ssh-ed25519 %s; if that is the machine's key (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub on the machine prints its fingerprint), add this line to %s (ssh-keyscan -p %s -t ed25519 127.0.0.1 prints it):\n  %s %s",
				addr, empty, fp(s.HostKey), empty, port, khLine, string(ssh.MarshalAuthorizedKey(s.HostKey)[:len(ssh.MarshalAuthorizedKey(s.HostKey))-1])),
			as: new(*remote.UnknownHostKeyError),
		},
		{
			name:   "a changed host key",
			change: func(m *remote.Machine) { m.KnownHostsFile = changed },
			want: fmt.Sprintf(`machine "gpu1": the host key of %s has changed: the server offered ssh-ed25519 %s, but %s:2 has ssh-ed25519 %s; someone may be intercepting the connection (an attack), or the machine's host key was replaced; if you know the key was changed, remove the old one (ssh-keygen -R '%s' -f %s) and add the new one`,
				addr, fp(s.HostKey), changed, fp(otherKey), khLine, changed),
			as: new(*remote.HostKeyMismatchError),
		},
		{
			name:   "a host key of another type than known",
			change: func(m *remote.Machine) { m.KnownHostsFile = otherType },
			want: fmt.Sprintf(`machine "gpu1": the host key of %s has changed: the server offered none of the key types known_hosts has for it, but %s:1 has ecdsa-sha2-nistp256 %s; someone may be intercepting the connection (an attack), or the machine's host key was replaced; if you know the key was changed, remove the old one (ssh-keygen -R '%s' -f %s) and add the new one`,
				addr, otherType, fp(ecKey), khLine, otherType),
			as: new(*remote.HostKeyMismatchError),
		},
		{
			name:   "a revoked host key",
			change: func(m *remote.Machine) { m.KnownHostsFile = revoked },
			want: fmt.Sprintf(`machine "gpu1": the host key of %s (ssh-ed25519 %s) is marked @revoked in %s:1: refusing to connect; if the machine has a new key, add it to known_hosts`,
				addr, fp(s.HostKey), revoked),
			as: new(*remote.HostKeyMismatchError),
		},
		{
			name:   "a missing known_hosts file",
			change: func(m *remote.Machine) { m.KnownHostsFile = filepath.Join(dir, "nope") },
			want: fmt.Sprintf(`machine "gpu1": known_hosts file %s does not exist: host keys are always verified; add the machine's key to it (ssh-keyscan -p %s 127.0.0.1 >> %s, after checking the fingerprint on the machine)`,
				filepath.Join(dir, "nope"), port, filepath.Join(dir, "nope")),
			as: new(*remote.KnownHostsError),
		},
		{
			name:   "an unreadable known_hosts file",
			change: func(m *remote.Machine) { m.KnownHostsFile = dir },
			want:   fmt.Sprintf(`machine "gpu1": reading known_hosts file %s: is a directory: host keys are always verified, so it must be readable`, dir),
			as:     new(*remote.KnownHostsError),
		},
		{
			name:   "a missing private key file",
			change: func(m *remote.Machine) { m.PrivateKeyFile = filepath.Join(dir, "id_none") },
			want: fmt.Sprintf(`machine "gpu1": reading private key file %s: no such file or directory: set the machine's private key file to an existing key`,
				filepath.Join(dir, "id_none")),
			as: new(*remote.CredentialError),
		},
		{
			name:   "a private key file that is no key",
			change: func(m *remote.Machine) { m.PrivateKeyFile = garbageKey },
			want:   fmt.Sprintf(`machine "gpu1": private key file %s: ssh: no key found: it must be an OpenSSH or PEM private key`, garbageKey),
			as:     new(*remote.CredentialError),
		},
		{
			name:   "a private key file with a passphrase",
			change: func(m *remote.Machine) { m.PrivateKeyFile = locked },
			want: fmt.Sprintf(`machine "gpu1": private key file %s is protected by a passphrase, which llorch cannot ask for: add the key to the ssh-agent (ssh-add %s) and use the agent`,
				locked, locked),
			as: new(*remote.CredentialError),
		},
		{
			name:   "an agent without the key the server accepts",
			change: func(m *remote.Machine) { m.PrivateKeyFile, m.UseAgent = "", true },
			env:    agentSock,
			want: fmt.Sprintf(`machine "gpu1": ssh authentication as %q at %s failed: the server accepted none of: ssh-agent at %s (1 keys); add the public key to ~%s/.ssh/authorized_keys on the machine, or configure a key it accepts`,
				s.User, addr, agentSock, s.User),
			as: new(*remote.AuthError),
		},
		{
			name:   "neither the key file nor the agent has the key the server accepts",
			change: func(m *remote.Machine) { m.PrivateKeyFile, m.UseAgent = filepath.Join(dir, "other"), true },
			env:    agentSock,
			want: fmt.Sprintf(`machine "gpu1": ssh authentication as %q at %s failed: the server accepted none of: public key %s (ssh-ed25519 %s), ssh-agent at %s (1 keys); add the public key to ~%s/.ssh/authorized_keys on the machine, or configure a key it accepts`,
				s.User, addr, filepath.Join(dir, "other"), fp(otherKey), agentSock, s.User),
			as: new(*remote.AuthError),
		},
		{
			name:   "an agent but no SSH_AUTH_SOCK",
			change: func(m *remote.Machine) { m.PrivateKeyFile, m.UseAgent = "", true },
			env:    "",
			want:   `machine "gpu1": using the ssh-agent: SSH_AUTH_SOCK is not set: start an agent and add the key (eval "$(ssh-agent)"; ssh-add KEYFILE), or set a private key file`,
			as:     new(*remote.CredentialError),
		},
		{
			name:   "an agent that is not running",
			change: func(m *remote.Machine) { m.PrivateKeyFile, m.UseAgent = "", true },
			env:    filepath.Join(dir, "no-agent.sock"),
			want:   fmt.Sprintf(`machine "gpu1": using the ssh-agent at %s (SSH_AUTH_SOCK): connect: no such file or directory: is the agent running?`, filepath.Join(dir, "no-agent.sock")),
			as:     new(*remote.CredentialError),
		},
		{
			name:   "no address",
			change: func(m *remote.Machine) { m.Address = "" },
			want:   `machine "gpu1": no address to connect to`,
		},
		{
			name:   "no user",
			change: func(m *remote.Machine) { m.User = "" },
			want:   `machine "gpu1": no user to log in as`,
		},
		{
			name:   "a port out of range",
			change: func(m *remote.Machine) { m.Port = 70000 },
			want:   `machine "gpu1": port 70000 is not a TCP port (1-65535)`,
		},
		{
			name:   "no credentials",
			change: func(m *remote.Machine) { m.PrivateKeyFile = "" },
			want:   `machine "gpu1": no credentials to log in with: set a private key file or use the ssh-agent`,
			as:     new(*remote.CredentialError),
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := machine(s, "gpu1")
			tc.change(&m)
			if m.UseAgent {
				t.Setenv("SSH_AUTH_SOCK", tc.env)
			}
			c, err := remote.Dial(t.Context(), m)
			if err == nil {
				c.Close()
				t.Fatalf("Dial succeeded, want %s", tc.want)
			}
			if err.Error() != tc.want {
				t.Errorf("Dial error:\n got: %s\nwant: %s", err, tc.want)
			}
			if tc.as != nil && !errors.As(err, tc.as) {
				t.Errorf("Dial error is a %T, want %T", err, tc.as)
			}
		})
	}
}

// writeKey writes a new key pair into path and path.pub.
func writeKey(t *testing.T, path string) (ed25519.PrivateKey, ssh.PublicKey) {
	t.Helper()
	priv, pub, err := sshtest.WriteKey(path)
	if err != nil {
		t.Fatal(err)
	}
	return priv, pub
}

func ecdsaKey(t *testing.T) ssh.PublicKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := ssh.NewPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return pub
}

// serveAgent runs an ssh-agent holding keys on a socket in a temporary
// directory, sets SSH_AUTH_SOCK to it for t, and returns its path.
func serveAgent(t *testing.T, keys ...ed25519.PrivateKey) string {
	t.Helper()
	keyring := agent.NewKeyring()
	for _, k := range keys {
		if err := keyring.Add(agent.AddedKey{PrivateKey: k}); err != nil {
			t.Fatal(err)
		}
	}
	sock := filepath.Join(t.TempDir(), "agent.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("SSH_AUTH_SOCK", sock)
	serve(t, l, func(c net.Conn) { _ = agent.ServeAgent(keyring, c) })
	return sock
}

// serve accepts connections on l and hands each to handle on a goroutine
// of its own, until t ends: then l and the connections are closed and
// serve waits for the goroutines.
func serve(t *testing.T, l net.Listener, handle func(net.Conn)) {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() { defer wg.Done(); handle(c) }()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
}

// silentListener accepts connections and never writes to them: an SSH
// handshake with it hangs.
func silentListener(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serve(t, l, func(c net.Conn) { _, _ = io.Copy(io.Discard, c) })
	return l.Addr().(*net.TCPAddr).Port
}

// closingListener reads the client's first line, answers with one that
// is not SSH's and closes the connection, as a server that is not sshd
// may.
func closingListener(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serve(t, l, func(c net.Conn) {
		// Read all the client sent, so that closing sends FIN, not RST.
		_, _ = bufio.NewReader(c).ReadString('\n')
		_, _ = io.WriteString(c, "HTTP/1.1 400 Bad Request\r\n\r\n")
		c.Close()
	})
	return l.Addr().(*net.TCPAddr).Port
}

// blackholeListener is a port whose SYNs go unanswered: a socket that
// listens with a backlog of zero and never accepts, its queue filled by
// one connection, so Linux drops every further SYN, as a firewall would.
func blackholeListener(t *testing.T) int {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	port := sa.(*syscall.SockaddrInet4).Port
	filler, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { filler.Close() })
	return port
}

// The deadline of Dial's context bounds it too, and a cancelled context is
// reported as such, not as a timeout.
func TestDialContext(t *testing.T) {
	s := shared(t)
	m := machine(s, "gpu1")
	m.Port = silentListener(t)

	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	_, err := remote.Dial(ctx, m) // ConnectTimeout is 10s
	var te *remote.TimeoutError
	if !errors.As(err, &te) || te.After > 50*time.Millisecond || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Dial with a 50ms context = %v, want a TimeoutError within 50ms", err)
	}

	ctx, cancel = context.WithCancel(t.Context())
	cancel()
	_, err = remote.Dial(ctx, m)
	want := fmt.Sprintf(`machine "gpu1": connecting to 127.0.0.1:%d: context canceled`, m.Port)
	if err == nil || err.Error() != want || !errors.Is(err, context.Canceled) {
		t.Errorf("Dial with a cancelled context = %v, want %s", err, want)
	}
}

// "~/" at the start of the key and known_hosts paths is the home
// directory, as in ssh's own config; with no known_hosts file named, it is
// ~/.ssh/known_hosts.
func TestDialExpandsHome(t *testing.T) {
	s := shared(t)
	home := t.TempDir()
	t.Setenv("HOME", home)
	if err := os.MkdirAll(filepath.Join(home, ".ssh"), 0o700); err != nil {
		t.Fatal(err)
	}
	for from, to := range map[string]string{s.ClientKeyFile: "id_test", s.KnownHostsFile: ".ssh/known_hosts"} {
		b, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(home, to), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	m := machine(s, "gpu1")
	m.PrivateKeyFile, m.KnownHostsFile = "~/id_test", ""
	c, err := remote.Dial(t.Context(), m)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
}
