package remote_test

import (
	"testing"

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
