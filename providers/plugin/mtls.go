package plugin

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"time"
)

// Every connection between llorch and a plugin is mutual TLS with keys made
// for that one plugin process, exchanged the way go-plugin's AutoMTLS does:
// the host's certificate travels to the plugin in PLUGIN_CLIENT_CERT, and a
// plugin on stock go-plugin generates its own key and returns its
// certificate in the handshake line; each side then trusts only the other's
// certificate.
//
// What differs from AutoMTLS is the cost. go-plugin makes P-521 keys, and
// on a 2-core machine generating one and the TLS handshake over it cost
// about 20 ms of CPU on each side, at the start of every llorch command.
// llorch makes P-256 keys (same security for a key that lives minutes),
// and also makes the plugin's key, handed over in EnvServerKey: a plugin
// built on providers/sdk uses it (ServerTLS) and generates nothing, while
// a plugin on stock go-plugin ignores it and answers with its own
// certificate, which then replaces the one llorch made (go-plugin's client
// loads it into the configuration from ClientTLS).

// EnvServerKey carries the plugin's certificate and private key (PEM) from
// llorch to the plugin process. ServerTLS removes it from the plugin's
// environment, so that nothing the plugin runs (a compiler, an engine's
// --version) inherits it.
const EnvServerKey = "LLORCH_PLUGIN_SERVER_KEY"

// envClientCert is where go-plugin's AutoMTLS puts the host's certificate.
const envClientCert = "PLUGIN_CLIENT_CERT"

// certName is the name both sides' certificates carry and the client
// verifies, as in go-plugin.
const certName = "localhost"

// ClientTLS makes the keys for one plugin process: the host's TLS
// configuration, and the environment variables the plugin must be started
// with. Hand the configuration to go-plugin's ClientConfig.TLSConfig
// (AutoMTLS off); go-plugin replaces its RootCAs when the plugin answers
// with a certificate of its own.
func ClientTLS() (*tls.Config, []string, error) {
	client, _, err := newCert()
	if err != nil {
		return nil, nil, fmt.Errorf("making the client certificate for the plugin connection: %w", err)
	}
	server, serverPEM, err := newCert()
	if err != nil {
		return nil, nil, fmt.Errorf("making the server certificate for the plugin connection: %w", err)
	}
	trusted := x509.NewCertPool()
	trusted.AddCert(server.Leaf)
	cfg := &tls.Config{
		Certificates: []tls.Certificate{client},
		RootCAs:      trusted,
		MinVersion:   tls.VersionTLS12,
		ServerName:   certName,
	}
	env := []string{
		envClientCert + "=" + string(certPEM(client)),
		EnvServerKey + "=" + string(serverPEM),
	}
	return cfg, env, nil
}

// ServerTLS is the plugin side of ClientTLS, for go-plugin's
// ServeConfig.TLSProvider. It returns nil, nil when llorch did not hand
// over a key (an older llorch, or a plugin started by other means); go-plugin
// then does its own AutoMTLS exchange.
func ServerTLS() (*tls.Config, error) {
	keyPEM, ok := os.LookupEnv(EnvServerKey)
	if !ok {
		return nil, nil
	}
	os.Unsetenv(EnvServerKey)
	clientPEM := os.Getenv(envClientCert)
	if clientPEM == "" {
		return nil, fmt.Errorf("%s is set but %s is not: the plugin cannot tell which client to trust", EnvServerKey, envClientCert)
	}
	cert, err := tls.X509KeyPair([]byte(keyPEM), []byte(keyPEM))
	if err != nil {
		return nil, fmt.Errorf("reading the server key in %s: %w", EnvServerKey, err)
	}
	trusted := x509.NewCertPool()
	if !trusted.AppendCertsFromPEM([]byte(clientPEM)) {
		return nil, fmt.Errorf("reading the client certificate in %s: no PEM certificate found", envClientCert)
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientCAs:    trusted,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS12,
	}, nil
}

// newCert makes a self-signed P-256 certificate for certName, usable by
// either end, and returns it with its PEM encoding (certificate, then key).
func newCert() (tls.Certificate, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	now := time.Now()
	template := &x509.Certificate{
		Subject:               pkix.Name{CommonName: certName, Organization: []string{"llorch"}},
		DNSNames:              []string{certName},
		SerialNumber:          serial,
		NotBefore:             now.Add(-30 * time.Second),
		NotAfter:              now.AddDate(1, 0, 0), // outlives any llorch command
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, template, template, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	cert := tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
	out := append(certPEM(cert), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})...)
	return cert, out, nil
}

func certPEM(c tls.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Certificate[0]})
}
