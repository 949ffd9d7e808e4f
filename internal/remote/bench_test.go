package remote_test

import (
	"crypto/rand"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/llorch/llorch/internal/remote"
)

// BenchmarkDial is one connection to the loopback sshd: TCP connect, key
// exchange, host key check, public key login.
func BenchmarkDial(b *testing.B) {
	m := machine(shared(b), "local")
	for b.Loop() {
		c, err := remote.Dial(b.Context(), m)
		if err != nil {
			b.Fatal(err)
		}
		c.Close()
	}
}

// BenchmarkRunRoundTrip is one command on a connection already made: what
// each question a refresh asks a machine costs.
func BenchmarkRunRoundTrip(b *testing.B) {
	c := dial(b, shared(b))
	for b.Loop() {
		res, err := c.Run(b.Context(), "true", nil)
		if err != nil || res.ExitCode != 0 {
			b.Fatal(res, err)
		}
	}
}

// binarySize is about llorch's own static binary, which apply puts on
// every machine.
const binarySize = 30 << 20

func writeBinary(b *testing.B) string {
	p := filepath.Join(b.TempDir(), "llorch")
	buf := make([]byte, binarySize)
	_, _ = rand.Read(buf)
	if err := os.WriteFile(p, buf, 0o755); err != nil {
		b.Fatal(err)
	}
	return p
}

// BenchmarkEnsureFileUnchanged is what a plan pays per machine to learn
// that its llorch binary is current: with the sums kept (files older than
// the racy window, as an installed binary is) and without (hashed on both
// ends every time).
func BenchmarkEnsureFileUnchanged(b *testing.B) {
	c := dial(b, shared(b))
	for _, bc := range []struct {
		name   string
		window time.Duration
	}{{"kept", -time.Second}, {"hashed", time.Hour}} {
		b.Run(bc.name, func(b *testing.B) {
			defer remote.SetRacyWindow(bc.window)()
			local := writeBinary(b)
			remotePath := filepath.Join(b.TempDir(), "bin", "llorch")
			for range 2 { // send, then record
				if _, err := c.EnsureFile(b.Context(), local, remotePath, 0o755); err != nil {
					b.Fatal(err)
				}
			}
			for b.Loop() {
				if uploaded, err := c.EnsureFile(b.Context(), local, remotePath, 0o755); err != nil || uploaded {
					b.Fatal(uploaded, err)
				}
			}
		})
	}
}

// BenchmarkEnsureFileUpload sends the binary each time (throughput over
// one connection, checked on the machine).
func BenchmarkEnsureFileUpload(b *testing.B) {
	c := dial(b, shared(b))
	local := writeBinary(b)
	remotePath := filepath.Join(b.TempDir(), "bin", "llorch")
	b.SetBytes(binarySize)
	for b.Loop() {
		if err := os.Remove(remotePath); err != nil && !os.IsNotExist(err) {
			b.Fatal(err)
		}
		if uploaded, err := c.EnsureFile(b.Context(), local, remotePath, 0o755); err != nil || !uploaded {
			b.Fatal(uploaded, err)
		}
	}
}
