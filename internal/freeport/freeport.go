// Package freeport finds loopback ports for tests' servers. The ports come
// from below the kernel's ephemeral range when it can: a server restarted
// on its ports, or an engine moved back onto its configured port, must
// find them free, and a port in the ephemeral range may meanwhile become
// the local end of any outgoing connection on the machine.
package freeport

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
)

// lowest is where the search starts: well above the ports services use.
const lowest = 10000

// Candidate is a port to try for a run of n consecutive ports: random
// below the ephemeral range, or 0 (let the kernel choose) when the range
// is unknown or leaves no room.
func Candidate(n int) int {
	if lo := EphemeralLow(); lo > lowest+n {
		return lowest + rand.IntN(lo-lowest-n)
	}
	return 0
}

// Port returns a loopback port nothing listens on.
func Port() (int, error) {
	for range 200 {
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(Candidate(1)))
		if err != nil {
			continue
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		return port, nil
	}
	return 0, fmt.Errorf("finding a free port: none of 200 tried was free")
}

// EphemeralLow is the first port of the kernel's ephemeral range, 0 when
// unknown.
func EphemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 0
	}
	lo, _ := strconv.Atoi(f[0])
	return lo
}
