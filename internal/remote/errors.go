package remote

import (
	"context"
	"fmt"
	"net"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// RefusedError is a connection refused: the machine answered, but nothing
// listens on its SSH port.
type RefusedError struct {
	Machine, Addr string
	Err           error
}

func (e *RefusedError) Error() string {
	_, port, _ := net.SplitHostPort(e.Addr)
	return fmt.Sprintf("machine %q: connecting to %s: connection refused: nothing listens on port %s there; check that sshd runs on the machine and that %s is its SSH port",
		e.Machine, e.Addr, port, port)
}

func (e *RefusedError) Unwrap() error { return e.Err }

// TimeoutError is a connect or handshake that did not finish within the
// machine's connect timeout (or the deadline of Dial's context).
type TimeoutError struct {
	Machine, Addr string
	After         time.Duration
	// Handshake is true when the TCP connection was made but the SSH
	// handshake did not finish: something other than sshd, or an sshd too
	// busy to answer, is on the port.
	Handshake bool
}

func (e *TimeoutError) Error() string {
	if e.Handshake {
		return fmt.Sprintf("machine %q: connected to %s but the SSH handshake did not finish within %s: check that the port is sshd's and that the machine is not overloaded",
			e.Machine, e.Addr, e.After)
	}
	return fmt.Sprintf("machine %q: connecting to %s: no answer within %s: check the address, that the machine is up, and that no firewall drops SSH traffic",
		e.Machine, e.Addr, e.After)
}

// Unwrap makes errors.Is(err, context.DeadlineExceeded) true.
func (e *TimeoutError) Unwrap() error { return context.DeadlineExceeded }

// Timeout is true, as for net.Error.
func (e *TimeoutError) Timeout() bool { return true }

// AuthError is a server that accepted none of the credentials offered.
type AuthError struct {
	Machine, Addr, User string
	Tried               []string // what was offered: "public key FILE (TYPE SHA256:...)", "ssh-agent at SOCK (N keys)"
	Err                 error
}

func (e *AuthError) Error() string {
	return fmt.Sprintf("machine %q: ssh authentication as %q at %s failed: the server accepted none of: %s; add the public key to ~%s/.ssh/authorized_keys on the machine, or configure a key it accepts",
		e.Machine, e.User, e.Addr, strings.Join(e.Tried, ", "), e.User)
}

func (e *AuthError) Unwrap() error { return e.Err }

// UnknownHostKeyError is a machine whose address has no key in the
// known_hosts file. Nothing was sent to it.
type UnknownHostKeyError struct {
	Machine, Addr, KnownHostsFile string
	Key                           ssh.PublicKey // the key the server offered
}

// Fingerprint is the offered key's SHA256 fingerprint, as ssh-keygen -l
// prints it.
func (e *UnknownHostKeyError) Fingerprint() string { return ssh.FingerprintSHA256(e.Key) }

// Line is the known_hosts line that would accept the offered key, as
// ssh-keyscan prints it.
func (e *UnknownHostKeyError) Line() string {
	return knownhosts.Line([]string{knownhosts.Normalize(e.Addr)}, e.Key)
}

func (e *UnknownHostKeyError) Error() string {
	host, port, _ := net.SplitHostPort(e.Addr)
	return fmt.Sprintf("machine %q: the host key of %s is not in known_hosts file %s: the server offered %s %s; if that is the machine's key (ssh-keygen -lf /etc/ssh/ssh_host_%s_key.pub on the machine prints its fingerprint), add this line to %s (ssh-keyscan -p %s -t %s %s prints it):\n  %s",
		e.Machine, e.Addr, e.KnownHostsFile, e.Key.Type(), e.Fingerprint(), keyFileType(e.Key), e.KnownHostsFile,
		port, keyFileType(e.Key), host, e.Line())
}

// HostKeyMismatchError is a machine that offered a key other than the one
// known_hosts has for its address, or a key marked @revoked. It may be an
// attack; nothing was sent to it.
type HostKeyMismatchError struct {
	Machine, Addr string
	Key           ssh.PublicKey         // offered; nil when it offered no key of a type known_hosts has for it
	Known         []knownhosts.KnownKey // what known_hosts has for the address
	Revoked       *knownhosts.KnownKey  // set when the offered key is marked @revoked
}

func (e *HostKeyMismatchError) Error() string {
	if e.Revoked != nil {
		return fmt.Sprintf("machine %q: the host key of %s (%s %s) is marked @revoked in %s:%d: refusing to connect; if the machine has a new key, add it to known_hosts",
			e.Machine, e.Addr, e.Key.Type(), ssh.FingerprintSHA256(e.Key), e.Revoked.Filename, e.Revoked.Line)
	}
	var known []string
	for _, k := range e.Known {
		known = append(known, fmt.Sprintf("%s:%d has %s %s", k.Filename, k.Line, k.Key.Type(), ssh.FingerprintSHA256(k.Key)))
	}
	offered := "none of the key types known_hosts has for it"
	if e.Key != nil {
		offered = e.Key.Type() + " " + ssh.FingerprintSHA256(e.Key)
	}
	remove := ""
	if len(e.Known) > 0 {
		remove = fmt.Sprintf("; if you know the key was changed, remove the old one (ssh-keygen -R '%s' -f %s) and add the new one",
			knownhosts.Normalize(e.Addr), e.Known[0].Filename)
	}
	return fmt.Sprintf("machine %q: the host key of %s has changed: the server offered %s, but %s; someone may be intercepting the connection (an attack), or the machine's host key was replaced%s",
		e.Machine, e.Addr, offered, strings.Join(known, ", "), remove)
}

// CredentialError is a private key or ssh-agent that cannot be used:
// Dial did not connect.
type CredentialError struct {
	Machine string
	Path    string // the key file or agent socket; "" when none was configured
	Err     error
	msg     string
}

func (e *CredentialError) Error() string { return fmt.Sprintf("machine %q: %s", e.Machine, e.msg) }

func (e *CredentialError) Unwrap() error { return e.Err }

// KnownHostsError is a known_hosts file that is missing or unreadable.
// Host keys are always checked, so Dial does not connect without one.
type KnownHostsError struct {
	Machine, Path string
	Err           error
	missing       bool
	addr          string
}

func (e *KnownHostsError) Error() string {
	if e.missing {
		host, port, _ := net.SplitHostPort(e.addr)
		return fmt.Sprintf("machine %q: known_hosts file %s does not exist: host keys are always verified; add the machine's key to it (ssh-keyscan -p %s %s >> %s, after checking the fingerprint on the machine)",
			e.Machine, e.Path, port, host, e.Path)
	}
	return fmt.Sprintf("machine %q: reading known_hosts file %s: %v: host keys are always verified, so it must be readable", e.Machine, e.Path, e.Err)
}

func (e *KnownHostsError) Unwrap() error { return e.Err }

// ConnectError is any other failure to reach the machine or to finish the
// SSH handshake: an unknown host name, no route, a port that is not sshd.
type ConnectError struct {
	Machine, Addr string
	Handshake     bool // the TCP connection was made; the SSH handshake failed
	Err           error
}

func (e *ConnectError) Error() string {
	if e.Handshake {
		return fmt.Sprintf("machine %q: ssh handshake with %s failed: %v: check that the port is sshd's", e.Machine, e.Addr, e.Err)
	}
	return fmt.Sprintf("machine %q: connecting to %s: %v: check the address and that the machine is up", e.Machine, e.Addr, e.Err)
}

func (e *ConnectError) Unwrap() error { return e.Err }

// keyFileType is the word in /etc/ssh/ssh_host_WORD_key for a key.
func keyFileType(k ssh.PublicKey) string {
	switch k.Type() {
	case ssh.KeyAlgoED25519:
		return "ed25519"
	case ssh.KeyAlgoRSA:
		return "rsa"
	case ssh.KeyAlgoECDSA256, ssh.KeyAlgoECDSA384, ssh.KeyAlgoECDSA521:
		return "ecdsa"
	}
	return strings.TrimPrefix(k.Type(), "ssh-")
}
