package remote

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// DefaultConnectTimeout bounds the TCP connect and the SSH handshake when
// Machine.ConnectTimeout is zero.
const DefaultConnectTimeout = 10 * time.Second

// Machine is where to connect and how to log in.
type Machine struct {
	Name    string // the machine's name in the config, used in every message
	Address string // host name or IP address
	Port    int    // 0 means 22
	User    string

	// PrivateKeyFile is an unencrypted private key (OpenSSH or PEM
	// format); "~/" at its start is the user's home directory. UseAgent
	// also offers the keys of the ssh-agent at $SSH_AUTH_SOCK, after the
	// file's key when both are set. One of them is required.
	PrivateKeyFile string
	UseAgent       bool

	// KnownHostsFile holds the machine's host key; "" means
	// ~/.ssh/known_hosts. It is always checked.
	KnownHostsFile string

	DataDir string // where llorch keeps its files on the machine

	// ConnectTimeout bounds connecting and the SSH handshake together;
	// 0 means DefaultConnectTimeout. A deadline on Dial's context that
	// comes sooner wins.
	ConnectTimeout time.Duration
}

// port is the SSH port, 22 unless set.
func (m Machine) port() int {
	if m.Port == 0 {
		return 22
	}
	return m.Port
}

// addr is host:port for dialling and for known_hosts.
func (m Machine) addr() string {
	return net.JoinHostPort(m.Address, strconv.Itoa(m.port()))
}

func (m Machine) connectTimeout() time.Duration {
	if m.ConnectTimeout <= 0 {
		return DefaultConnectTimeout
	}
	return m.ConnectTimeout
}

func (m Machine) knownHostsFile() string {
	if m.KnownHostsFile == "" {
		return expandHome("~/.ssh/known_hosts")
	}
	return expandHome(m.KnownHostsFile)
}

// expandHome replaces a leading "~/" with the home directory, as ssh does
// for the paths in its own config; other paths are returned as they are.
func expandHome(p string) string {
	if p == "~" || strings.HasPrefix(p, "~/") {
		if home, err := os.UserHomeDir(); err == nil {
			return filepath.Join(home, p[1:])
		}
	}
	return p
}
