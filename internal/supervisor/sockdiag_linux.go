package supervisor

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"syscall"
)

// sockDiagListeners asks the kernel, over NETLINK_SOCK_DIAG (what ss(8)
// uses), for the TCP sockets in LISTEN state on port, in both families.
//
// It replaces reading /proc/net/tcp on the readiness path: the kernel
// formats that file by walking every socket hash bucket, established ones
// included, which took 6-15 ms a read on a 2-core machine with a thousand
// engines; a dump of listening sockets walks only those.
func sockDiagListeners(port int) ([]listener, error) {
	fd, err := openSockDiag()
	if err != nil {
		return nil, err
	}
	defer syscall.Close(fd)
	var out []listener
	for seq, family := range []uint8{syscall.AF_INET, syscall.AF_INET6} {
		ls, err := sockDiagDump(fd, uint32(seq+1), family, port)
		if err != nil {
			return nil, err
		}
		out = append(out, ls...)
	}
	return out, nil
}

// openSockDiag opens a NETLINK_SOCK_DIAG socket.
func openSockDiag() (int, error) {
	fd, err := syscall.Socket(syscall.AF_NETLINK, syscall.SOCK_DGRAM|syscall.SOCK_CLOEXEC, netlinkSockDiag)
	if err != nil {
		return -1, fmt.Errorf("opening a sock_diag netlink socket: %w", err)
	}
	return fd, nil
}

const (
	netlinkSockDiag  = 4  // NETLINK_SOCK_DIAG
	sockDiagByFamily = 20 // SOCK_DIAG_BY_FAMILY
	tcpListen        = 10 // TCP_LISTEN, the kernel's state number
	nlmsgHdrLen      = 16
	inetDiagReqLen   = 56 // struct inet_diag_req_v2
	inetDiagMsgLen   = 72 // struct inet_diag_msg
	unixDiagReqLen   = 24 // struct unix_diag_req
	unixDiagMsgLen   = 16 // struct unix_diag_msg
	unixDiagShowName = 1  // UDIAG_SHOW_NAME
	unixDiagName     = 0  // UNIX_DIAG_NAME
)

// sockDiagDump sends one dump request for family's listening TCP sockets
// and reads the answers up to NLMSG_DONE, keeping those on port.
func sockDiagDump(fd int, seq uint32, family uint8, port int) ([]listener, error) {
	req := make([]byte, inetDiagReqLen)
	// struct inet_diag_req_v2: family, protocol, ext, pad, states; the
	// socket id stays zero (a dump ignores it).
	req[0] = family
	req[1] = syscall.IPPROTO_TCP
	binary.NativeEndian.PutUint32(req[4:], 1<<tcpListen)
	var out []listener
	err := sockDiagRequest(fd, seq, req, func(msg []byte) {
		if l, ok := parseInetDiagMsg(msg); ok && l.port == port {
			out = append(out, l)
		}
	})
	return out, err
}

// sockDiagRequest sends one SOCK_DIAG_BY_FAMILY dump request (req is the
// family's request struct) on the netlink socket fd and hands each answer's
// payload to each, up to NLMSG_DONE.
func sockDiagRequest(fd int, seq uint32, req []byte, each func(msg []byte)) error {
	msg := make([]byte, nlmsgHdrLen+len(req))
	ne := binary.NativeEndian
	ne.PutUint32(msg[0:], uint32(len(msg)))
	ne.PutUint16(msg[4:], sockDiagByFamily)
	ne.PutUint16(msg[6:], syscall.NLM_F_REQUEST|syscall.NLM_F_DUMP)
	ne.PutUint32(msg[8:], seq)
	copy(msg[nlmsgHdrLen:], req)
	if err := syscall.Sendto(fd, msg, 0, &syscall.SockaddrNetlink{Family: syscall.AF_NETLINK}); err != nil {
		return fmt.Errorf("asking sock_diag for listening sockets: %w", err)
	}

	buf := make([]byte, 32<<10)
	for {
		n, _, err := syscall.Recvfrom(fd, buf, 0)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("reading sock_diag's answer: %w", err)
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			return fmt.Errorf("reading sock_diag's answer: %w", err)
		}
		for _, m := range msgs {
			if m.Header.Seq != seq {
				continue
			}
			switch m.Header.Type {
			case syscall.NLMSG_DONE:
				return nil
			case syscall.NLMSG_ERROR:
				if len(m.Data) >= 4 {
					if errno := -int32(ne.Uint32(m.Data)); errno != 0 {
						return fmt.Errorf("sock_diag: %w", syscall.Errno(errno))
					}
				}
				return errors.New("sock_diag: error without a code")
			}
			each(m.Data)
		}
	}
}

// sockDiagUnixListeners returns the paths of the listening unix sockets
// bound to a file (abstract and unnamed ones are left out), as bound.
func sockDiagUnixListeners() (map[string]struct{}, error) {
	fd, err := openSockDiag()
	if err != nil {
		return nil, err
	}
	defer syscall.Close(fd)
	// struct unix_diag_req: family, protocol, pad, states, ino, show,
	// cookie; ask for the bound name of every listening socket.
	req := make([]byte, unixDiagReqLen)
	req[0] = syscall.AF_UNIX
	binary.NativeEndian.PutUint32(req[4:], 1<<tcpListen)
	binary.NativeEndian.PutUint32(req[12:], unixDiagShowName)
	out := map[string]struct{}{}
	err = sockDiagRequest(fd, 1, req, func(msg []byte) {
		if name, ok := parseUnixDiagName(msg); ok {
			out[name] = struct{}{}
		}
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// parseUnixDiagName reads the UNIX_DIAG_NAME attribute that follows a
// struct unix_diag_msg, when it names a file.
func parseUnixDiagName(b []byte) (string, bool) {
	if len(b) < unixDiagMsgLen {
		return "", false
	}
	ne := binary.NativeEndian
	for attrs := b[unixDiagMsgLen:]; len(attrs) >= 4; {
		l, typ := int(ne.Uint16(attrs[0:])), ne.Uint16(attrs[2:])
		if l < 4 || l > len(attrs) {
			return "", false
		}
		if typ == unixDiagName {
			name := attrs[4:l]
			if len(name) == 0 || name[0] == 0 {
				return "", false // abstract
			}
			if i := bytes.IndexByte(name, 0); i >= 0 {
				name = name[:i]
			}
			return string(name), true
		}
		attrs = attrs[min((l+3)&^3, len(attrs)):]
	}
	return "", false
}

// parseInetDiagMsg reads a struct inet_diag_msg: family, state, timer,
// retrans, then the socket id (source port and address in network order),
// four counters, uid and inode.
func parseInetDiagMsg(b []byte) (listener, bool) {
	if len(b) < inetDiagMsgLen {
		return listener{}, false
	}
	var ip net.IP
	switch b[0] {
	case syscall.AF_INET:
		ip = net.IP(append([]byte(nil), b[8:12]...))
	case syscall.AF_INET6:
		ip = net.IP(append([]byte(nil), b[8:24]...))
	default:
		return listener{}, false
	}
	return listener{
		ip:    ip,
		port:  int(binary.BigEndian.Uint16(b[4:6])),
		inode: uint64(binary.NativeEndian.Uint32(b[68:72])),
	}, true
}
