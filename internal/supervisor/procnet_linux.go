package supervisor

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// procNet reads Linux's /proc to learn which process listens on a TCP
// port. Everything it reports is best effort: another user's processes
// cannot be inspected, and a socket may close while it looks.
type procNet struct {
	root string // "/proc"
}

// listener is one listening TCP socket from /proc/net/tcp{,6}.
type listener struct {
	ip    net.IP
	port  int
	inode uint64
}

// listeners returns the listening sockets on port whose address overlaps
// host (equal, or either one a wildcard). host "" or a name matches every
// address.
func (p procNet) listeners(host string, port int) ([]listener, error) {
	want := net.ParseIP(host)
	var out []listener
	if p.root == "/proc" {
		// The kernel's own answer when it gives one (the files are a
		// fallback, and what tests with a fake /proc read).
		if ls, err := sockDiagListeners(port); err == nil {
			for _, l := range ls {
				if want == nil || overlaps(want, l.ip) {
					out = append(out, l)
				}
			}
			return out, nil
		}
	}
	var firstErr error
	for _, name := range []string{"net/tcp", "net/tcp6"} {
		ls, err := parseProcNetTCP(filepath.Join(p.root, name))
		if err != nil {
			if firstErr == nil && !os.IsNotExist(err) {
				firstErr = err
			}
			continue
		}
		for _, l := range ls {
			if l.port == port && (want == nil || overlaps(want, l.ip)) {
				out = append(out, l)
			}
		}
	}
	if out == nil && firstErr != nil {
		return nil, firstErr
	}
	return out, nil
}

func overlaps(a, b net.IP) bool {
	return a.IsUnspecified() || b.IsUnspecified() || a.Equal(b)
}

// parseProcNetTCP returns the sockets in LISTEN state (st 0A) in one
// /proc/net/tcp-format file.
func parseProcNetTCP(path string) ([]listener, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []listener
	sc := bufio.NewScanner(f)
	sc.Scan() // header
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 10 || fields[3] != "0A" {
			continue
		}
		ip, port, err := parseHexAddr(fields[1])
		if err != nil {
			continue
		}
		inode, err := strconv.ParseUint(fields[9], 10, 64)
		if err != nil || inode == 0 {
			continue
		}
		out = append(out, listener{ip: ip, port: port, inode: inode})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	return out, nil
}

// parseHexAddr decodes "0100007F:1F90": the address is stored as 32-bit
// words in host (little-endian) byte order, the port big-endian.
func parseHexAddr(s string) (net.IP, int, error) {
	addr, portHex, ok := strings.Cut(s, ":")
	if !ok {
		return nil, 0, fmt.Errorf("malformed address %q", s)
	}
	port, err := strconv.ParseUint(portHex, 16, 16)
	if err != nil {
		return nil, 0, fmt.Errorf("malformed port in %q: %w", s, err)
	}
	b, err := hex.DecodeString(addr)
	if err != nil || (len(b) != 4 && len(b) != 16) {
		return nil, 0, fmt.Errorf("malformed address %q", s)
	}
	for i := 0; i < len(b); i += 4 {
		b[i], b[i+1], b[i+2], b[i+3] = b[i+3], b[i+2], b[i+1], b[i]
	}
	return net.IP(b), int(port), nil
}

// holders maps each of inodes to a process holding it. When pgid is not 0
// only members of that process group are searched.
func (p procNet) holders(inodes map[uint64]bool, pgid int) map[uint64]int {
	found := make(map[uint64]int)
	entries, err := os.ReadDir(p.root)
	if err != nil {
		return found
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if pgid != 0 && pid != pgid && p.pgid(pid) != pgid {
			continue
		}
		p.scanFDs(pid, inodes, found)
		if len(found) == len(inodes) {
			break
		}
	}
	return found
}

// scanFDs records which of inodes pid holds.
func (p procNet) scanFDs(pid int, inodes map[uint64]bool, found map[uint64]int) {
	dir := filepath.Join(p.root, strconv.Itoa(pid), "fd")
	fds, err := os.ReadDir(dir)
	if err != nil {
		return // gone, or another user's
	}
	for _, fd := range fds {
		link, err := os.Readlink(filepath.Join(dir, fd.Name()))
		if err != nil || !strings.HasPrefix(link, "socket:[") {
			continue
		}
		ino, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]"), 10, 64)
		if err == nil && inodes[ino] {
			if _, dup := found[ino]; !dup {
				found[ino] = pid
			}
		}
	}
}

// pgid reads a process's group from /proc/PID/stat; 0 when unknown.
func (p procNet) pgid(pid int) int {
	b, err := os.ReadFile(filepath.Join(p.root, strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0
	}
	// "pid (comm) state ppid pgrp …": comm may hold spaces and parentheses.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 3 {
		return 0
	}
	g, _ := strconv.Atoi(f[2])
	return g
}

// comm is a process's command name, "" when unknown.
func (p procNet) comm(pid int) string {
	b, err := os.ReadFile(filepath.Join(p.root, strconv.Itoa(pid), "comm"))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// portListener reports whether a socket listens on host:port and, when it
// can be seen, the pid and command of a process holding one (pid 0 when
// only another user's process could hold it). err says the listeners could
// not be read at all.
func (p procNet) portListener(host string, port int) (listening bool, pid int, comm string, err error) {
	ls, err := p.listeners(host, port)
	if err != nil || len(ls) == 0 {
		return false, 0, "", err
	}
	inodes := make(map[uint64]bool, len(ls))
	for _, l := range ls {
		inodes[l.inode] = true
	}
	for _, pid := range p.holders(inodes, 0) {
		return true, pid, p.comm(pid), nil
	}
	return true, 0, "", nil
}

// foreignListener checks that every socket listening on host:port belongs
// to process group pgid (the engine's). It returns the pid of another
// holder (-1 when the holder cannot be seen), or 0 when all are the
// engine's or nothing is listening.
func (p procNet) foreignListener(host string, port, pgid int) (pid int, comm string) {
	ls, err := p.listeners(host, port)
	if err != nil || len(ls) == 0 {
		return 0, ""
	}
	inodes := make(map[uint64]bool, len(ls))
	for _, l := range ls {
		inodes[l.inode] = true
	}
	ours := make(map[uint64]int)
	p.scanFDs(pgid, inodes, ours) // the engine itself, the common case
	if len(ours) < len(inodes) {
		for ino, pid := range p.holders(inodes, pgid) {
			ours[ino] = pid
		}
	}
	if len(ours) == len(inodes) {
		return 0, ""
	}
	others := make(map[uint64]bool)
	for ino := range inodes {
		if _, ok := ours[ino]; !ok {
			others[ino] = true
		}
	}
	for _, pid := range p.holders(others, 0) {
		return pid, p.comm(pid)
	}
	return -1, ""
}

// listenersOf returns the TCP sockets process pid listens on.
func (p procNet) listenersOf(pid int) ([]listener, error) {
	var all []listener
	for _, name := range []string{"net/tcp", "net/tcp6"} {
		ls, err := parseProcNetTCP(filepath.Join(p.root, name))
		if err != nil && !os.IsNotExist(err) {
			return nil, err
		}
		all = append(all, ls...)
	}
	inodes := make(map[uint64]bool, len(all))
	for _, l := range all {
		inodes[l.inode] = true
	}
	held := make(map[uint64]int)
	p.scanFDs(pid, inodes, held)
	var out []listener
	for _, l := range all {
		if _, ok := held[l.inode]; ok {
			out = append(out, l)
		}
	}
	return out, nil
}
