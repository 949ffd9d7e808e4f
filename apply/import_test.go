package apply

import (
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
)

func TestImportPortIsTheOneTheEngineServesOn(t *testing.T) {
	a, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	pa, pb := a.Addr().(*net.TCPAddr).Port, b.Addr().(*net.TCPAddr).Port
	self := os.Getpid()

	// This test process listens on two ports, like an engine with a
	// metrics port: the configured one wins, -port decides otherwise.
	if l, err := listenAddr(ImportRequest{PID: self}, pb); err != nil || l.Port != pb {
		t.Fatalf("with the configured port: %+v, %v", l, err)
	}
	if l, err := listenAddr(ImportRequest{PID: self, Port: pa}, pb); err != nil || l.Port != pa || l.Host != "127.0.0.1" {
		t.Fatalf("with -port: %+v, %v", l, err)
	}
	_, err = listenAddr(ImportRequest{PID: self}, 0)
	if err == nil || !strings.HasPrefix(err.Error(), "process "+strconv.Itoa(self)+" listens on ports ") || !strings.HasSuffix(err.Error(), "; say which one serves with -port") ||
		!strings.Contains(err.Error(), strconv.Itoa(pa)) || !strings.Contains(err.Error(), strconv.Itoa(pb)) {
		t.Fatalf("two ports, none configured: %v", err)
	}
}

func TestParseImportURL(t *testing.T) {
	if h, p, err := ParseImportURL("http://10.0.0.5:8080/v1"); err != nil || h != "10.0.0.5" || p != 8080 {
		t.Fatalf("= %q %d %v", h, p, err)
	}
	for raw, want := range map[string]string{
		"https://h:1":      `-url "https://h:1" is not an http:// URL like http://127.0.0.1:8080`,
		"http://h":         `-url "http://h" does not name a port, like http://127.0.0.1:8080`,
		"http://h:99999":   `-url "http://h:99999" does not name a port, like http://127.0.0.1:8080`,
		"http://[::1]:abc": `-url "http://[::1]:abc" does not name a port, like http://127.0.0.1:8080`,
	} {
		if _, _, err := ParseImportURL(raw); err == nil || err.Error() != want {
			t.Errorf("%s: %v\nwant %s", raw, err, want)
		}
	}
}
