package plugin

import (
	"crypto/tls"
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

// serverFromEnv runs ServerTLS with the environment ClientTLS asks for, as
// the plugin process would see it.
func serverFromEnv(t *testing.T, env []string) *tls.Config {
	t.Helper()
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	cfg, err := ServerTLS()
	if err != nil {
		t.Fatalf("ServerTLS: %v", err)
	}
	if cfg == nil {
		t.Fatal("ServerTLS returned no configuration although llorch handed over a key")
	}
	return cfg
}

// handshake runs a TLS handshake between the two configurations over a
// loopback connection, as go-plugin's socket is, and returns each side's
// error.
func handshake(t *testing.T, client, server *tls.Config) (clientErr, serverErr error) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	serverDone := make(chan error, 1)
	go func() {
		conn, err := l.Accept()
		if err != nil {
			serverDone <- err
			return
		}
		defer conn.Close()
		serverDone <- tls.Server(conn, server).HandshakeContext(t.Context())
	}()
	conn, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	cl := tls.Client(conn, client)
	clientErr = cl.HandshakeContext(t.Context())
	if clientErr == nil {
		// Under TLS 1.3 the client is done before the server has judged
		// its certificate; a refusal shows on the next read.
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		serverErr = <-serverDone
		if _, err := cl.Read(make([]byte, 1)); serverErr != nil {
			clientErr = err
		}
		return clientErr, serverErr
	}
	conn.Close()
	return clientErr, <-serverDone
}

func TestPluginConnectionIsMutualTLSBetweenTheKeysLlorchMade(t *testing.T) {
	client, env, err := ClientTLS()
	if err != nil {
		t.Fatalf("ClientTLS: %v", err)
	}
	server := serverFromEnv(t, env)
	if _, still := os.LookupEnv(EnvServerKey); still {
		t.Errorf("%s is still in the plugin's environment, where its children would inherit it", EnvServerKey)
	}
	cErr, sErr := handshake(t, client, server)
	if cErr != nil || sErr != nil {
		t.Fatalf("handshake: client %v, server %v", cErr, sErr)
	}
}

func TestPluginRefusesAClientWithAnotherKey(t *testing.T) {
	_, env, err := ClientTLS()
	if err != nil {
		t.Fatal(err)
	}
	server := serverFromEnv(t, env)
	// A client from another llorch run; it skips checking the server so
	// that only its own certificate is wrong.
	intruder, _, err := ClientTLS()
	if err != nil {
		t.Fatal(err)
	}
	intruder.InsecureSkipVerify = true
	_, sErr := handshake(t, intruder, server)
	if sErr == nil || !strings.Contains(sErr.Error(), "certificate") {
		t.Fatalf("server accepted a client certificate it was not given: %v", sErr)
	}
}

func TestLlorchRefusesAPluginPresentingAnotherKey(t *testing.T) {
	client, _, err := ClientTLS()
	if err != nil {
		t.Fatal(err)
	}
	_, otherEnv, err := ClientTLS()
	if err != nil {
		t.Fatal(err)
	}
	impostor := serverFromEnv(t, otherEnv)
	impostor.ClientAuth = tls.NoClientCert
	cErr, _ := handshake(t, client, impostor)
	if cErr == nil || !strings.Contains(cErr.Error(), "certificate") {
		t.Fatalf("llorch accepted a plugin certificate it did not make: %v", cErr)
	}
}

func TestServerTLSLeavesStockAutoMTLSAloneWithoutAKey(t *testing.T) {
	os.Unsetenv(EnvServerKey)
	t.Setenv(envClientCert, "")
	cfg, err := ServerTLS()
	if cfg != nil || err != nil {
		t.Fatalf("ServerTLS() = %v, %v; want nil, nil so that go-plugin does its own exchange", cfg, err)
	}
}

func TestServerTLSWithAKeyButNoClientCertificate(t *testing.T) {
	_, env, err := ClientTLS()
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range env {
		if k, v, _ := strings.Cut(kv, "="); k == EnvServerKey {
			t.Setenv(k, v)
		}
	}
	t.Setenv(envClientCert, "")
	_, err = ServerTLS()
	if err == nil || !strings.Contains(err.Error(), "cannot tell which client to trust") {
		t.Fatalf("ServerTLS without %s: %v", envClientCert, err)
	}
}

func TestServerTLSWithAGarbledKey(t *testing.T) {
	t.Setenv(EnvServerKey, "not a key")
	t.Setenv(envClientCert, "not a cert")
	_, err := ServerTLS()
	if err == nil || !strings.Contains(err.Error(), "reading the server key in "+EnvServerKey) {
		t.Fatalf("ServerTLS with a garbled key: %v", err)
	}
}
