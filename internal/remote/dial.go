package remote

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/crypto/ssh/knownhosts"
)

// Dial connects to m and logs in. It returns within m's connect timeout or
// ctx's deadline, whichever comes first; the error is one of the types in
// this package, except for a cancelled ctx, which it wraps, and a Machine
// without an address or user.
func Dial(ctx context.Context, m Machine) (*Conn, error) {
	// The config checks these first; without them there is nothing to try.
	switch {
	case m.Address == "":
		return nil, fmt.Errorf("machine %q: no address to connect to", m.Name)
	case m.User == "":
		return nil, fmt.Errorf("machine %q: no user to log in as", m.Name)
	case m.Port < 0 || m.Port > 65535:
		return nil, fmt.Errorf("machine %q: port %d is not a TCP port (1-65535)", m.Name, m.Port)
	}
	addr := m.addr()
	auth, closeAuth, err := m.authMethods()
	if err != nil {
		return nil, err
	}
	defer closeAuth()
	check, algos, err := m.hostKeyCheck(addr)
	if err != nil {
		return nil, err
	}

	budget := m.connectTimeout()
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < budget {
		budget = max(time.Until(dl), 0)
	}
	dctx, cancel := context.WithTimeout(ctx, budget)
	defer cancel()
	timedOut := func(handshake bool) error {
		if ctx.Err() == context.Canceled {
			return fmt.Errorf("machine %q: connecting to %s: %w", m.Name, addr, ctx.Err())
		}
		return &TimeoutError{Machine: m.Name, Addr: addr, After: budget, Handshake: handshake}
	}

	var d net.Dialer
	nc, err := d.DialContext(dctx, "tcp", addr)
	if err != nil {
		var ne net.Error
		switch {
		case dctx.Err() != nil, errors.As(err, &ne) && ne.Timeout():
			// The dialer's deadline may strike before dctx's timer does.
			return nil, timedOut(false)
		case errors.Is(err, syscall.ECONNREFUSED):
			return nil, &RefusedError{Machine: m.Name, Addr: addr, Err: err}
		}
		return nil, &ConnectError{Machine: m.Name, Addr: addr, Err: unwrapOpError(err)}
	}
	// The handshake has no context of its own: closing the connection is
	// what ends it when the budget runs out.
	stop := context.AfterFunc(dctx, func() { nc.Close() })

	// The callback's own error is kept: it is the typed one, and the
	// handshake's error only wraps its text.
	var hostErr error
	cfg := &ssh.ClientConfig{
		User: m.User,
		Auth: auth.methods,
		HostKeyCallback: func(hostname string, remote net.Addr, key ssh.PublicKey) error {
			hostErr = check(m.Name, hostname, remote, key)
			return hostErr
		},
		HostKeyAlgorithms: algos,
	}
	sc, chans, reqs, err := ssh.NewClientConn(nc, addr, cfg)
	if !stop() {
		if err == nil {
			sc.Close()
		}
		return nil, timedOut(true)
	}
	if err != nil {
		nc.Close()
		var neg *ssh.AlgorithmNegotiationError
		switch {
		case hostErr != nil:
			return nil, hostErr
		case strings.Contains(err.Error(), "unable to authenticate"):
			// x/crypto has no type for it on the client side.
			return nil, &AuthError{Machine: m.Name, Addr: addr, User: m.User, Tried: auth.tried(), Err: err}
		case errors.As(err, &neg) && len(algos) > 0 && strings.Contains(err.Error(), "host key"):
			// Only the key types known_hosts has for the address were
			// allowed, and the server has none of them.
			known, _ := knownKeys(check, m.Name, addr)
			return nil, &HostKeyMismatchError{Machine: m.Name, Addr: addr, Known: known}
		}
		return nil, &ConnectError{Machine: m.Name, Addr: addr, Handshake: true, Err: err}
	}
	return &Conn{machine: m, client: ssh.NewClient(sc, chans, reqs)}, nil
}

// unwrapOpError drops net.OpError's "dial tcp ADDR:" prefix: the message
// names the address already.
func unwrapOpError(err error) error {
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		return op.Err
	}
	return err
}

// offered is what Dial offers the server, and a record of it for an
// AuthError.
type offered struct {
	methods []ssh.AuthMethod
	mu      sync.Mutex
	log     []string
}

func (o *offered) note(s string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.log = append(o.log, s)
}

func (o *offered) tried() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.log) == 0 {
		return []string{"no credentials"}
	}
	return append([]string(nil), o.log...)
}

// authMethods reads the key file and opens the agent; the func closes the
// agent's socket once the handshake is over.
func (m Machine) authMethods() (*offered, func(), error) {
	noop := func() {}
	if m.PrivateKeyFile == "" && !m.UseAgent {
		return nil, noop, &CredentialError{Machine: m.Name, msg: "no credentials to log in with: set a private key file or use the ssh-agent"}
	}
	var fileSigner ssh.Signer
	var fileDesc string
	if m.PrivateKeyFile != "" {
		path := expandHome(m.PrivateKeyFile)
		signer, err := readKey(m.Name, path)
		if err != nil {
			return nil, noop, err
		}
		fileSigner = signer
		fileDesc = fmt.Sprintf("public key %s (%s %s)", path, signer.PublicKey().Type(), ssh.FingerprintSHA256(signer.PublicKey()))
	}
	var agentClient agent.ExtendedAgent
	var sock string
	closeAgent := noop
	if m.UseAgent {
		if sock = os.Getenv("SSH_AUTH_SOCK"); sock == "" {
			return nil, noop, &CredentialError{Machine: m.Name, msg: "using the ssh-agent: SSH_AUTH_SOCK is not set: start an agent and add the key (eval \"$(ssh-agent)\"; ssh-add KEYFILE), or set a private key file"}
		}
		ac, err := net.Dial("unix", sock)
		if err != nil {
			return nil, noop, &CredentialError{Machine: m.Name, Path: sock, Err: err,
				msg: fmt.Sprintf("using the ssh-agent at %s (SSH_AUTH_SOCK): %v: is the agent running?", sock, unwrapOpError(err))}
		}
		agentClient, closeAgent = agent.NewClient(ac), func() { ac.Close() }
	}
	// One method for all the keys: x/crypto tries each method name once,
	// so a second "publickey" method would never be asked.
	o := &offered{}
	o.methods = []ssh.AuthMethod{ssh.PublicKeysCallback(func() ([]ssh.Signer, error) {
		var signers []ssh.Signer
		if fileSigner != nil {
			o.note(fileDesc)
			signers = append(signers, fileSigner)
		}
		if agentClient != nil {
			more, err := agentClient.Signers()
			if err != nil {
				o.note(fmt.Sprintf("ssh-agent at %s (listing its keys failed: %v)", sock, err))
			} else {
				o.note(fmt.Sprintf("ssh-agent at %s (%d keys)", sock, len(more)))
				signers = append(signers, more...)
			}
		}
		return signers, nil
	})}
	return o, closeAgent, nil
}

func readKey(machine, path string) (ssh.Signer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		msg := fmt.Sprintf("reading private key file %s: %v", path, unwrapPathError(err))
		if errors.Is(err, fs.ErrNotExist) {
			msg += ": set the machine's private key file to an existing key"
		}
		return nil, &CredentialError{Machine: machine, Path: path, Err: err, msg: msg}
	}
	signer, err := ssh.ParsePrivateKey(b)
	var pp *ssh.PassphraseMissingError
	switch {
	case errors.As(err, &pp):
		return nil, &CredentialError{Machine: machine, Path: path, Err: err,
			msg: fmt.Sprintf("private key file %s is protected by a passphrase, which llorch cannot ask for: add the key to the ssh-agent (ssh-add %s) and use the agent", path, path)}
	case err != nil:
		return nil, &CredentialError{Machine: machine, Path: path, Err: err,
			msg: fmt.Sprintf("private key file %s: %v: it must be an OpenSSH or PEM private key", path, err)}
	}
	return signer, nil
}

func unwrapPathError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// hostKeyChecker checks a host's key and returns this package's errors.
type hostKeyChecker func(machine, hostname string, remote net.Addr, key ssh.PublicKey) error

// hostKeyCheck reads the known_hosts file. algos are the host key
// algorithms to ask for: those of the keys known for addr, so that a
// server with several host keys shows the one known_hosts has (as
// OpenSSH's client does) rather than one that would look like a
// changed key; nil when none is known.
func (m Machine) hostKeyCheck(addr string) (hostKeyChecker, []string, error) {
	path := m.knownHostsFile()
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return nil, nil, &KnownHostsError{Machine: m.Name, Path: path, Err: err, missing: true, addr: addr}
	}
	cb, err := knownhosts.New(path)
	if err != nil {
		return nil, nil, &KnownHostsError{Machine: m.Name, Path: path, Err: unwrapPathError(err)}
	}
	check := func(machine, hostname string, remote net.Addr, key ssh.PublicKey) error {
		err := cb(hostname, remote, key)
		var ke *knownhosts.KeyError
		var re *knownhosts.RevokedError
		switch {
		case err == nil:
			return nil
		case errors.As(err, &ke) && len(ke.Want) == 0:
			return &UnknownHostKeyError{Machine: machine, Addr: hostname, KnownHostsFile: path, Key: key}
		case errors.As(err, &ke):
			return &HostKeyMismatchError{Machine: machine, Addr: hostname, Key: key, Known: ke.Want}
		case errors.As(err, &re):
			return &HostKeyMismatchError{Machine: machine, Addr: hostname, Key: key, Revoked: &re.Revoked}
		}
		return fmt.Errorf("machine %q: checking the host key of %s: %w", machine, hostname, err)
	}
	known, _ := knownKeys(check, m.Name, addr)
	var algos []string
	for _, k := range known {
		for _, a := range algorithmsFor(k.Key.Type()) {
			if !slices.Contains(algos, a) {
				algos = append(algos, a)
			}
		}
	}
	return check, algos, nil
}

// probeKey is a key no host has (its seed is all zeros): checking it
// against known_hosts lists every key known for an address.
var probeKey = func() ssh.PublicKey {
	k, err := ssh.NewPublicKey(ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize)).Public())
	if err != nil {
		panic(err)
	}
	return k
}()

// knownKeys is what known_hosts has for addr.
func knownKeys(check hostKeyChecker, machine, addr string) ([]knownhosts.KnownKey, error) {
	// knownhosts checks the name given, then the remote address; the
	// probe passes a placeholder address, as only the name matters.
	err := check(machine, addr, &net.TCPAddr{IP: net.IPv4zero}, probeKey)
	var mm *HostKeyMismatchError
	if errors.As(err, &mm) {
		return mm.Known, nil
	}
	return nil, err
}

// algorithmsFor maps a key type to the signature algorithms that use it.
func algorithmsFor(keyType string) []string {
	if keyType == ssh.KeyAlgoRSA {
		return []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA}
	}
	return []string{keyType}
}
