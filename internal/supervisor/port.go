package supervisor

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// portBusy checks that nothing listens on host:port; it returns "" when
// the port is free for an engine, or a user-facing reason. llama-server may
// start on a port another server holds and let that server answer its
// health checks (ENGINE-NOTES), so the supervisor never spawns onto a taken
// port.
//
// Only a listening socket takes a port. Whether a bind would succeed is the
// wrong test: the TIME-WAIT sockets a dead engine leaves for about a minute
// block a SO_REUSEADDR bind (Go's net.Listen) but not an engine that binds
// with SO_REUSEPORT (llama-server build 4748), so such a check refused to
// restart engines that would have started. The bind is still tried, to
// report an address this machine does not have.
func portBusy(host string, port int) string {
	seen, pid, comm, err := (procNet{root: "/proc"}).portListener(host, port)
	if err == nil && seen {
		return portTakenMessage(host, port, pid, comm)
	}
	ln, lerr := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	switch {
	case lerr == nil:
		_ = ln.Close()
		return ""
	case !errors.Is(lerr, syscall.EADDRINUSE):
		return fmt.Sprintf("cannot listen on port %d on %s: %v; check the pool's host and port", port, host, lerr)
	case err == nil:
		// Nothing listens: only connections that are still closing hold
		// the port, and the engine decides whether it can bind over them
		// (a failed bind is retried; see bindFailure).
		return ""
	}
	// The listeners cannot be read here: the failed bind is all we know.
	return portTakenMessage(host, port, 0, "")
}

func portTakenMessage(host string, port, pid int, comm string) string {
	by := "another process"
	if pid > 0 {
		by = fmt.Sprintf("another process (pid %d", pid)
		if comm != "" {
			by += ", " + comm
		}
		by += ")"
	}
	return fmt.Sprintf("port %d on %s is already in use by %s; stop that process or give the pool another port", port, host, by)
}

// bindFailureLines are what engines log when they cannot bind their port:
// llama-server's own line, and the errno text other servers print.
var bindFailureLines = []string{
	"couldn't bind HTTP server socket",
	"address already in use",
}

// bindFailure tells from an engine's last log lines whether it exited
// because it could not bind its port, and if so describes why: a process
// listening there, or only closing connections. It is a start failure the
// restart policy retries (even at the first start, when a replacement
// follows an engine that just released the port), never a permanent one.
func bindFailure(host string, port int, tail []string) (string, bool) {
	found := false
	for _, line := range tail {
		l := strings.ToLower(line)
		for _, want := range bindFailureLines {
			if strings.Contains(l, strings.ToLower(want)) {
				found = true
			}
		}
	}
	if !found {
		return "", false
	}
	if seen, pid, comm, err := (procNet{root: "/proc"}).portListener(host, port); err == nil && !seen {
		return fmt.Sprintf("the engine could not bind port %d on %s, where nothing listens: connections of an engine that stopped moments ago are still closing (TIME-WAIT, up to %s), and this engine does not bind over them", port, host, timeWaitLength), true
	} else if err == nil {
		return "the engine could not bind its port: " + portTakenMessage(host, port, pid, comm), true
	}
	return fmt.Sprintf("the engine could not bind port %d on %s", port, host), true
}

// timeWaitLength is Linux's TCP_TIMEWAIT_LEN.
const timeWaitLength = 60 * time.Second
