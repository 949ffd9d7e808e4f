package supervisor

import (
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
	fd, err := syscall.Socket(syscall.AF_NETLINK, syscall.SOCK_DGRAM|syscall.SOCK_CLOEXEC, netlinkSockDiag)
	if err != nil {
		return nil, fmt.Errorf("opening a sock_diag netlink socket: %w", err)
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

const (
	netlinkSockDiag  = 4  // NETLINK_SOCK_DIAG
	sockDiagByFamily = 20 // SOCK_DIAG_BY_FAMILY
	tcpListen        = 10 // TCP_LISTEN, the kernel's state number
	nlmsgHdrLen      = 16
	inetDiagReqLen   = 56 // struct inet_diag_req_v2
	inetDiagMsgLen   = 72 // struct inet_diag_msg
)

// sockDiagDump sends one dump request for family's listening TCP sockets
// and reads the answers up to NLMSG_DONE, keeping those on port.
func sockDiagDump(fd int, seq uint32, family uint8, port int) ([]listener, error) {
	req := make([]byte, nlmsgHdrLen+inetDiagReqLen)
	ne := binary.NativeEndian
	ne.PutUint32(req[0:], uint32(len(req)))
	ne.PutUint16(req[4:], sockDiagByFamily)
	ne.PutUint16(req[6:], syscall.NLM_F_REQUEST|syscall.NLM_F_DUMP)
	ne.PutUint32(req[8:], seq)
	// struct inet_diag_req_v2: family, protocol, ext, pad, states; the
	// socket id stays zero (a dump ignores it).
	req[16] = family
	req[17] = syscall.IPPROTO_TCP
	ne.PutUint32(req[20:], 1<<tcpListen)
	if err := syscall.Sendto(fd, req, 0, &syscall.SockaddrNetlink{Family: syscall.AF_NETLINK}); err != nil {
		return nil, fmt.Errorf("asking sock_diag for listening sockets: %w", err)
	}

	var out []listener
	buf := make([]byte, 32<<10)
	for {
		n, _, err := syscall.Recvfrom(fd, buf, 0)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("reading sock_diag's answer: %w", err)
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			return nil, fmt.Errorf("reading sock_diag's answer: %w", err)
		}
		for _, m := range msgs {
			if m.Header.Seq != seq {
				continue
			}
			switch m.Header.Type {
			case syscall.NLMSG_DONE:
				return out, nil
			case syscall.NLMSG_ERROR:
				if len(m.Data) >= 4 {
					if errno := -int32(ne.Uint32(m.Data)); errno != 0 {
						return nil, fmt.Errorf("sock_diag: %w", syscall.Errno(errno))
					}
				}
				return nil, errors.New("sock_diag: error without a code")
			}
			if l, ok := parseInetDiagMsg(m.Data); ok && l.port == port {
				out = append(out, l)
			}
		}
	}
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
