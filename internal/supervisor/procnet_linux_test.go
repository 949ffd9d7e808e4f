package supervisor

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

func TestProcNetParsesListenersOfBothFamilies(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "net"), 0o755); err != nil {
		t.Fatal(err)
	}
	tcp := `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 11111 1 0000000000000000 100 0 0 10 0
   1: 0100007F:1F91 0100007F:9C40 01 00000000:00000000 00:00000000 00000000  1000        0 22222 1 0000000000000000 100 0 0 10 0
   2: 00000000:1F92 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 33333 1 0000000000000000 100 0 0 10 0
`
	tcp6 := `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000001000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 44444 1 0000000000000000 100 0 0 10 0
`
	_ = os.WriteFile(filepath.Join(root, "net", "tcp"), []byte(tcp), 0o644)
	_ = os.WriteFile(filepath.Join(root, "net", "tcp6"), []byte(tcp6), 0o644)
	pn := procNet{root: root}
	tests := []struct {
		host       string
		port       int
		wantInodes []uint64
	}{
		{"127.0.0.1", 8080, []uint64{11111}},        // established 8081 is not a listener
		{"::1", 8080, []uint64{44444}},              // the v6 loopback
		{"127.0.0.1", 8082, []uint64{33333}},        // a wildcard listener overlaps
		{"10.0.0.1", 8080, nil},                     // another address does not
		{"localhost", 8080, []uint64{11111, 44444}}, // a name matches every address
		{"127.0.0.1", 8081, nil},
	}
	for _, tc := range tests {
		t.Run(tc.host+":"+strconv.Itoa(tc.port), func(t *testing.T) {
			ls, err := pn.listeners(tc.host, tc.port)
			if err != nil {
				t.Fatal(err)
			}
			var got []uint64
			for _, l := range ls {
				got = append(got, l.inode)
			}
			if len(got) != len(tc.wantInodes) {
				t.Fatalf("inodes %v, want %v", got, tc.wantInodes)
			}
			for i := range got {
				if got[i] != tc.wantInodes[i] {
					t.Fatalf("inodes %v, want %v", got, tc.wantInodes)
				}
			}
		})
	}
}

// The kernel's sock_diag answer must name the same listening sockets as
// /proc/net/tcp does: a port this test listens on, with the inode the
// socket file descriptor really has.
func TestSockDiagFindsTheListenerProcNetTCPFinds(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port

	diag, err := sockDiagListeners(port)
	if err != nil {
		t.Fatalf("sockDiagListeners: %v", err)
	}
	file, err := procNet{root: "/proc/self/.."}.listeners("127.0.0.1", port) // not "/proc": the file parser
	if err != nil {
		t.Fatal(err)
	}
	if len(diag) != 1 || len(file) != 1 {
		t.Fatalf("sock_diag found %v, /proc/net/tcp %v; want the one listener on port %d", diag, file, port)
	}
	if diag[0].inode != file[0].inode || !diag[0].ip.Equal(net.IPv4(127, 0, 0, 1)) || diag[0].port != port {
		t.Fatalf("sock_diag says %+v, /proc/net/tcp %+v", diag[0], file[0])
	}
	// And the engine check finds this process as the holder.
	if pid, _ := (procNet{root: "/proc"}).foreignListener("127.0.0.1", port, os.Getpid()); pid != 0 {
		t.Fatalf("foreignListener = %d for this process's own listener, want 0", pid)
	}
	if _, pid, _, _ := (procNet{root: "/proc"}).portListener("127.0.0.1", port); pid != os.Getpid() {
		t.Fatalf("portListener pid = %d, want this process (%d)", pid, os.Getpid())
	}
}

func TestSockDiagIgnoresOtherPortsAndNonListeners(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// The client end of the connection is on some port, established, not
	// listening: asking for that port finds nothing.
	clientPort := c.LocalAddr().(*net.TCPAddr).Port
	if ls, err := sockDiagListeners(clientPort); err != nil || len(ls) != 0 {
		t.Fatalf("sockDiagListeners(%d) = %v, %v; want no listener", clientPort, ls, err)
	}
}

func BenchmarkListeners(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	for _, tc := range []struct{ name, root string }{{"sock_diag", "/proc"}, {"proc-net-tcp", "/proc/self/.."}} {
		b.Run(tc.name, func(b *testing.B) {
			for b.Loop() {
				if ls, err := (procNet{root: tc.root}).listeners("127.0.0.1", port); err != nil || len(ls) != 1 {
					b.Fatalf("%v, %v", ls, err)
				}
			}
		})
	}
}
