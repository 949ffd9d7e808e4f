package supervisor

import (
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
