//go:build !linux

package supervisor

import (
	"errors"
	"net"
)

// procNet has no /proc to read outside Linux: it never knows who holds a
// port, so errors name no pid and ownership checks fall back to /props.
type procNet struct {
	root string
}

func (procNet) portListener(host string, port int) (bool, int, string, error) {
	return false, 0, "", errors.New("listing listening sockets needs Linux")
}

func (procNet) foreignListener(host string, port, pgid int) (int, string) { return 0, "" }

// sockDiagUnixListeners has no sock_diag to ask outside Linux.
func sockDiagUnixListeners() (map[string]struct{}, error) {
	return nil, errors.New("listing unix sockets needs Linux's sock_diag")
}

func (procNet) listenersOf(pid int) ([]listener, error) {
	return nil, errors.New("listing a process's listening sockets needs Linux")
}

type listener struct {
	ip    net.IP
	port  int
	inode uint64
}
