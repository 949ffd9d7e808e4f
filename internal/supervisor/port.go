package supervisor

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"syscall"
)

// portBusy checks that host:port is free by listening on it for a moment;
// it returns "" when free, or a user-facing reason. llama-server may start
// on a port another server holds and let that server answer its health
// checks (ENGINE-NOTES), so the supervisor never spawns onto a taken port.
func portBusy(host string, port int) string {
	ln, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err == nil {
		_ = ln.Close()
		return ""
	}
	if !errors.Is(err, syscall.EADDRINUSE) {
		return fmt.Sprintf("cannot listen on port %d on %s: %v; check the pool's host and port", port, host, err)
	}
	by := "another process"
	if pid, comm := (procNet{root: "/proc"}).portOwner(host, port); pid > 0 {
		by = fmt.Sprintf("another process (pid %d", pid)
		if comm != "" {
			by += ", " + comm
		}
		by += ")"
	}
	return fmt.Sprintf("port %d on %s is already in use by %s; stop that process or give the pool another port", port, host, by)
}
