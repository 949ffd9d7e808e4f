package freeport

import (
	"net"
	"strconv"
	"testing"
)

func TestPortIsFreeAndBelowTheEphemeralRange(t *testing.T) {
	p, err := Port()
	if err != nil {
		t.Fatal(err)
	}
	if lo := EphemeralLow(); lo > lowest+1 && (p < lowest || p >= lo) {
		t.Errorf("port %d is not in [%d, %d)", p, lowest, lo)
	}
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
	if err != nil {
		t.Fatalf("port %d is not free: %v", p, err)
	}
	l.Close()
}
