//go:build !linux

package fakeengine

import (
	"os"
	"syscall"
)

// dieBySignal reports a death by sig as a shell would, exit status 128+n:
// outside Linux there is no simple way past the Go runtime's own handling
// of SIGABRT.
func dieBySignal(sig syscall.Signal) {
	os.Exit(128 + int(sig))
}
