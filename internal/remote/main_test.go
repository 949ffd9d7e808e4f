package remote_test

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/llorch/llorch/internal/remote"
	"github.com/llorch/llorch/internal/remote/sshtest"
)

// server is one sshd for the whole test binary: starting one costs tens of
// milliseconds and the tests only read from it, or write to their own
// temporary directories through it.
var (
	server    *sshtest.Server
	serverErr error
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "llorch-sshtest-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	server, serverErr = sshtest.Run(dir)
	code := m.Run()
	if server != nil {
		_ = server.Stop()
		if code != 0 {
			fmt.Fprintf(os.Stderr, "sshd log:\n%s\n", server.Log(60))
		}
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

// shared is the shared server, or fails t with why there is none.
func shared(t testing.TB) *sshtest.Server {
	t.Helper()
	if serverErr != nil {
		t.Fatal(serverErr)
	}
	return server
}

// machine is a Machine that logs in to s with its client key.
func machine(s *sshtest.Server, name string) remote.Machine {
	return remote.Machine{
		Name: name, Address: s.Host, Port: s.Port, User: s.User,
		PrivateKeyFile: s.ClientKeyFile, KnownHostsFile: s.KnownHostsFile,
		ConnectTimeout: 10 * time.Second,
	}
}

// dial connects to s and closes the connection when t ends.
func dial(t testing.TB, s *sshtest.Server) *remote.Conn {
	t.Helper()
	c, err := remote.Dial(t.Context(), machine(s, "local"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}
