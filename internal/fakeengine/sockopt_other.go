//go:build !unix

package fakeengine

import "syscall"

// reusePortOnly keeps the platform's defaults where SO_REUSEPORT is not
// available.
func reusePortOnly(_, _ string, _ syscall.RawConn) error { return nil }
