//go:build unix

package fakeengine

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// reusePortOnly is a net.ListenConfig Control that binds as build 4748
// does: SO_REUSEPORT on, SO_REUSEADDR off.
func reusePortOnly(_, _ string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 0); serr != nil {
			return
		}
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
	})
	if err != nil {
		return err
	}
	return serr
}
